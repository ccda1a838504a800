"""Metric lines (``runtime.metric_lines``): what a command trial reads out of a program's output,
in the forms training scripts print (Keras, Lightning, Guild AI's output scalars, JSON, dicts)."""

from __future__ import annotations

import math

import pytest

from tui_hpo.runtime.metric_lines import MetricReader

NAMES = ["val_loss", "loss", "acc", "val/loss", "val-acc", "val.acc"]


def same(found: dict[str, float], expected: dict[str, float]) -> bool:
    return found.keys() == expected.keys() and all(
        (math.isnan(v) and math.isnan(found[k])) or found[k] == v for k, v in expected.items()
    )


@pytest.mark.parametrize(
    ("line", "values", "step"),
    [
        # name: value and name=value, alone or anywhere on the line
        ("val_loss: 0.31", {"val_loss": 0.31}, None),
        ("val_loss=0.31", {"val_loss": 0.31}, None),
        ("val_loss = .5", {"val_loss": 0.5}, None),
        ("  acc:0.9,loss:2", {"acc": 0.9, "loss": 2.0}, None),
        ("epoch 3 val_loss: 0.31", {"val_loss": 0.31}, 3),
        ("Epoch 3/10 - loss: 0.2 - val_loss=0.31", {"loss": 0.2, "val_loss": 0.31}, 3),
        ("[epoch 2] val_loss=0.3;", {"val_loss": 0.3}, 2),
        ("step=12 acc: 1e-3", {"acc": 0.001}, 12),
        ("Step: 7 | loss: -1.5E+2", {"loss": -150.0}, 7),
        ("done at epoch 4. val_loss: 0.31.", {"val_loss": 0.31}, 4),  # full stops around
        ("acc: 93.5%", {"acc": 93.5}, None),
        # JSON objects and printed Python dicts
        ('{"epoch": 3, "val_loss": 0.31, "other": 1}', {"val_loss": 0.31}, 3),
        ('  {"step": 5.0, "loss": 2, "acc": true}  ', {"loss": 2.0}, 5),
        ('{"val_loss": NaN, "step": 3}', {"val_loss": math.nan}, 3),
        ("{'val_loss': 0.25, 'epoch': 2}", {"val_loss": 0.25}, 2),
        # names with slashes, dashes and dots
        (
            "val/loss: 2 val-acc=0.5 val.acc: 0.7",
            {"val/loss": 2.0, "val-acc": 0.5, "val.acc": 0.7},
            None,
        ),
        # nan and inf, any case
        ("loss: nan", {"loss": math.nan}, None),
        ("loss: NaN acc: -inf", {"loss": math.nan, "acc": -math.inf}, None),
        ("loss: Infinity", {"loss": math.inf}, None),
        # the last of a name on the line wins (a progress bar redrawn with \r)
        ("\r1/9 loss: 0.9\r9/9 loss: 0.4", {"loss": 0.4}, None),
    ],
)
def test_lines_that_report(line: str, values: dict[str, float], step: int | None) -> None:
    found, at = MetricReader(NAMES).parse(line)
    assert same(found, values), found
    assert at == step


@pytest.mark.parametrize(
    "line",
    [
        "nothing here",
        "",
        "val_loss is going down",
        "train_val_loss: 0.5",  # another metric whose name ends the same
        "--loss=0.3",  # an argument echoed back
        "my.loss: 3",
        "val_loss: 1.2.3",  # a version, not a number
        "val_loss: 0.3rd",
        'val_loss: "0.3"',  # a string
        "Val_Loss: 0.3",  # names are matched as written
        '{"x": "val_loss"}',
        '{"val_loss": "0.3", "epoch": 1}',
        '{"val_loss": true}',
        "[1, 2, 3] loss",
    ],
)
def test_lines_that_do_not(line: str) -> None:
    assert MetricReader(NAMES).parse(line) == ({}, None)


def test_only_names_asked_for() -> None:
    reader = MetricReader(["val_loss"])
    assert reader.parse("epoch 1 loss: 0.2 val_loss: 0.3 acc: 0.9") == ({"val_loss": 0.3}, 1)
    assert reader.parse('{"loss": 0.2, "epoch": 1}') == ({}, None)


def test_the_longer_name_wins() -> None:
    reader = MetricReader(["val_loss", "val_loss_ema"])
    assert reader.parse("val_loss_ema: 0.2 val_loss: 0.3") == (
        {"val_loss_ema": 0.2, "val_loss": 0.3},
        None,
    )


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("epoch 3 loss: 1", 3),
        ("EPOCH=3 loss: 1", 3),
        ("Epoch 3/10 loss: 1", 3),
        ("loss: 1 (step 42)", 42),
        ("global_step: 9 loss: 1", None),  # not a word of its own
        ("loss: 1 epoch 3.5", None),
        ("loss: 1 epochs", None),
    ],
)
def test_steps(line: str, step: int | None) -> None:
    assert MetricReader(["loss"]).parse(line) == ({"loss": 1.0}, step)
