"""A command trial in process (``runtime.commands``), against an in-memory Optuna study with
small real programs; and the metric lines it reads (``runtime.metric_lines``)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import psutil
import pytest

from tui_hpo.runtime import commands
from tui_hpo.runtime.commands import CommandFailed, CommandObjective
from tui_hpo.runtime.metric_lines import MetricReader
from tui_hpo.runtime.sweeps import sweep_from_flags, sweep_from_mapping

optuna.logging.set_verbosity(optuna.logging.WARNING)


# metric lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "values", "step"),
    [
        ("val_loss: 0.31", {"val_loss": 0.31}, None),
        ("val_loss=0.31", {"val_loss": 0.31}, None),
        ("epoch 3 val_loss: 0.31", {"val_loss": 0.31}, 3),
        ("Epoch 3/10 - loss: 0.2 - val_loss=0.31", {"val_loss": 0.31, "loss": 0.2}, 3),
        ('{"epoch": 4, "val_loss": 0.25, "other": 1}', {"val_loss": 0.25}, 4),
        ('{"step": 7, "loss": 1e-3}', {"loss": 0.001}, 7),
        ("step=12 val/loss: -1.5e+2", {"val/loss": -150.0}, 12),
        ("val-acc: 0.9 loss: nan", {"val-acc": 0.9, "loss": math.nan}, None),
        ("train_val_loss: 0.5", {}, None),  # another metric whose name ends the same
        ("val_loss is decreasing", {}, None),
        ("nothing here", {}, None),
    ],
)
def test_metric_lines(line: str, values: dict[str, float], step: int | None) -> None:
    reader = MetricReader(["val_loss", "loss", "val/loss", "val-acc"])
    found, at = reader.parse(line)
    assert found.keys() == values.keys()
    for k, v in values.items():
        assert (math.isnan(found[k]) and math.isnan(v)) or found[k] == v
    assert at == (step if found else None)


# the runner -------------------------------------------------------------------------------


def objective_for(
    tmp_path: Path,
    script: str,
    *,
    metrics: tuple[str, ...] = ("val_loss",),
    params: tuple[str, ...] = ("x=uniform:0:1",),
    extra: dict[str, Any] | None = None,
) -> CommandObjective:
    (tmp_path / "prog.py").write_text(script)
    mapping = sweep_from_flags(
        f"{sys.executable} prog.py --x {{x}}", list(params), list(metrics), cwd=tmp_path
    )
    mapping.update(extra or {})
    objective = CommandObjective(sweep_from_mapping(mapping))
    objective.bind(output_dir=tmp_path / "out", study="unit")
    return objective


def run_one(objective: CommandObjective, study: optuna.Study) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    try:
        value = objective(trial)
        study.tell(trial, value)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except CommandFailed as exc:
        trial.set_user_attr("reason", str(exc))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study.trials[-1]


PRINTS = """\
import json, os, sys
x = float(sys.argv[2])
print("starting", flush=True)
for epoch in range(1, 4):
    print(f"epoch {epoch} val_loss: {x / epoch:.6f} lr_now: {0.1 * epoch}", flush=True)
print("env", os.environ.get("TUI_HPO_STUDY"), os.environ.get("TUI_HPO_TRIAL_NUMBER"),
      "storage" if any(k.startswith("TUI_HPO_STORAGE") for k in os.environ) else "clean")
"""


def test_values_reports_kept_metrics_and_output(tmp_path: Path) -> None:
    objective = objective_for(tmp_path, PRINTS, extra={"keep": ["lr_now"]})
    study = optuna.create_study()
    os.environ["TUI_HPO_STORAGE"] = "postgresql://u:secret@h/db"  # the worker's: not passed on
    try:
        t = run_one(objective, study)
    finally:
        del os.environ["TUI_HPO_STORAGE"]
    x = t.params["x"]
    assert t.state.name == "COMPLETE"
    assert t.value == pytest.approx(round(x / 3, 6))
    assert t.intermediate_values == {e: pytest.approx(round(x / e, 6)) for e in (1, 2, 3)}
    assert t.user_attrs["lr_now"] == pytest.approx(0.3)
    assert t.user_attrs["tui_hpo.exit_code"] == 0
    output = Path(t.user_attrs["tui_hpo.output"])
    assert output == tmp_path / "out" / "trial-0.log"
    text = output.read_text()
    assert "starting" in text and "epoch 3" in text and "env unit 0 clean" in text


def test_summary_min_and_the_metrics_file(tmp_path: Path) -> None:
    script = """\
