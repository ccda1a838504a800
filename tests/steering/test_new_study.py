"""The app's new-study form as ``tui-hpo launch`` arguments: where the workers run."""

from __future__ import annotations

import pytest

from tui_hpo.errors import UserError
from tui_hpo.steering import NewStudy

BASE = dict(study="s", objective="objectives.synthetic:quadratic", n_trials=10, workers=3)


def test_this_machine() -> None:
    args = NewStudy(**BASE, gpus="0,1").launch_args()  # type: ignore[arg-type]
    assert args[:5] == ["objectives.synthetic:quadratic", "--study", "s", "--workers", "3"]
    assert "--detach" in args and "--slurm" not in args and "--hosts" not in args
    assert args[args.index("--gpus") + 1] == "0,1"


def test_slurm_array() -> None:
    form = NewStudy(**BASE, where="slurm", slurm_args="-p gpu --time=01:00:00", gpus="0")  # type: ignore[arg-type]
    args = form.launch_args()
    assert "--slurm" in args and "--detach" in args
    assert args[args.index("--workers") + 1] == "3"
    assert args[args.index("--slurm-args") + 1] == "-p gpu --time=01:00:00"
    assert "--gpus" not in args  # Slurm hands out the GPUs


def test_hosts_through_ssh() -> None:
    args = NewStudy(**BASE, where="hosts", hosts="gpu1:4,gpu2:2").launch_args()  # type: ignore[arg-type]
    assert args[args.index("--hosts") + 1] == "gpu1:4,gpu2:2"
    assert args[args.index("--workers") + 1] == "0"  # none on this machine
    assert "--slurm" not in args


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"where": "hosts"}, "hosts: give at least one"), ({"where": "moon"}, "not one of")],
)
def test_bad_choices_are_one_line(change: dict[str, str], needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        NewStudy(**BASE, **change).launch_args()  # type: ignore[arg-type]
