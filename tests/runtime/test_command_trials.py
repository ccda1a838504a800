"""Programs as objectives, end to end: a W&B sweep file and an argparse script that knows
nothing of tui-hpo, run by ``tui-hpo launch`` with real workers; outcomes read back from the
storage with Optuna itself, from the trials' output files and from the process table."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import optuna
import psutil
import pytest

from tests.support import Cli, alive, clean_env, load_trials, wait_for

pytestmark = pytest.mark.e2e

NO_GPU = {"TUI_HPO_GPU_COUNT": "0"}

TRAIN = """\
# an ordinary training script: flags in, "epoch N val_loss: X" out; nothing of tui-hpo
import argparse, math, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--layers", type=int, required=True)
p.add_argument("--act", required=True)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
if a.act == "crash":
    print("loading data", flush=True)
    print("RuntimeError: CUDA out of memory (simulated)", file=sys.stderr, flush=True)
    sys.exit(3)
base = abs(math.log10(a.lr) + 2.5) + 0.1 * a.layers + (0.05 if a.act == "tanh" else 0.0)
for epoch in range(1, a.epochs + 1):
    time.sleep(a.sleep)
    print(f"epoch {epoch} train_loss: {base + 2 / epoch:.6f} val_loss: {base + 1 / epoch:.6f}",
          flush=True)
print("gpu " + os.environ.get("CUDA_VISIBLE_DEVICES", "?") + " trial "
      + os.environ.get("TUI_HPO_TRIAL_NUMBER", "?"), flush=True)