import json, os, sys
with open(os.environ["TUI_HPO_METRICS_FILE"], "a") as f:
    for step, v in enumerate([0.5, 0.2, 0.4]):
        f.write(json.dumps({"step": step, "val_loss": v}) + "\\n")
"""
    objective = objective_for(tmp_path, script, extra={"summary": "min"})
    t = run_one(objective, optuna.create_study())
    assert t.state.name == "COMPLETE"
    assert t.value == 0.2
    assert t.intermediate_values == {0: 0.5, 1: 0.2, 2: 0.4}


def test_several_metrics_make_several_values(tmp_path: Path) -> None:
    script = "print('err: 0.1 size: 300')\nprint('err: 0.05 size: 310')\n"
    objective = objective_for(tmp_path, script, metrics=("err:minimize", "size:minimize"))
    study = optuna.create_study(directions=["minimize", "minimize"])
    trial = study.ask()
    assert objective(trial) == [0.05, 310.0]


def test_a_crash_is_its_exit_code_and_stderr(tmp_path: Path) -> None:
    script = (
        "import sys\nprint('val_loss: 1', flush=True)\n"
        "print('Traceback (most recent call last):', file=sys.stderr)\n"
        "print('ValueError: bad lr', file=sys.stderr)\nsys.exit(3)\n"
    )
    t = run_one(objective_for(tmp_path, script), optuna.create_study())
    assert t.state.name == "FAIL"
    assert t.user_attrs["reason"] == (
        "exit code 3: Traceback (most recent call last): | ValueError: bad lr"
    )


def test_no_metric_printed_is_a_failure(tmp_path: Path) -> None:
    t = run_one(objective_for(tmp_path, "print('done')\n"), optuna.create_study())
    assert t.state.name == "FAIL" and t.user_attrs["reason"] == "printed no val_loss"


def test_a_missing_program_is_one_line(tmp_path: Path) -> None:
    objective = objective_for(tmp_path, "")
    objective.sweep.__dict__["command"] = ("no-such-program-xyz", "{x}")
    t = run_one(objective, optuna.create_study())
    assert t.user_attrs["reason"].startswith("program 'no-such-program-xyz' not found")


class PruneAtTwo(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return len(trial.intermediate_values) >= 2


def test_pruning_ends_the_program_and_what_it_started(tmp_path: Path) -> None:
    script = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"child {child.pid}", flush=True)
for epoch in range(1, 1000):
    print(f"epoch {epoch} val_loss: {1 / epoch}", flush=True)
    time.sleep(0.05)
"""
    objective = objective_for(tmp_path, script, extra={"kill_grace": 2})
    t = run_one(objective, optuna.create_study(pruner=PruneAtTwo()))
    assert t.state.name == "PRUNED"
    assert t.intermediate_values == {1: 1.0, 2: 0.5}
    lines = Path(t.user_attrs["tui_hpo.output"]).read_text().splitlines()
    child = int(next(line for line in lines if line.startswith("child")).split()[1])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the program's child outlived the pruned trial"
        time.sleep(0.05)


def test_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "OUTPUT_CAP", 10_000)
    script = "for i in range(5000):\n    print('x' * 50)\nprint('val_loss: 1')\n"
    t = run_one(objective_for(tmp_path, script), optuna.create_study())
    assert t.state.name == "COMPLETE" and t.value == 1.0  # read in full, kept in part
    text = Path(t.user_attrs["tui_hpo.output"]).read_text()
    assert len(text) < 10_200
    assert "output capped at 10000 bytes" in text


def test_the_worker_pinning_reaches_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    script = "import os\nprint(json_dump := 'val_loss: ' + os.environ['CUDA_VISIBLE_DEVICES'])\n"
    t = run_one(objective_for(tmp_path, script), optuna.create_study())
    assert t.value == 3.0
    assert json.dumps(t.value) == "3.0"
