"""A plain ``study.optimize`` script with ``callbacks=[tui_hpo.attach(study)]`` obeys the
steering commands: it shows up in ``workers``, waits while paused, goes on after resume, takes
a switched sampler from its next trial, and leaves on ``stop`` (exit code 0, budget unspent).

The script runs as a subprocess of its own, exactly as a user runs it; the commands are
``python -m tui_hpo`` subprocesses (helpers shared with tests/steering).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.steering.running import RunningStudy, cli_env, started_at
from tests.support import alive, wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.e2e

N_TRIALS = 500

PLAIN_SCRIPT = """\
import sys
import time

import optuna

import tui_hpo

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, name, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
study = optuna.create_study(study_name=name, storage=url, load_if_exists=True)


def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    time.sleep(0.2)
    return x * x


study.optimize(objective, n_trials=n_trials, callbacks=[tui_hpo.attach(study)])
print("optimize returned after", len(study.trials), "trials")
"""


@pytest.fixture
def study(storage_url: str, workdir: Path) -> Iterator[RunningStudy]:
    s = RunningStudy(storage_url, "plain", workdir)
    try:
        yield s
    finally:
        s.cleanup()


def test_plain_optuna_script_obeys_steering(study: RunningStudy) -> None:
    script = study.tmp_path / "plain_script.py"
    script.write_text(PLAIN_SCRIPT)
    out = study.tmp_path / "plain_script.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(script), study.url, study.name, str(N_TRIALS)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=cli_env(),
            start_new_session=True,
        )
    study.popens.append(proc)

    def ended() -> int:
        assert proc.poll() is None, out.read_text()
        return sum(1 for t in study.trials() if t.state.is_finished()) if study.worker_rows() else 0

    wait_for(lambda: ended() >= 3, 120, "the script to run trials")
    (me,) = [w for w in study.workers_json() if w["pid"] == proc.pid]
    assert me["state"] in ("running", "idle"), me

    # pause: the loop waits between trials
    paused_at = study.ok("pause")
    time.sleep(3)
    late = [
        (t.number, started_at(t) - paused_at)
        for t in study.trials()
        if started_at(t) > paused_at + 1.0
    ]
    assert not late, f"trials started more than 1 s after pause returned: {late}"
    assert proc.poll() is None
    (me,) = study.workers_json()
    assert me["state"] == "paused", me
    assert study.status_json()["paused"] is True

    before = len(study.trials())
    study.ok("resume")
    wait_for(lambda: len(study.trials()) > before + 1, 60, "trials to start again after resume")

    # set-sampler: from the next trial on
    switch_from = time.time()
    switch_to = study.ok("set-sampler", "random")
    wait_for(
        lambda: sum(1 for t in study.trials() if started_at(t) > switch_to) >= 3,
        60,
        "trials after the switch",
    )
    for t in study.trials():
        sampler = t.user_attrs["tui_hpo.sampler"]
        if started_at(t) < switch_from:
            assert sampler == {"name": "TPESampler", "kwargs": {}}, t.number  # its own
        if started_at(t) > switch_to:
            assert sampler == {"name": "random", "kwargs": {}}, t.number
        assert t.user_attrs["tui_hpo.pid"] == proc.pid

    # stop: the script's optimize returns and it exits on its own
    study.ok("stop")
    assert proc.wait(timeout=60) == 0, out.read_text()
    assert "optimize returned" in out.read_text()
    trials = study.trials()
    assert len(trials) < N_TRIALS
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    (me,) = study.workers_json(all_=True)
    assert me["state"] == "exited" and me["exit_code"] == 0, me
    assert not alive(proc.pid)