"""


def expected_curve(params: dict[str, object], epochs: int) -> list[float]:
    """What TRAIN prints as val_loss, epoch by epoch, rounded as it prints."""
    lr, layers, act = float(params["lr"]), int(params["layers"]), params["act"]  # type: ignore[arg-type]
    base = abs(math.log10(lr) + 2.5) + 0.1 * layers + (0.05 if act == "tanh" else 0.0)
    return [float(f"{base + 1 / e:.6f}") for e in range(1, epochs + 1)]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder: train.py and its sweep files."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    return folder


def launch_sweep(
    cli: Cli,
    url: str,
    sweep: Path,
    *extra: str,
    cwd: Path,
    timeout: float = 240,
    env: dict[str, str] | None = None,
) -> object:
    return cli(
        "launch",
        "--sweep",
        str(sweep),
        "--storage",
        url,
        "--log-dir",
        str(cwd / "logs"),
        *extra,
        env=env or NO_GPU,
        cwd=cwd,
        timeout=timeout,
    )


def test_a_wandb_sweep_file_runs_an_unadapted_script_to_exact_counts(
    cli: Cli, storage_url: str, project: Path, tmp_path: Path
) -> None:
    """12 trials over 2 workers: exactly 12, the values equal the last printed val_loss, every
    epoch is an intermediate value, a kept metric is a user attr, and a crashing run's
    exit code and stderr are its fail reason."""
    sweep = write(
        project,
        "sweep.yaml",
        """\
        name: w-and-b
        program: train.py
        method: random
        metric:
          name: val_loss
          goal: minimize
        parameters:
          lr:
            distribution: log_uniform_values
            min: 0.0001
            max: 0.1
          layers:
            distribution: int_uniform
            min: 1
            max: 4
          act:
            values: [relu, tanh, crash]
          epochs:
            value: 4
        run_cap: 12
        entity: my-team
        keep: [train_loss]
        """,
    )
    two_gpus = {"TUI_HPO_GPU_COUNT": "2"}  # pretend GPUs: each worker pinned to one
    out = launch_sweep(
        cli, storage_url, sweep, "--workers", "2", "--gpus", "0,1", cwd=tmp_path, env=two_gpus
    )
    assert "Traceback" not in out.stderr, out.stderr  # type: ignore[attr-defined]
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    assert "ignoring 'entity'" in out.stderr  # type: ignore[attr-defined]

    trials = load_trials(storage_url, "w-and-b")
    assert len(trials) == 12
    assert [t.number for t in trials] == list(range(12))
    by_state = Counter(t.state.name for t in trials)
    assert by_state["COMPLETE"] + by_state["FAIL"] == 12, by_state
    for t in trials:
        assert set(t.params) == {"lr", "layers", "act", "epochs"}
        assert t.params["epochs"] == 4
        output = Path(t.user_attrs["tui_hpo.output"])
        assert output.is_file()
        if t.params["act"] == "crash":
            assert t.state.name == "FAIL"
            reason = t.user_attrs["tui_hpo.fail_reason"]
            assert "exit code 3" in reason and "CUDA out of memory (simulated)" in reason, reason
            assert "CUDA out of memory" in output.read_text()
            continue
        curve = expected_curve(t.params, 4)
        assert t.state.name == "COMPLETE", t.user_attrs
        assert t.value == pytest.approx(curve[-1], abs=1e-9)
        assert t.intermediate_values == {
            e: pytest.approx(v, abs=1e-9) for e, v in zip(range(1, 5), curve, strict=True)
        }
        assert t.user_attrs["train_loss"] == pytest.approx(curve[-1] + 1 / 4, abs=1e-6)
        text = output.read_text()
        assert "epoch 4" in text
        assert f"gpu {t.user_attrs['tui_hpo.gpu']} trial {t.number}" in text  # its worker's
    assert {t.user_attrs["tui_hpo.gpu"] for t in trials} <= {"0", "1"}


def test_a_grid_sweep_runs_every_point_once(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    sweep = write(
        project,
        "grid.yaml",
        """\
        name: grid
        program: train.py
        method: grid
        metric: {name: val_loss, goal: minimize}
        parameters:
          lr: {values: [0.001, 0.01, 0.1]}
          layers: {values: [1, 2]}
          act: {values: [relu, tanh]}
          epochs: {value: 2}
        """,
    )
    out = launch_sweep(cli, sqlite_url, sweep, "--workers", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    trials = load_trials(sqlite_url, "grid")
    points = [(t.params["lr"], t.params["layers"], t.params["act"]) for t in trials]
    assert len(points) == 12  # the budget defaults to the grid's size
    assert sorted(points) == sorted(
        (lr, n, act) for lr in (0.001, 0.01, 0.1) for n in (1, 2) for act in ("relu", "tanh")
    )
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_hyperband_prunes_command_trials(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    """early_terminate: hyperband prunes runs whose curves are worse; a pruned trial keeps
    the reports it made, and its program is gone."""
    sweep = write(
        project,
        "hb.yaml",
        """\
        name: hb
        program: train.py
        method: random
        metric: {name: val_loss, goal: minimize}
        parameters:
          lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
          layers: {distribution: int_uniform, min: 1, max: 8}
          act: {values: [relu, tanh]}
          epochs: {value: 9}
          sleep: {value: 0.02}
        early_terminate: {type: hyperband, min_iter: 1, eta: 3}
        run_cap: 30
        """,
    )
    out = launch_sweep(cli, sqlite_url, sweep, "--workers", "2", "--seed", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    trials = load_trials(sqlite_url, "hb")
    assert len(trials) == 30
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, Counter(t.state.name for t in trials)
    assert all(1 <= len(t.intermediate_values) <= 9 for t in pruned)
    reported = sorted(len(t.intermediate_values) for t in pruned)
    assert reported[0] < 9, reported  # cut short: the program did not run to its end
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete and all(len(t.intermediate_values) == 9 for t in complete)
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and str(project / "train.py") in " ".join(p.info["cmdline"])
    ]
    assert leftovers == []


def test_the_command_short_form_and_logs(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    out = cli(
        "launch",
        "--command",
        f"{sys.executable} train.py --lr {{lr}} --layers {{layers}} --act relu --epochs 3",
        "--param",
        "lr=log_uniform_values:1e-4:1e-1",
        "--param",
        "layers=int_uniform:1:8",
        "--metric",
        "val_loss:minimize",
        "--cwd",
        str(project),
        "--study",
        "short",
        "--n-trials",
        "4",
        "--storage",
        sqlite_url,
        "--log-dir",
        str(tmp_path / "logs"),
        env=NO_GPU,
        cwd=tmp_path,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    trials = load_trials(sqlite_url, "short")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    for t in trials:
        assert t.value == pytest.approx(expected_curve(dict(t.params, act="relu"), 3)[-1])
    shown = cli("logs", "short", "2", "--storage", sqlite_url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "epoch 3" in shown.stdout and "trial 2" in shown.stdout
    missing = cli("logs", "short", "9", "--storage", sqlite_url, cwd=tmp_path)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == ["error: study 'short' has no trial 9"]


SLOW_SCRIPT = """\
import itertools, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"child {child.pid}", flush=True)
for epoch in itertools.count(1):
    print(f"epoch {epoch} loss: {1 / epoch:.5f}", flush=True)
    time.sleep(0.2)
