"""Steering running studies: pause, resume, freeze, thaw, set-sampler, set-pruner, prune-trial,
fail-trial, enqueue, stop, scale and workers, each against real worker processes.

Workers are started the way a user starts them (``python -m tui_hpo launch ... --detach``), the
steering commands run as ``python -m tui_hpo`` subprocesses, and outcomes are read back from the
storage (Optuna's trials and their ``tui_hpo.*`` attrs, tui-hpo's tables) and from
``workers --json`` / ``status --json``. Every test ends with ``stop`` and then SIGKILL to the
process group of anything of the study still running, so no process outlives its test.

Times: Optuna returns ``FrozenTrial.datetime_start``/``datetime_complete`` as naive *local*
time (stored as naive UTC), so they are compared as ``.timestamp()`` with ``time.time()``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial

from tests.steering.running import (
    HANG,
    QUADRATIC,
    SLOW,
    WORKER_FIELDS,
    RunningStudy,
    assert_ok,
    assert_one_line_error,
    cli_env,
    completed_at,
    kill_group,
    proc_state,
    started_at,
)
from tests.support import alive, wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.e2e

pytestmark = pytest.mark.e2e


# pause / resume -------------------------------------------------------------------------------


def test_pause_stops_new_trials_and_resume_restarts_them(study: RunningStudy) -> None:
    study.launch(SLOW, workers=2, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.1"})
    wait_for(lambda: study.count_ended() >= 2, 120, "two trials to end")

    paused_at = study.ok("pause")
    time.sleep(4)
    late = [
        (t.number, started_at(t) - paused_at)
        for t in study.trials()
        if started_at(t) > paused_at + 1.0
    ]
    assert not late, f"trials started more than 1 s after pause returned: {late}"

    def all_paused() -> list[dict[str, Any]] | None:
        rows = study.workers_json()
        return rows if rows and all(w["state"] == "paused" for w in rows) else None

    rows = wait_for(all_paused, 60, "every live worker to show paused", every=1)
    assert len(rows) == 2, rows
    assert study.status_json()["paused"] is True
    assert not [t for t in study.trials() if t.state.name == "RUNNING"]

    before = len(study.trials())
    study.ok("resume")
    wait_for(lambda: len(study.trials()) > before + 1, 60, "trials to start again after resume")


# set-sampler / set-pruner ---------------------------------------------------------------------


def _sampler_of(t: FrozenTrial) -> str:
    return t.user_attrs["tui_hpo.sampler"]["name"]


def test_set_sampler_and_pruner_take_effect_from_the_next_trial(study: RunningStudy) -> None:
    study.launch(SLOW, workers=2, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.1"})
    wait_for(lambda: study.count_ended() >= 2, 120, "two trials to end")

    sampler_from = time.time()
    sampler_to = study.ok("set-sampler", "random")
    pruner_kwargs = {"percentile": 40.0, "n_startup_trials": 2}
    pruner_from = time.time()
    pruner_to = study.ok("set-pruner", "percentile", "--kwargs", json.dumps(pruner_kwargs))
    wait_for(
        lambda: sum(1 for t in study.trials() if started_at(t) > pruner_to) >= 3,
        120,
        "three trials asked after the switches",
    )

    trials = [t for t in study.trials() if "tui_hpo.sampler" in t.user_attrs]
    for t in trials:
        if started_at(t) < sampler_from:
            assert t.user_attrs["tui_hpo.sampler"] == {"name": "tpe", "kwargs": {}}, t.number
        if started_at(t) > sampler_to:
            assert t.user_attrs["tui_hpo.sampler"] == {"name": "random", "kwargs": {}}, t.number
        if started_at(t) < pruner_from:
            assert t.user_attrs["tui_hpo.pruner"]["name"] in ("median", "percentile"), t.number
        if started_at(t) < sampler_from:
            assert t.user_attrs["tui_hpo.pruner"] == {"name": "median", "kwargs": {}}, t.number
        if started_at(t) > pruner_to:
            assert t.user_attrs["tui_hpo.pruner"] == {
                "name": "percentile",
                "kwargs": pruner_kwargs,
            }, t.number
    # per worker, the switch happens once: tpe ... tpe random ... random
    by_worker: dict[int, list[str]] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["tui_hpo.worker"], []).append(_sampler_of(t))
    for worker, names in by_worker.items():
        assert names == sorted(names, key=lambda n: n == "random"), (worker, names)
    assert any(_sampler_of(t) == "tpe" for t in trials)
    assert any(_sampler_of(t) == "random" for t in trials)

    status = study.status_json()
    assert {"tpe", "random"} <= set(status["by_sampler"]), status["by_sampler"]
    assert status["sampler"] == {"name": "random", "kwargs": {}}
    assert status["pruner"] == {"name": "percentile", "kwargs": pruner_kwargs}

    # bad names and kwargs: one line, exit 2, nothing stored
    history = study.sql("SELECT setting_id, kind, spec_json FROM tui_hpo_settings")
    bad = [
        ("set-sampler", "no-such-sampler"),
        ("set-sampler", "random", "--kwargs", '{"no_such_arg": 1}'),
        ("set-sampler", "random", "--kwargs", "{not json"),
        ("set-sampler", "tpe", "--kwargs", '{"n_startup_trials": "ten"}'),
        ("set-pruner", "no-such-pruner"),
        ("set-pruner", "median", "--kwargs", '{"no_such_arg": 1}'),
        ("set-pruner", "percentile", "--kwargs", "[1, 2]"),
    ]
    for _, proc in _run_all(study, [(c, study.name, *rest) for c, *rest in bad]):
        assert_one_line_error(proc)
    assert study.sql("SELECT setting_id, kind, spec_json FROM tui_hpo_settings") == history


# prune-trial ----------------------------------------------------------------------------------


def _prune_a_running_trial(study: RunningStudy) -> tuple[int, float]:
    """Order a RUNNING trial (one that has just started) pruned; (its number, when the command
    returned). A trial that ends on its own before the order lands is answered "not running",
    and another is picked."""
    for _ in range(4):
        (t, *_rest) = wait_for(
            lambda: study.running_with_pid(max_steps=1), 120, "a trial to start running"
        )
        proc = study.steer("prune-trial", str(t.number))
        done = time.time()
        if proc.returncode == 2 and "is not running" in proc.stderr:
            continue  # it ended on its own meanwhile
        assert_ok(proc)
        return t.number, done
    raise AssertionError("no trial stayed RUNNING long enough for prune-trial")


def _assert_pruned_on_order(
    study: RunningStudy, number: int, ordered_at: float, steps: int
) -> None:
    wait_for(lambda: study.trial_state(number) != "RUNNING", 60, f"trial {number} to end")
    t = study.trial(number)
    assert t.state.name == "PRUNED", (t.state, t.user_attrs)
    assert completed_at(t) <= ordered_at + 2.0, completed_at(t) - ordered_at
    assert len(t.intermediate_values) < steps, t.intermediate_values  # cut short
    rows = study.sql(
        "SELECT action, handled_at, outcome FROM tui_hpo_requests WHERE trial_number = :n",
        n=number,
    )
    assert [(r[0], r[2]) for r in rows] == [("prune", "pruned")], rows
    assert rows[0][1] is not None


def test_prune_trial(study: RunningStudy) -> None:
    study.launch(SLOW, "--pruner", "none", workers=1, n_trials=6, env={"TUI_HPO_DEMO_SLEEP": "0.5"})
    number, ordered_at = _prune_a_running_trial(study)
    _assert_pruned_on_order(study, number, ordered_at, steps=10)
    # only the order pruned: no other trial of this pruner-less study was pruned
    others = [t for t in study.trials() if t.number != number and t.state.name == "PRUNED"]
    assert not others, [t.number for t in others]


MULTI_OBJECTIVE = """\
import time

