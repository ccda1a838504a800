"""Bad sweep files and ``--command`` flags: one ``error:`` line naming the file and line, exit 2,
no traceback, and nothing written (no storage file, no log folder)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tui_hpo.cli import cli as tui_hpo_command

pytestmark = pytest.mark.e2e

GOOD_PARAMS = """\
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(tui_hpo_command, list(args), prog_name="tui-hpo")


def assert_one_error(result: Result, *needles: str) -> str:
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def launch_sweep(folder: Path, text: str) -> Result:
    (folder / "train.py").write_text("print('val_loss: 1')\n")
    sweep = folder / "sweep.yaml"
    sweep.write_text(textwrap.dedent(text))
    return invoke("launch", "--sweep", str(sweep), "--study", "S", "--storage", "sqlite:///hpo.db")


def assert_nothing_written(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.yaml", "train.py"]


HEAD = "program: train.py\nmethod: random\nmetric: {name: val_loss, goal: minimize}\n"

BAD_FILES = [
    pytest.param(
        HEAD + "parameters:\n  lr: {min: 0.1, max: [\n", ["sweep.yaml:"], id="yaml-syntax"
    ),
    pytest.param(
        HEAD + "parameters:\n  lr:\n    distribution: log_normalish\n    min: 1\n    max: 2\n",
        ["sweep.yaml:6:", "log_normalish"],
        id="unknown-distribution",
    ),
    pytest.param(
        HEAD + "parameters:\n  lr:\n    distribution: uniform\n    min: 2.0\n    max: 1.0\n",
        ["sweep.yaml:", "min", "max"],
        id="min-above-max",
    ),
    pytest.param(
        HEAD + "parameters:\n  lr:\n    distribution: uniform\n    values: [1, 2]\n",
        ["sweep.yaml:", "values"],
        id="values-with-bounded-distribution",
    ),
    pytest.param(
        "method: random\nmetric: {name: val_loss}\ncommand:\n  - python\n  - ${program}\n"
        "  - ${args}\n" + GOOD_PARAMS,
        ["sweep.yaml:5:", "${program}"],
        id="macro-without-program",
    ),
    pytest.param(
        HEAD + "command: [python, train.py, '--lr={lr}', '--wd={wd}']\n" + GOOD_PARAMS,
        ["sweep.yaml:4:", "{wd}"],
        id="placeholder-without-param",
    ),
    pytest.param(
        "program: trian.py\nmethod: random\nmetric: {name: val_loss}\n" + GOOD_PARAMS,
        ["sweep.yaml:1:", "trian.py"],
        id="program-missing",
    ),
    pytest.param(
        "program: train.py\nmethod: random\nmetrics:\n  - {name: loss, goal: minimize}\n"
        "  - {name: loss, goal: maximize}\n" + GOOD_PARAMS,
        ["sweep.yaml:", "loss"],
        id="metric-twice-two-goals",
    ),
]


@pytest.mark.parametrize(("text", "needles"), BAD_FILES)
def test_a_bad_sweep_file_is_one_line_and_writes_nothing(
    workdir: Path, text: str, needles: list[str]
) -> None:
    assert_one_error(launch_sweep(workdir, text), *needles)
    assert_nothing_written(workdir)


BAD_FLAGS = [
    pytest.param(
        [
            "--command",
            "python train.py --lr {lr} --wd {wd}",
            "--param",
            "lr=uniform:0:1",
            "--metric",
            "val_loss",
        ],
        ["{wd}"],
        id="placeholder-without-param",
    ),
    pytest.param(
        [
            "--command",
            "python train.py --lr {lr}",
            "--param",
            "lr=log_normalish:0:1",
            "--metric",
            "val_loss",
        ],
        ["--param", "log_normalish"],
        id="unknown-distribution",
    ),
    pytest.param(
        [
            "--command",
            "python train.py --lr {lr}",
            "--param",
            "lr=uniform:1:0",
            "--metric",
            "val_loss",
        ],
        ["min", "max"],
        id="min-above-max",
    ),
    pytest.param(
        ["--command", "python train.py --lr {lr}", "--param", "lr=uniform:0:1"],
        ["--command needs --metric"],
        id="no-metric",
    ),
    pytest.param(
        [
            "--command",
            "python train.py --lr {lr}",
            "--param",
            "lr=uniform:0:1",
            "--metric",
            "loss:minimize",
            "--metric",
            "loss:maximize",
        ],
        ["loss"],
        id="metric-twice-two-goals",
    ),
    pytest.param(
        ["objectives.synthetic:quadratic", "--param", "lr=uniform:0:1"],
        ["--param needs --command"],
        id="param-without-command",
    ),
    pytest.param(
        ["objectives.synthetic:quadratic", "--command", "python train.py"],
        ["give one objective"],
        id="two-objectives",
    ),
    pytest.param([], ["give one objective"], id="no-objective"),
]


@pytest.mark.parametrize(("args", "needles"), BAD_FLAGS)
def test_bad_command_flags_are_one_line_and_write_nothing(
    workdir: Path, args: list[str], needles: list[str]
) -> None:
    result = invoke("launch", *args, "--study", "S", "--storage", "sqlite:///hpo.db")
    assert_one_error(result, *needles)
    assert list(workdir.iterdir()) == []


def test_a_bad_storage_after_a_good_command_leaves_no_sweep_file_behind(workdir: Path) -> None:
    """The sweep file made from flags is written only for a launch that goes ahead."""
    result = invoke(
        "launch",
        "--command",
        "python train.py --lr {lr}",
        "--param",
        "lr=uniform:0:1",
        "--metric",
        "val_loss",
        "--study",
        "S",
        "--storage",
        "postgresql+psycopg://postgres@127.0.0.1:1/x",
    )
    assert_one_error(result, "can't reach storage")
    assert list(workdir.iterdir()) == []