"""


def program_pids(output: Path) -> list[int]:
    """The program (the output file's writer's child) and its grandchild, from its output."""
    text = output.read_text() if output.exists() else ""
    pids = [int(line.split()[1]) for line in text.splitlines() if line.startswith("child ")]
    return pids


def running_trial(url: str, study: str) -> optuna.trial.FrozenTrial:
    def found() -> optuna.trial.FrozenTrial | None:
        for t in load_trials(url, study):
            if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2:
                return t
        return None

    return wait_for(found, 90, "a running command trial with two reports")


@pytest.mark.parametrize("verb", ["prune-trial", "fail-trial", "freeze"])
def test_steering_reaches_a_command_trial_and_its_children(
    verb: str, cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    (project / "slow.py").write_text(SLOW_SCRIPT)
    out = cli(
        "launch",
        "--command",
        f"{sys.executable} slow.py --x {{x}}",
        "--param",
        "x=uniform:0:1",
        "--metric",
        "loss",
        "--cwd",
        str(project),
        "--study",
        "steer",
        "--n-trials",
        "1",
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
        "--log-dir",
        str(tmp_path / "logs"),
        "--detach",
        env=NO_GPU,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    try:
        trial = running_trial(sqlite_url, "steer")
        output = Path(trial.user_attrs["tui_hpo.output"])
        grandchild = wait_for(lambda: program_pids(output), 30, "the program's child")[0]
        program = psutil.Process(grandchild).parent()
        assert program is not None
        if verb == "freeze":
            assert cli("freeze", "steer", "--storage", sqlite_url).returncode == 0
            assert program.status() == psutil.STATUS_STOPPED
            assert psutil.Process(grandchild).status() == psutil.STATUS_STOPPED
            reports = len(load_trials(sqlite_url, "steer")[0].intermediate_values)
            assert cli("thaw", "steer", "--storage", sqlite_url).returncode == 0
            wait_for(
                lambda: len(load_trials(sqlite_url, "steer")[0].intermediate_values) > reports,
                30,
                "reports after thaw",
            )
            return
        follower = subprocess.Popen(
            [sys.executable, "-m", "tui_hpo", "logs", "steer", str(trial.number), "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env({"TUI_HPO_STORAGE": sqlite_url}),
        )
        done = cli(verb, "steer", str(trial.number), "--storage", sqlite_url)
        assert done.returncode == 0, done.stderr
        followed, _ = follower.communicate(timeout=60)  # ends by itself once the trial has
        assert follower.returncode == 0
        assert followed.startswith("child ") and "epoch 2 loss:" in followed
        wanted = "PRUNED" if verb == "prune-trial" else "FAIL"
        wait_for(lambda: load_trials(sqlite_url, "steer")[0].state.name == wanted, 30, wanted)
        wait_for(lambda: not alive(program.pid) and not alive(grandchild), 20, "program gone")
        if verb == "prune-trial":
            assert len(load_trials(sqlite_url, "steer")[0].intermediate_values) >= 2
    finally:
        cli("stop", "steer", "--storage", sqlite_url)
        for p in psutil.process_iter(["cmdline"]):
            if p.info["cmdline"] and "slow.py" in " ".join(p.info["cmdline"]):
                p.kill()
        for p in psutil.process_iter(["cmdline", "environ"]):
            try:
                if "steer" in " ".join(p.info["cmdline"] or []) and "tui_hpo" in " ".join(
                    p.info["cmdline"] or []
                ):
                    os.kill(p.pid, signal.SIGKILL)
            except (psutil.Error, OSError):
                pass


def test_status_json_names_a_command_trials_failure(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    out = cli(
        "launch",
        "--command",
        f"{sys.executable} train.py --lr {{lr}} --layers 1 --act crash",
        "--param",
        "lr=value:0.01",
        "--metric",
        "val_loss",
        "--cwd",
        str(project),
        "--study",
        "crashing",
        "--n-trials",
        "10",
        "--max-consecutive-failures",
        "2",
        "--storage",
        sqlite_url,
        "--log-dir",
        str(tmp_path / "logs"),
        env=NO_GPU,
        cwd=tmp_path,
    )
    assert out.returncode != 0  # every trial failed: the program is broken, not the search
    assert "Traceback" not in out.stderr
    # the consecutive-failure stop: two FAILs in a row and the search stops, 8 never started
    assert [t.state.name for t in load_trials(sqlite_url, "crashing")] == ["FAIL", "FAIL"]
    status = cli("status", "--study", "crashing", "--json", "--storage", sqlite_url)
    failures = json.loads(status.stdout)["studies"][0]["recent_failures"]
    assert [f["trial"] for f in failures] == [1, 0]
    assert all("exit code 3" in f["reason"] and "out of memory" in f["reason"] for f in failures)


FINITE_SCRIPT = """\
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"child {child.pid} of {os.getpid()}", flush=True)
for epoch in range(1, 41):
    print(f"epoch {epoch} loss: {1 / epoch:.5f}", flush=True)
    time.sleep(0.2)