import optuna


def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(50):
        time.sleep(0.2)
        trial.report(x * (50 - step), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x, 1.0 - x


objective.directions = ["minimize", "minimize"]
"""


def test_prune_trial_multi_objective(study: RunningStudy) -> None:
    path = study.tmp_path / "two_objectives.py"
    path.write_text(MULTI_OBJECTIVE)
    study.launch(f"{path}:objective", workers=1, n_trials=4)
    number, ordered_at = _prune_a_running_trial(study)
    _assert_pruned_on_order(study, number, ordered_at, steps=50)
    assert len(optuna.load_study(study_name="S", storage=study.storage).directions) == 2


# fail-trial -----------------------------------------------------------------------------------


def test_fail_trial_kills_a_hung_worker_and_replaces_it(study: RunningStudy) -> None:
    study.launch(HANG, workers=2, n_trials=4)
    first = wait_for(
        lambda: (r := study.running_with_pid()) and len(r) == 2 and r, 120, "two hung trials"
    )
    seen_pids = {t.user_attrs["tui_hpo.pid"] for t in first}
    victim = first[0]
    pid = victim.user_attrs["tui_hpo.pid"]
    assert alive(pid)

    proc = study.steer("fail-trial", str(victim.number))
    returned = time.time()
    assert_ok(proc)
    wait_for(lambda: study.trial_state(victim.number) == "FAIL", 2, "the trial to be FAIL")
    t = study.trial(victim.number)
    assert completed_at(t) <= returned + 2.0
    assert "fail-trial" in t.user_attrs["tui_hpo.fail_reason"], t.user_attrs
    wait_for(lambda: not alive(pid), 10, f"worker pid {pid} to be gone")
    other = first[1]
    assert study.trial_state(other.number) == "RUNNING"  # the other worker's trial is untouched

    def replacement() -> FrozenTrial | None:
        fresh = [
            t for t in study.running_with_pid() if t.user_attrs["tui_hpo.pid"] not in seen_pids
        ]
        return fresh[0] if fresh else None

    new = wait_for(replacement, 120, "a replacement worker to take the next trial")
    assert new.number not in (victim.number, other.number)
    new_pid = new.user_attrs["tui_hpo.pid"]
    rows = {w["pid"]: w for w in study.workers_json(all_=True)}
    assert rows[pid]["state"] == "exited", rows[pid]
    assert rows[new_pid]["state"] == "running" and rows[new_pid]["trial"] == new.number
    # the replacement runs under the same supervisor, as a new worker row
    assert rows[new_pid]["supervisor_pid"] == rows[pid]["supervisor_pid"]
    assert rows[new_pid]["worker_id"] != rows[pid]["worker_id"]


# freeze / thaw --------------------------------------------------------------------------------


def test_freeze_survives_the_stale_sweep_and_thaw_continues(study: RunningStudy) -> None:
    study.launch(SLOW, workers=1, n_trials=3, env={"TUI_HPO_DEMO_SLEEP": "0.5"})
    wait_for(lambda: study.running_with_pid(max_steps=1), 120, "a trial to start")

    study.ok("freeze")
    (frozen,) = study.running_with_pid()
    pid = frozen.user_attrs["tui_hpo.pid"]
    (row,) = study.live_rows()
    assert row["pid"] == pid
    assert proc_state(pid) == "T"
    assert proc_state(row["supervisor_pid"]) != "T"  # it beats for the frozen trial meanwhile
    steps_when_frozen = len(frozen.intermediate_values)

    time.sleep(5)  # more than the 2 s grace period
    sweeper = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, warnings, optuna\n"
                "warnings.simplefilter('ignore')\n"
                "storage = optuna.storages.RDBStorage(sys.argv[1], heartbeat_interval=1, "
                "grace_period=2)\n"
                "study = optuna.load_study(study_name=sys.argv[2], storage=storage)\n"
                "optuna.storages.fail_stale_trials(study)\n"
            ),
            study.url,
            study.name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sweeper.returncode == 0, sweeper.stderr
    t = study.trial(frozen.number)
    assert t.state.name == "RUNNING"
    assert len(t.intermediate_values) == steps_when_frozen  # it really stood still
    (w,) = study.workers_json()
    assert w["state"] == "frozen" and w["pid"] == pid

    study.ok("thaw")
    assert proc_state(pid) != "T"
    wait_for(lambda: study.trial_state(frozen.number) != "RUNNING", 60, "the trial to end")
    t = study.trial(frozen.number)
    assert t.state.name == "COMPLETE", t.user_attrs
    assert len(t.intermediate_values) == 10


# enqueue --------------------------------------------------------------------------------------


def test_enqueue_runs_those_params_and_refuses_bad_ones(study: RunningStudy) -> None:
    study.launch(QUADRATIC, workers=1, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.05"})
    wait_for(lambda: study.count_ended() >= 1, 120, "a trial to end")

    bad = {
        '{"x": 11.0, "y": -1.0, "lr": 0.001}': "outside",
        '{"x": 1.0, "lr": 1.0}': "outside",
        '{"x": 1.0, "z": 0.5}': "unknown",
        '{"x": "one"}': "outside",
    }
    commands = [("enqueue", study.name, "--params", params) for params in bad]
    for command, proc in _run_all(study, commands):
        assert_one_line_error(proc, bad[command[-1]])
    assert study.sql("SELECT count(*) FROM trials WHERE state = 'WAITING'") == [(0,)]
    assert not [t for t in study.trials() if "fixed_params" in t.system_attrs]

    wanted = {"x": 1.5, "y": -1.0, "lr": 0.001}
    queued_at = study.ok("enqueue", "--params", json.dumps(wanted))

    def ran() -> FrozenTrial | None:
        hits = [t for t in study.trials() if t.params == wanted and t.state.is_finished()]
        return hits[0] if hits else None

    t = wait_for(ran, 60, "the queued trial to run")
    assert t.state.name == "COMPLETE", t.state
    assert t.value == pytest.approx((1.5 - 2.0) ** 2)
    assert started_at(t) > queued_at - 5  # it is the queued one, not an earlier coincidence
    assert [x.number for x in study.trials() if x.params == wanted] == [t.number]


# stop -----------------------------------------------------------------------------------------


def test_stop_lets_every_worker_finish_its_trial_and_leave(study: RunningStudy) -> None:
    trial_s = 1.0
    study.launch(SLOW, workers=2, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.1"})
    wait_for(lambda: len(study.running_with_pid()) == 2, 120, "both workers to run a trial")
    rows = study.live_rows()
    pids = {p for r in rows for p in (r["pid"], r["supervisor_pid"])}
    assert len(pids) == 4

    stopped_at = study.ok("stop")
    wait_for(lambda: not any(alive(p) for p in pids), 60, "every worker process to exit")
    took = time.time() - stopped_at
    assert took <= trial_s + 5, f"workers took {took:.1f}s to leave"

    rows = study.workers_json(all_=True)
    assert len(rows) == 2, rows
    assert all(w["state"] == "exited" and w["exit_code"] == 0 for w in rows), rows
    assert not [t.number for t in study.trials() if t.state.name == "RUNNING"]


# scale ----------------------------------------------------------------------------------------


def test_scale_up_and_down(study: RunningStudy) -> None:
    env = {"TUI_HPO_DEMO_SLEEP": "0.1"}
    study.launch(SLOW, workers=1, n_trials=500, env=env)
    wait_for(lambda: study.running_with_pid(), 120, "the first worker to run")

    scaled_at = study.ok("scale", "3", env=env)

    def live_local() -> list[dict[str, Any]]:
        return [w for w in study.live_rows() if w["host"] == socket.gethostname()]

    wait_for(lambda: len(live_local()) == 3, 10, "3 live local workers")
    assert time.time() - scaled_at <= 10
    rows = study.workers_json()
    assert len([w for w in rows if w["state"] not in ("exited", "lost")]) == 3, rows
    assert all(w["host"] == socket.gethostname() for w in rows)
    wait_for(
        lambda: len({t.user_attrs["tui_hpo.worker"] for t in study.running_with_pid()}) == 3,
        60,
        "all three workers to run trials",
    )

    first = min(w["worker_id"] for w in rows)
    study.ok("scale", "1")
    wait_for(lambda: len(study.live_rows()) == 1, 60, "two workers to leave")
    (kept,) = study.workers_json()
    assert kept["worker_id"] == first
    gone = [w for w in study.workers_json(all_=True) if w["worker_id"] != first]
    assert len(gone) == 2 and all(w["state"] == "exited" and w["exit_code"] == 0 for w in gone)
    # the one left goes on taking trials
    before = study.count_ended()
    wait_for(lambda: study.count_ended() > before, 60, "the remaining worker to go on")


# workers --json -------------------------------------------------------------------------------


def test_workers_json_fields(study: RunningStudy) -> None:
    study.launch(SLOW, workers=2, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.2"})
    wait_for(lambda: len(study.running_with_pid()) == 2, 120, "both workers to run a trial")
    running = {t.user_attrs["tui_hpo.pid"]: t.number for t in study.running_with_pid()}

    rows = study.workers_json()
    assert len(rows) == 2, rows
    for w in rows:
        assert set(WORKER_FIELDS) <= set(w), w
        assert w["host"] == socket.gethostname()
        assert isinstance(w["pid"], int) and alive(w["pid"])
        assert isinstance(w["supervisor_pid"], int) and alive(w["supervisor_pid"])
        assert w["gpu"] == "none"  # GPUs hidden from these CPU-only workers
        assert w["state"] in ("running", "idle"), w
        assert w["sampler"] == "tpe"
        assert isinstance(w["heartbeat_age_s"], (int, float)) and 0 <= w["heartbeat_age_s"] < 30
        assert w["study"] == "S"
        if w["state"] == "running":
            assert isinstance(w["trial"], int)
        else:
            assert w["trial"] is None
    # at least one row caught mid-trial names the trial that worker runs
    mid = [w for w in rows if w["state"] == "running" and running.get(w["pid"]) == w["trial"]]
    trials_by_number = {t.number: t for t in study.trials()}
    for w in rows:
        if w["trial"] is not None:
            assert trials_by_number[w["trial"]].user_attrs["tui_hpo.pid"] == w["pid"]
    assert mid or all(w["state"] == "idle" for w in rows), (rows, running)


# two controllers at once ----------------------------------------------------------------------


def _together(study: RunningStudy, *commands: tuple[str, ...]) -> None:
    """Start the commands at the same moment; each must succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tui_hpo", c[0], study.name, *c[1:], "--storage", study.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for c in commands
    ]
    for c, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, (c, p.returncode, out, err)