"""


def test_sigterm_to_a_worker_ends_its_program_and_runs_the_params_again(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    """Preemption (Slurm's SIGTERM) of a worker mid command trial: the program and what it
    started are gone, the trial ends FAIL with the reason and its params run again."""
    (project / "finite.py").write_text(FINITE_SCRIPT)
    out = cli(
        "launch",
        "--command",
        f"{sys.executable} finite.py --x {{x}}",
        "--param",
        "x=uniform:0:1",
        "--metric",
        "loss",
        "--cwd",
        str(project),
        "--study",
        "preempt",
        "--n-trials",
        "2",
        "--workers",
        "2",
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
        "--log-dir",
        str(tmp_path / "logs"),
        "--detach",
        env=NO_GPU,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    trial = running_trial(sqlite_url, "preempt")
    output = Path(trial.user_attrs["tui_hpo.output"])
    grandchild = wait_for(lambda: program_pids(output), 30, "the program's child")[0]
    # its own pid from its output: once it exits, its child's parent is the reaper
    (program,) = [int(line.split()[3]) for line in output.read_text().splitlines()[:1]]
    assert alive(program), "the program ended before the worker was stopped"
    worker_pid = trial.user_attrs["tui_hpo.pid"]
    os.killpg(os.getpgid(worker_pid), signal.SIGTERM)  # the supervisor's group, as Slurm does
    wait_for(lambda: not alive(program) and not alive(grandchild), 30, "program gone")

    def settled() -> Counter[str] | None:
        counts = Counter(t.state.name for t in load_trials(sqlite_url, "preempt"))
        return counts if counts == Counter({"COMPLETE": 2, "FAIL": 1}) else None

    wait_for(settled, 90, "two COMPLETE and the cut one FAIL")
    trials = load_trials(sqlite_url, "preempt")
    cut = trials[trial.number]
    assert cut.user_attrs["tui_hpo.fail_reason"] == "terminated by SIGTERM (preempted or cancelled)"
    (again,) = [t for t in trials if t.user_attrs.get("tui_hpo.retry_of") == trial.number]
    assert again.state.name == "COMPLETE" and again.params == cut.params


def test_a_metric_target_stops_the_search(
    cli: Cli, sqlite_url: str, project: Path, tmp_path: Path
) -> None:
    """W&B's metric.target: the first trial that reaches it stops the search."""
    sweep = write(
        project,
        "target.yaml",
        """\
        name: target
        program: train.py
        method: random
        metric: {name: val_loss, goal: minimize, target: 100}
        parameters:
          lr: {distribution: log_uniform_values, min: 0.001, max: 0.01}
          layers: {value: 1}
          act: {value: relu}
          epochs: {value: 2}
        run_cap: 20
        """,
    )
    out = launch_sweep(cli, sqlite_url, sweep, "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    assert "trial 0 reached the metric target" in out.stderr  # type: ignore[attr-defined]
    trials = load_trials(sqlite_url, "target")
    assert [t.state.name for t in trials] == ["COMPLETE"]
    assert trials[0].value < 100