def _orders(study: RunningStudy) -> tuple[bool, str, str]:
    from tui_hpo.control import orders as control
    from tui_hpo.data import summaries as reads

    with study.engine.connect() as con:
        o = control.read_orders(con, reads.study_ids(con)[study.name])
    return o.paused, o.sampler.name, o.pruner.name


def test_two_controllers_at_once(study: RunningStudy) -> None:
    study.launch(QUADRATIC, workers=1, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.05"})
    wait_for(lambda: study.count_ended() >= 1, 120, "a trial to end")
    (n_settings,) = study.sql("SELECT count(*) FROM tui_hpo_settings")[0]

    rounds = [
        (("pause",), ("set-sampler", "random"), (True, "random", "median")),
        (("resume",), ("set-pruner", "none"), (False, "random", "none")),
        (("pause",), ("set-sampler", "qmc"), (True, "qmc", "none")),
        (("resume",), ("set-pruner", "hyperband"), (False, "qmc", "hyperband")),
        (("pause",), ("set-sampler", "random"), (True, "random", "hyperband")),
    ]
    for flag, switch, expected in rounds:
        _together(study, flag, switch)
        assert _orders(study) == expected, (flag, switch)

    status = study.status_json()
    assert status["paused"] is True
    assert status["sampler"] == {"name": "random", "kwargs": {}}
    # every switch is in the history, none lost to the other controller's write
    history = study.sql("SELECT kind, spec_json FROM tui_hpo_settings ORDER BY setting_id")
    assert len(history) == n_settings + 5
    assert [(k, json.loads(j)["name"]) for k, j in history[n_settings:]] == [
        ("sampler", "random"),
        ("pruner", "none"),
        ("sampler", "qmc"),
        ("pruner", "hyperband"),
        ("sampler", "random"),
    ]


# bad commands ---------------------------------------------------------------------------------

STEERING = [
    ("pause",),
    ("resume",),
    ("freeze",),
    ("thaw",),
    ("set-sampler", "random"),
    ("set-pruner", "median"),
    ("prune-trial", "0"),
    ("fail-trial", "0"),
    ("enqueue", "--params", '{"x": 0.5}'),
    ("stop",),
    ("scale", "2"),
]


def _run_all(
    study: RunningStudy, commands: list[tuple[str, ...]]
) -> list[tuple[tuple[str, ...], Any]]:
    """Run the commands (two at a time: this machine has few cores) and collect the results."""
    results = []
    for i in range(0, len(commands), 2):
        batch = commands[i : i + 2]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tui_hpo", *c, "--storage", study.url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
            )
            for c in batch
        ]
        for c, p in zip(batch, procs, strict=True):
            out, err = p.communicate(timeout=120)
            results.append((c, subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    return results


def _snapshot(study: RunningStudy) -> dict[str, Any]:
    out = {}
    for table in (
        "tui_hpo_requests",
        "tui_hpo_studies",
        "tui_hpo_settings",
        "tui_hpo_workers",
        "studies",
        "trials",
        "trial_user_attributes",
    ):
        out[table] = study.sql(f"SELECT * FROM {table}")
    return out


def _in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """A command run in this process through click's CliRunner (fast: each of these fails
    before anything is written or signalled), as a CompletedProcess."""
    from click.testing import CliRunner

    from tui_hpo.cli import cli

    result = CliRunner().invoke(cli, list(args), prog_name="tui-hpo")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def test_bad_steering_commands_change_nothing(study: RunningStudy) -> None:
    from tui_hpo.storage import tables

    real = optuna.create_study(study_name=study.name, storage=study.storage)
    real.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    real.enqueue_trial({"x": 0.25})  # trial 2: WAITING
    tables.ensure(study.engine)
    before = _snapshot(study)

    commands = [(c[0], "no-such-study", *c[1:]) for c in STEERING] + [
        ("prune-trial", study.name, "99"),
        ("fail-trial", study.name, "99"),
        ("prune-trial", study.name, "0"),
        ("fail-trial", study.name, "1"),
        ("prune-trial", study.name, "2"),
        ("fail-trial", study.name, "2"),
    ]
    # most in this process; a few as real commands, the way a user meets them
    real_ones = [
        ("pause", "no-such-study"),
        ("fail-trial", study.name, "1"),
        ("prune-trial", study.name, "99"),
    ]
    results = _run_all(study, real_ones) + [
        (c, _in_process(*c, "--storage", study.url)) for c in commands if c not in real_ones
    ]
    assert len(results) == len(commands)
    for command, proc in results:
        assert proc.stdout == "", (command, proc.stdout)
        if command[1] == "no-such-study":
            line = assert_one_line_error(proc, "no study named")
            assert "'no-such-study'" in line
        elif command[2] == "99":
            assert_one_line_error(proc, "trial 99 does not exist")
        elif command[2] == "2":
            assert_one_line_error(proc, "trial 2 is not running (it is WAITING)")
        else:
            assert_one_line_error(proc, f"trial {command[2]} is not running (it is COMPLETE)")
    assert _snapshot(study) == before
    assert study.sql("SELECT count(*) FROM tui_hpo_requests") == [(0,)]


# bugs found while writing these tests, fixed: they stay as regression tests ---------------------
# These run on SQLite only: the code at fault does not depend on the storage, and SQLite's
# single write lock is what makes the first one reproducible in seconds.


@pytest.fixture
def sqlite_study(sqlite_url: str, workdir: Path) -> Iterator[RunningStudy]:
    s = RunningStudy(sqlite_url, "S", workdir)
    try:
        yield s
    finally:
        s.cleanup()


WRITER = """\
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    for i in range(100):
        trial.set_user_attr(f"step{i % 5}", i)
    return x


objective.directions = ["minimize"]
"""


def test_freeze_of_a_worker_in_the_middle_of_a_write(sqlite_study: RunningStudy) -> None:
    """Freeze/thaw a worker whose trials write to the storage all the time. ``freeze`` here is
    the function behind the command, on an engine that waits 5 s for the write lock instead of
    the CLI's 120 s (the outcome is the same, only sooner)."""
    from tui_hpo.control import local_workers

    s = sqlite_study
    path = s.tmp_path / "writer.py"
    path.write_text(WRITER)
    s.launch(f"{path}:objective", workers=1, n_trials=100000)
    wait_for(lambda: s.count_ended() >= 1, 120, "a trial to end")
    (row,) = s.live_rows()
    engine = sa.create_engine(s.url, connect_args={"timeout": 5}, poolclass=sa.pool.NullPool)
    try:
        for _ in range(200):
            local_workers.freeze(engine, row["study_id"])
            assert proc_state(row["pid"]) == "T"
            local_workers.thaw(engine, row["study_id"])
            assert proc_state(row["pid"]) != "T"
    finally:
        engine.dispose()


def test_thaw_keeps_a_paused_worker_shown_paused(sqlite_study: RunningStudy) -> None:
    s = sqlite_study
    s.launch(QUADRATIC, workers=1, n_trials=1000, env={"TUI_HPO_DEMO_SLEEP": "0.05"})
    wait_for(lambda: s.count_ended() >= 1, 120, "a trial to end")
    s.ok("pause")
    wait_for(lambda: [r["state"] for r in s.live_rows()] == ["paused"], 60, "paused")
    s.ok("freeze")
    s.ok("thaw")
    assert s.status_json()["paused"] is True
    wait_for(
        lambda: [w["state"] for w in s.workers_json()] == ["paused"],
        10,
        "the thawed worker to show paused again",
        every=1,
    )


def test_a_frozen_worker_that_dies_is_swept_like_any_other(sqlite_study: RunningStudy) -> None:
    s = sqlite_study
    s.launch(SLOW, workers=1, n_trials=2, env={"TUI_HPO_DEMO_SLEEP": "0.5"})
    wait_for(lambda: s.running_with_pid(max_steps=1), 120, "a trial to start")
    s.ok("freeze")
    (trial,) = s.running_with_pid()
    (row,) = s.live_rows()
    kill_group(row["supervisor_pid"])  # the whole worker, as a reboot of its machine would
    wait_for(lambda: not alive(row["pid"]) and not alive(row["supervisor_pid"]), 10, "death")
    time.sleep(5)  # past the 2 s grace period
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(s.url, heartbeat_interval=1, grace_period=2)
        try:
            optuna.storages.fail_stale_trials(optuna.load_study(study_name="S", storage=storage))
        finally:
            storage.engine.dispose()
    assert s.trial_state(trial.number) == "FAIL"


def test_scale_recipe_keeps_the_poll_interval(tmp_path: Path) -> None:
    from tui_hpo.runtime.spawn import WorkerRecipe
    from tui_hpo.storage.engines import Heartbeat

    recipe = WorkerRecipe(
        objective=SLOW,
        study="S",
        storage_url="sqlite:///x.db",
        gpus=[],
        workers_per_gpu=None,
        heartbeat=Heartbeat(1, 2, None),
        log_dir=tmp_path,
        poll_interval=0.2,
    )
    back = WorkerRecipe.from_json(recipe.to_json(), "S", "sqlite:///x.db")
    assert back.poll_interval == 0.2


def test_fail_trial_spares_a_process_that_reused_a_dead_workers_pid(
    sqlite_study: RunningStudy,
) -> None:
    """A worker died (no supervisor left to tidy up) and left its trial RUNNING; its pid now
    belongs to an unrelated process, played here by ``sleep``."""
    from tui_hpo.storage import tables

    s = sqlite_study
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        optuna_study = optuna.create_study(study_name=s.name, storage=s.storage)
        trial = optuna_study.ask()
        tables.ensure(s.engine)
        with s.engine.begin() as con:
            worker_id = con.execute(
                tables.workers.insert().values(
                    study_id=optuna_study._study_id,
                    host=socket.gethostname(),
                    pid=stranger.pid,
                    state="running",
                    trial_number=trial.number,
                    trials_done=0,
                    stop_requested=False,
                    # the worker registered a minute ago and died; its pid went to `sleep` since
                    started_at=sa.func.datetime("now", "-60 seconds"),
                )
            ).inserted_primary_key[0]
        for key, value in (
            ("tui_hpo.host", socket.gethostname()),
            ("tui_hpo.pid", stranger.pid),
            ("tui_hpo.worker", worker_id),
        ):
            optuna_study._storage.set_trial_user_attr(trial._trial_id, key, value)

        assert_ok(s.steer("fail-trial", str(trial.number)))
        assert s.trial_state(trial.number) == "FAIL"
        time.sleep(0.5)
        assert stranger.poll() is None, "fail-trial killed an unrelated process"
    finally:
        stranger.kill()
        stranger.wait()
