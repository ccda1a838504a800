"""The trials table's filter language (tui_hpo.data.filters) on a hand-built TrialFrame.

The frame has one row per trial, 0..7, chosen so each filter below picks a different set; the
table in ``ROWS`` is the same data as written out in ``frame()``, for reading the expectations.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tui_hpo.data import filters
from tui_hpo.data.filters import (
    HELP,
    MAX_DEPTH,
    MAX_LENGTH,
    Filter,
    FilterError,
    parse,
    study_fields,
)
from tui_hpo.data.frames import STATE_CODE, Categorical, ParamColumn, TrialFrame
from tui_hpo.errors import UserError

NAN = np.nan
NOW = 1000.0

ROWS = """
#  state     v0     v1     dur   lr    x     depth act  batch host       gpu  sampler
0  COMPLETE  0.5    1.0    10    1e-4  0.1*3 1     relu 16    gpu-box-1  0    RandomSampler
1  COMPLETE  2.0    3.0    600   1e-2  -2    2     tanh 32    gpu-box-1  1    TPE(seed=1)
2  PRUNED    -      -      50    5e-4  0     3     relu 64    gpu-box-2  0    TPE(seed=1)
3  FAIL      -      -      5     1e-3  1.5   4     tanh 16    gpu-box-2  none TPE(seed=1)
4  RUNNING   -      -      100   2e-4  -     5     relu 32    gpu-box-1  1    TPE(seed=1)
5  COMPLETE  1e-3   0.3    3600  -     4     6     -    -     gpu-box-2  0    RandomSampler
6  WAITING   -      -      -     -     -     -     -    -     -          -    -
7  COMPLETE  -1.0   0.1*3  100   0.5   -5    10    tanh 64    gpu-box-1  0    TPE(seed=1)
"""
ALL = list(range(8))


def _states(*names: str) -> np.ndarray:
    return np.array([STATE_CODE[name] for name in names], dtype=np.int8)


def _param(name: str, distribution: object, values: list[float]) -> ParamColumn:
    return ParamColumn(name, distribution, np.array(values, dtype=np.float64))


def _text(labels: tuple[str, ...], codes: list[int]) -> Categorical:
    return Categorical(np.array(codes, dtype=np.int32), labels)


def frame() -> TrialFrame:
    params = [
        _param(
            "lr",
            FloatDistribution(1e-5, 1.0, log=True),
            [1e-4, 1e-2, 5e-4, 1e-3, 2e-4, NAN, NAN, 0.5],
        ),
        _param("x", FloatDistribution(-5.0, 5.0), [0.1 * 3, -2, 0, 1.5, NAN, 4, NAN, -5]),
        _param("depth", IntDistribution(1, 10), [1, 2, 3, 4, 5, 6, NAN, 10]),
        _param("act", CategoricalDistribution(("relu", "tanh")), [0, 1, 0, 1, 0, NAN, NAN, 1]),
        _param("batch", CategoricalDistribution((16, 32, 64)), [0, 1, 2, 0, 1, NAN, NAN, 2]),
        _param("flag", CategoricalDistribution((True, False)), [0, 1, 0, 1, 0, 1, NAN, 0]),
        _param(
            "note",
            CategoricalDistribution(("it's", 'say "hi"', "a\\b")),
            [0, 1, 2, 0, 1, 2, NAN, 0],
        ),
        _param("lr/decay", FloatDistribution(0.0, 1.0), [0.1, 0.9, 0.6, NAN, NAN, NAN, NAN, 0.2]),
        _param("state", IntDistribution(0, 3), [1, 0, 1, 0, 1, 0, NAN, 1]),  # shadows a field
    ]
    return TrialFrame(
        study_id=1,
        directions=("minimize", "maximize"),
        trial_id=np.arange(8, dtype=np.int64) + 100,
        number=np.arange(8, dtype=np.int64),
        state=_states(
            "COMPLETE", "COMPLETE", "PRUNED", "FAIL", "RUNNING", "COMPLETE", "WAITING", "COMPLETE"
        ),
        values=np.array(
            [
                [0.5, 1.0],
                [2.0, 3.0],
                [NAN, NAN],
                [NAN, NAN],
                [NAN, NAN],
                [1e-3, 0.3],
                [NAN, NAN],
                [-1.0, 0.1 * 3],
            ]
        ),
        start=np.array([0, 0, 0, 0, 900, 0, NAN, 0], dtype=np.float64),
        complete=np.array([10, 600, 50, 5, NAN, 3600, NAN, 100], dtype=np.float64),
        params={p.name: p for p in params},
        host=_text(("gpu-box-1", "gpu-box-2"), [0, 0, 1, 1, 0, 1, -1, 0]),
        gpu=_text(("0", "1", "none"), [0, 1, 0, 2, 1, 0, -1, 0]),
        sampler=_text(("RandomSampler", "TPE(seed=1)"), [0, 1, 1, 1, 1, 0, -1, 1]),
        # 0 bad, 1 bad+keep, 3 keep, 5 had tags and lost them ([]), 7 bad+keep; others: never
        tags=_text(("bad", "bad,keep", "keep", ""), [0, 1, -1, 2, -1, 3, -1, 1]),
    )


FRAME = frame()
PARAMS = list(FRAME.params)


def rows(text: str, fields: list[str] | None = None) -> list[int]:
    m = parse(text, fields).mask(FRAME, now=NOW)
    assert m.dtype == bool and m.shape == (len(FRAME),)
    return [int(n) for n in FRAME.number[m]]


# matching ------------------------------------------------------------------------------------

CASES = [
    # the example from the issue
    ("lr < 1e-3 and state == COMPLETE", [0]),
    ("", ALL),
    ("   \t ", ALL),
    # numeric params, as suggested (log scale included)
    ("lr <= 1e-3", [0, 2, 3, 4]),
    ("lr > 0.001", [1, 7]),
    ("lr == .5", [7]),
    ("lr >= 1E-2", [1, 7]),
    ("x == 0.3", [0]),  # 0.1 * 3 == 0.3 within the tolerance
    ("x == -2", [1]),
    ("x>-3", [0, 1, 2, 3, 5]),
    ("x != 0", [0, 1, 3, 5, 7]),  # missing x (4, 6) never matches, != included
    ("x < +inf", [0, 1, 2, 3, 5, 7]),
    ("x > -inf", [0, 1, 2, 3, 5, 7]),
    ("x == inf", []),
    ("depth >= 5", [4, 5, 7]),
    ("depth = 4", [3]),
    ("depth in (1, 2, 10)", [0, 1, 7]),
    ("depth in (1, 2,)", [0, 1]),
    ("depth not in (1, 2)", [2, 3, 4, 5, 7]),
    ("x in (0.3, -5, 4, 100, 200, inf)", [0, 5, 7]),  # a long list: the sorted search
    ("x not in (0.3, -5, 4, 100, 200, -inf)", [1, 2, 3]),
    # trial number
    ("number >= 6", [6, 7]),
    ("# < 2", [0, 1]),
    ("trial == 3", [3]),
    ("TRIAL in (3, 5)", [3, 5]),
    # state, by name in any case
    ("state == complete", [0, 1, 5, 7]),
    ("State == Complete", [0, 1, 5, 7]),
    ("state != FAIL", [0, 1, 2, 4, 5, 6, 7]),
    ("state in (COMPLETE, PRUNED)", [0, 1, 2, 5, 7]),
    ("state not in (complete, 'pruned')", [3, 4, 6]),
    ('state == "running"', [4]),
    # objective values
    ("value < 1", [0, 5, 7]),
    ("value != 1", [0, 1, 5, 7]),
    ("value != 0.5", [1, 5, 7]),
    ("not value < 1", [1, 2, 3, 4, 6]),  # not inverts the mask: missing values come back
    ("value >= 1", [1]),
    ("value0 < 1", [0, 5, 7]),
    ("value1 == 0.3", [5, 7]),
    ("values[1] > 0.5", [0, 1]),
    ("VALUES [ 1 ] > 0.5", [0, 1]),
    ("value[0] < 0", [7]),
    ("value < inf", [0, 1, 5, 7]),
    # duration, with units
    ("duration > 5m", [1, 5]),
    ("duration > 300", [1, 5]),
    ("duration <= 100", [0, 2, 3, 4, 7]),  # 4 is running: 1000 - 900
    ("duration >= 1h", [5]),
    ("duration >= 0.5H", [5]),
    ("duration < 1d", [0, 1, 2, 3, 4, 5, 7]),
    ("duration == 10s", [0]),
    ("duration in (5, 50)", [2, 3]),
    # categorical params
    ("act == relu", [0, 2, 4]),
    ("act != relu", [1, 3, 7]),
    ("act in (\"relu\", 'tanh')", [0, 1, 2, 3, 4, 7]),
    ("act not in (tanh)", [0, 2, 4]),
    ("batch == 32", [1, 4]),
    ("batch == 32.0", [1, 4]),
    ("batch >= 32", [1, 2, 4, 7]),
    ("batch in (16, 64)", [0, 2, 3, 7]),
    ("batch != 16", [1, 2, 4, 7]),
    ("flag == true", [0, 2, 4, 7]),
    ("flag != TRUE", [1, 3, 5]),
    ("flag == False", [1, 3, 5]),
    # text columns
    ("host == gpu-box-1", [0, 1, 4, 7]),
    ("host == 'gpu-box-1'", [0, 1, 4, 7]),
    ("host != gpu-box-1", [2, 3, 5]),
    ("host in ('gpu-box-2')", [2, 3, 5]),
    ("host == nowhere", []),
    ("host != nowhere", [0, 1, 2, 3, 4, 5, 7]),
    ("host not in (gpu-box-1, nowhere)", [2, 3, 5]),
    ("gpu == 0", [0, 2, 5, 7]),
    ("gpu in (0, 1)", [0, 1, 2, 4, 5, 7]),
    ("gpu == none", [3]),
    ("sampler == 'TPE(seed=1)'", [1, 2, 3, 4, 7]),
    ("sampler == RandomSampler", [0, 5]),
    # tags: a set per trial; != and not in match untagged trials too
    ("tag = bad", [0, 1, 7]),
    ("tag == keep", [1, 3, 7]),
    ("TAGS == 'keep'", [1, 3, 7]),
    ("tag != bad", [2, 3, 4, 5, 6]),
    ("tag != nothing", ALL),
    ("tag in (bad, keep)", [0, 1, 3, 7]),
    ("tag not in (bad, keep)", [2, 4, 5, 6]),
    ("tag = bad and tag = keep", [1, 7]),
    ("tag = bad and tag != keep", [0]),
    ("not tag = bad", [2, 3, 4, 5, 6]),
    ("bad == tag", [0, 1, 7]),
    ("tag == ''", []),  # the empty label of a trial whose tags were all removed
    ("tag = ba", []),  # whole tags only
    # quoted strings and their escapes
    ("note == 'it\\'s'", [0, 3, 7]),
    ('note == "it\'s"', [0, 3, 7]),
    ('note == "say \\"hi\\""', [1, 4]),
    ("note == 'a\\\\b'", [2, 5]),  # \\ is one backslash
    ("note == 'a\\b'", [2, 5]),  # a backslash before anything else stays
    # backticks
    ("`lr/decay` > 0.5", [1, 2]),
    ("`lr` < 1e-3", [0, 2, 4]),
    ("`state` == 1", [0, 2, 4, 7]),  # backticks mean the param called state
    ("`number` < 2", [0, 1]),  # no param of that name: the built-in
    # reversed operands
    ("1e-3 > lr", [0, 2, 4]),
    ("1e-2 == lr", [1]),
    ("5 >= depth", [0, 1, 2, 3, 4]),
    ("COMPLETE == state", [0, 1, 5, 7]),
    ("'fail' = state", [3]),
    ("relu == act", [0, 2, 4]),
    ('"tanh" == act', [1, 3, 7]),
    ("32 < batch", [2, 7]),
    ("0.5 > `lr/decay`", [0, 7]),
    ("3 == #", [3]),
    ("1 > values[1]", [5, 7]),
    # precedence: not > and > or
    ("state == complete or state == pruned and lr > 1e-3", [0, 1, 5, 7]),
    ("(state == complete or state == pruned) and lr > 1e-3", [1, 7]),
    ("not state == complete and x < 0", []),
    ("not (state == complete and x < 0)", [0, 2, 3, 4, 5, 6]),
    ("!(x<0) && depth<3", [0]),
    ("x < 0 || depth == 4", [1, 3, 7]),
    ("x < 0 OR depth == 4 AND NOT act == tanh", [1, 7]),
    ("not not state == fail", [3]),
    ("!!state == fail", [3]),
    ("((((state == fail))))", [3]),
    ("depth < 3 or depth > 9 or depth == 5", [0, 1, 4, 7]),
    ("depth > 1 and depth < 9 and act == relu", [2, 4]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_mask(text: str, expected: list[int]) -> None:
    assert rows(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_mask_with_fields_known_at_parse_time(text: str, expected: list[int]) -> None:
    assert rows(text, PARAMS) == expected


def test_missing_values_never_match_either_way() -> None:
    # trial 6 (WAITING) has no value, params, duration or host
    for op in ("<", "<=", ">", ">=", "==", "!="):
        for text in (f"value {op} 1", f"lr {op} 1e-3", f"duration {op} 10", f"batch {op} 32"):
            assert 6 not in rows(text), text
    for op, a, b in (("==", "", ""), ("!=", "", ""), ("in", "(", ")"), ("not in", "(", ")")):
        for text in (f"act {op} {a}relu{b}", f"host {op} {a}gpu-box-1{b}", f"gpu {op} {a}x{b}"):
            assert 6 not in rows(text), text
    assert 6 in rows("not value < 1") and 6 in rows("not host == gpu-box-1")


def test_now_defaults_to_the_current_time() -> None:
    # trial 4 is running since 900 s after the epoch: by now, far longer than a day
    assert [int(n) for n in FRAME.number[parse("duration > 1d").mask(FRAME)]] == [4]
    assert rows("duration > 1d") == []


def test_blank_filter() -> None:
    f = parse("  ")
    assert f.matches_all and f.text == "  "
    assert f.mask(FRAME).all()
    assert not parse("x < 1").matches_all


def test_filter_is_a_value() -> None:
    assert parse("x < 1") == parse("x < 1")
    assert hash(parse("x < 1")) == hash(parse("x < 1"))
    assert parse("x < 1") != parse("x < 2")
    assert (
        Filter("state == fail").mask(FRAME).tolist() == parse("state == fail").mask(FRAME).tolist()
    )
    with pytest.raises(FilterError):
        Filter("state <")
    assert repr(parse("x<1")) == "Filter(text='x<1')"


def test_empty_frame() -> None:
    empty = big_frame(0)
    for text in ("lr < 1e-3 and state == complete", "act in (relu, tanh)", "host != h1", ""):
        m = parse(text).mask(empty)
        assert m.dtype == bool and m.shape == (0,)


def test_fields_may_be_any_iterable_of_names() -> None:
    for fields in (tuple(PARAMS), (name for name in PARAMS), {"lr": object()}, set(PARAMS)):
        m = parse("lr < 1e-3", fields).mask(FRAME)
        assert [int(n) for n in FRAME.number[m]] == [0, 2, 4]
    with pytest.raises(FilterError, match="unknown field 'x'"):
        parse("x < 1", {"lr": object()})


def test_keywords_are_case_insensitive() -> None:
    assert rows("x < 0 AnD depth == 2") == [1]
    assert rows("depth IN (1) Or depth NoT In (1, 2, 3, 4, 5, 6)") == [0, 7]


# errors --------------------------------------------------------------------------------------

ERRORS = [
    # (text, fields, column, a piece of the message)
    ("lrr < 1", PARAMS, 1, "unknown field 'lrr'"),
    ("lrr < 1", None, 1, "unknown field 'lrr'"),  # found at mask time
    ("`lr/decayy` < 1", None, 1, "unknown field `lr/decayy`"),
    ("x <", None, 4, "expected a value after '<'"),
    ("x < 1 y", None, 7, "unexpected 'y'"),
    ("(x < 1", None, 1, "unbalanced '('"),
    ("((x < 1)", None, 1, "unbalanced '('"),
    ("x < 1)", None, 6, "unbalanced ')'"),
    ("(x < 1 y < 2)", None, 8, "expected and, or or ')'"),
    ("()", None, 2, "expected a field or '('"),
    ("x => 1", None, 3, "unknown operator '=>'"),
    ("x === 1", None, 3, "unknown operator '==='"),
    ("x <> 1", None, 3, "unknown operator '<>'"),
    ("x < 1 & y < 2", None, 7, "unknown operator '&'"),
    ("x < 1 | y < 2", None, 7, "unknown operator '|'"),
    ("x 1", None, 3, "expected an operator after 'x'"),
    ("x ! = 1", None, 3, "expected an operator"),
    ("host < gpu-box-1", None, 6, "'<' at 6 does not apply to host"),
    ("gpu >= 1", None, 5, "does not apply to gpu"),
    ("tag < bad", None, 5, "'<' at 5 does not apply to tag (a tag)"),
    ("state < complete", None, 7, "does not apply to state"),
    ("state == 1", None, 10, "state compares with a state name"),
    ("state in (complete, 2)", None, 21, "state compares with a state name"),
    ("state == true", None, 10, "state compares with a state name"),
    ("state == done", None, 10, "unknown state 'done'"),
    ("number == five", None, 11, "number compares with numbers"),
    ("# == '3'", None, 6, "number compares with numbers"),
    ("value < true", None, 9, "value compares with numbers"),
    ("duration > 5q", None, 12, "duration compares with numbers"),
    ("duration > 5 minutes", None, 14, "unexpected 'minutes'"),
    ("lr == abc", None, 7, "'lr' compares with numbers"),
    ("lr < 1e", None, 6, "'lr' compares with numbers"),
    ("act == gelu", None, 8, "'act' has no choice 'gelu'"),
    ("act in (relu, gelu)", None, 15, "has no choice 'gelu'"),
    ("act < 1", None, 5, "needs numbers"),
    ("batch == 33", None, 10, "has no choice '33'"),
    ("batch < big", None, 9, "compares with numbers"),
    ("value3 < 1", None, 1, "the study has 2 objectives"),
    ("values[7] < 1", None, 1, "the study has 2 objectives"),
    ("values[a] < 1", None, 8, "expected an objective index"),
    ("values[-1] < 1", None, 8, "expected an objective index"),
    ("values[0 < 1", None, 10, "expected ']'"),
    ("x in 1", None, 6, "expected '(' after in"),
    ("x in ()", None, 7, "expected a value"),
    ("x in (1, 2", None, 6, "unbalanced '('"),
    ("x in (1 2)", None, 9, "expected ',' or ')'"),
    ("x in (1,,2)", None, 9, "expected a value"),
    ("1 in x", None, 3, "'in' at 3 needs a field"),
    ("'abc", None, 1, "unterminated string"),
    ("host == 'abc\\'", None, 9, "unterminated string"),
    ("`abc < 1", None, 1, "unterminated field name"),
    ("`` < 1", None, 1, "empty field name"),
    ("x < 1 and", None, 10, "end of input"),
    ("and x < 1", None, 1, "expected a field or '('"),
    ("x < 1 or or y < 2", None, 10, "expected a field or '('"),
    ("not", None, 4, "end of input"),
    ("!x", None, 3, "expected an operator"),
    ("@", None, 1, "unexpected character '@'"),
    ("x < 1 ~", None, 7, "unexpected character '~'"),
    ("x < \x00", None, 5, "unexpected character '\\x00'"),
    ("-x < 1", None, 1, "bad number '-x'"),
    ("x < -", None, 5, "unexpected '-'"),
    ("1 < 2", None, 5, "expected a field after '<'"),
    ("'a' < 'b'", None, 7, "expected a field after '<'"),
    ("# == #", None, 3, "both sides of '==' at 3 are fields"),
    ("x == `y`", PARAMS, 3, "both sides"),
    ("x == ,", None, 6, "expected a value after '=='"),
    ("x == `lr`", None, 1, "'lr' compares with numbers, not 'x'"),  # x may be a value
    ("x < 1 x", None, 7, "unexpected 'x'"),
    ("x[0] < 1", None, 2, "expected an operator after 'x'"),
]


@pytest.mark.parametrize(("text", "fields", "column", "piece"), ERRORS)
def test_errors(text: str, fields: list[str] | None, column: int, piece: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text, fields).mask(FRAME, now=NOW)
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert message.startswith("filter: ")
    assert len(message.splitlines()) == 1
    assert piece in message
    assert re.search(rf"\bat {column}\b", message), message


def test_unknown_field_lists_the_fields() -> None:
    with pytest.raises(FilterError) as caught:
        parse("lrr < 1", ["lr", "x", "y"])
    assert str(caught.value) == (
        "filter: unknown field 'lrr' at 1"
        " (fields: number, state, value, duration, host, gpu, sampler, tag, lr, x, y)"
    )


def test_a_frame_without_tags_has_no_tagged_trial() -> None:
    untagged = dataclasses.replace(FRAME, tags=None)
    assert not parse("tag = bad").mask(untagged, now=NOW).any()
    assert parse("tag != bad").mask(untagged, now=NOW).all()


def test_a_param_called_tag_is_reached_in_backticks() -> None:
    tagged = dataclasses.replace(
        FRAME, params={"tag": _param("tag", IntDistribution(0, 9), [1, 2, 3, 4, 5, 6, 7, 8])}
    )
    assert list(tagged.number[parse("`tag` > 6").mask(tagged, now=NOW)]) == [6, 7]
    assert list(tagged.number[parse("tag = bad").mask(tagged, now=NOW)]) == [0, 1, 7]


def test_unknown_state_lists_the_states() -> None:
    with pytest.raises(FilterError, match=r"states: RUNNING, COMPLETE, PRUNED, FAIL, WAITING"):
        parse("state == done")


def test_unknown_fields_are_found_at_parse_time_when_names_are_given() -> None:
    parse("lrr < 1")  # fine until masked
    with pytest.raises(FilterError):
        parse("lrr < 1", PARAMS)
    with pytest.raises(FilterError):
        parse("`lrr` < 1", PARAMS)


def test_odd_characters_in_messages_stay_on_one_line() -> None:
    for text in ("`a\nb` < 1", "`a\u2028b\x85` < 1", "host == 'x' \x1b[31m", "\u200b"):
        with pytest.raises(FilterError) as caught:
            parse(text).mask(FRAME)
        assert len(str(caught.value).splitlines()) == 1
        assert "\n" not in str(caught.value)


def test_length_cap() -> None:
    ok = " " * (MAX_LENGTH - 5) + "x < 1"
    assert rows(ok) == [0, 1, 2, 7]
    with pytest.raises(FilterError, match=rf"too long at {MAX_LENGTH + 1}"):
        parse(ok + " ")


def test_depth_cap() -> None:
    deep = "(" * MAX_DEPTH + "x < 1" + ")" * MAX_DEPTH
    assert rows(deep) == [0, 1, 2, 7]
    with pytest.raises(FilterError, match=rf"nested too deeply at {MAX_DEPTH + 2}"):
        parse("(" + deep + ")")
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("not " * (MAX_DEPTH + 1) + "x < 1")
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("(" * 1000)
    assert rows("!" * MAX_DEPTH + "x < 1") == [0, 1, 2, 7]  # an even number of nots


def test_long_flat_chains_are_fine() -> None:
    text = " or ".join(f"depth == {i}" for i in range(1, 150))[:MAX_LENGTH]
    text = text[: text.rfind(" or ")]
    assert rows(text) == [0, 1, 2, 3, 4, 5, 7]
    many = "number in (" + ", ".join(str(i) for i in range(0, 400, 2)) + ")"
    assert rows(many) == [0, 2, 4, 6]


# fuzzing -------------------------------------------------------------------------------------


def _parse_and_mask(text: str, fields: list[str] | None) -> None:
    """What the app does with what the user typed: only a Filter or FilterError may come out."""
    try:
        f = parse(text, fields)
        m = f.mask(FRAME, now=NOW)
    except FilterError as exc:
        assert len(str(exc).splitlines()) == 1
        assert str(exc).startswith("filter: ")
        return
    assert isinstance(f, Filter)
    assert m.dtype == bool and m.shape == (len(FRAME),)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_filter_or_a_filter_error(text: str) -> None:
    _parse_and_mask(text, None)
    _parse_and_mask(text, PARAMS)


TOKENS = [
    *PARAMS,
    "number",
    "trial",
    "#",
    "state",
    "value",
    "value0",
    "value1",
    "value9",
    "values",
    "values[0]",
    "values[1]",
    "[",
    "]",
    "duration",
    "host",
    "gpu",
    "sampler",
    "`lr/decay`",
    "`state`",
    "`",
    "``",
    "nope",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "=",
    "=>",
    "<>",
    "in",
    "not",
    "and",
    "or",
    "&&",
    "||",
    "!",
    "&",
    "|",
    "(",
    ")",
    ",",
    "(",
    ")",
    "0",
    "1",
    "-2",
    ".5",
    "1e-3",
    "1e999",
    "-inf",
    "inf",
    "32",
    "5m",
    "1.5h",
    "1e",
    "-",
    "complete",
    "PRUNED",
    "fail",
    "relu",
    "tanh",
    "gelu",
    "gpu-box-1",
    "none",
    "true",
    "False",
    "'tanh'",
    '"it\'s"',
    "'it\\'s'",
    "'",
    '"',
    "\\",
    "@",
    "\x00",
    "\n",
    "é",
    "日本",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(TOKENS), max_size=25),
    st.lists(st.sampled_from(["", " ", "  ", "\t"]), min_size=25, max_size=25),
)
def test_token_soup_gives_a_filter_or_a_filter_error(words: list[str], gaps: list[str]) -> None:
    text = "".join(gap + word for gap, word in zip(gaps, words, strict=False))
    _parse_and_mask(text, None)
    _parse_and_mask(text, PARAMS)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["lr", "x", "depth", "act", "batch", "value", "duration", "state", "host"]),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.sampled_from(["1e-3", "0", "-2", "relu", "32", "complete", "gpu-box-1", "5m", "inf"]),
    st.booleans(),
)
def test_reversed_operands_mean_the_same(field: str, op: str, value: str, flip: bool) -> None:
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]
    fields = PARAMS if flip else None
    try:
        expected = rows(f"{field} {op} {value}", fields)
    except FilterError:
        with pytest.raises(FilterError):
            rows(f"{value} {flipped} {field}", fields)
        return
    assert rows(f"{value} {flipped} {field}", fields) == expected


# scale ---------------------------------------------------------------------------------------


def big_frame(n: int = 100_000) -> TrialFrame:
    rng = np.random.default_rng(0)
    state = rng.integers(0, 5, n).astype(np.int8)
    values = rng.normal(size=(n, 1))
    values[state != STATE_CODE["COMPLETE"]] = NAN
    start = rng.uniform(0, 1000, n)
    complete = start + rng.exponential(100, n)
    complete[state == STATE_CODE["RUNNING"]] = NAN
    lr = np.exp(rng.uniform(np.log(1e-5), 0, n))
    lr[rng.random(n) < 0.1] = NAN
    act = rng.integers(0, 3, n).astype(np.float64)
    return TrialFrame(
        study_id=1,
        directions=("minimize",),
        trial_id=np.arange(n, dtype=np.int64),
        number=np.arange(n, dtype=np.int64),
        state=state,
        values=values,
        start=start,
        complete=complete,
        params={
            "lr": ParamColumn("lr", FloatDistribution(1e-5, 1.0, log=True), lr),
            "act": ParamColumn("act", CategoricalDistribution(("relu", "tanh", "gelu")), act),
        },
        host=Categorical(
            rng.integers(-1, 20, n).astype(np.int32), tuple(f"h{i}" for i in range(20))
        ),
        gpu=Categorical(rng.integers(0, 8, n).astype(np.int32), tuple(str(i) for i in range(8))),
        sampler=Categorical(np.zeros(n, dtype=np.int32), ("TPESampler",)),
    )


def test_a_hundred_thousand_trials() -> None:
    big = big_frame()
    f = parse("lr < 1e-3 and state == COMPLETE")
    m = f.mask(big, now=2000.0)
    expected = (big.params["lr"].values < 1e-3) & (big.state == STATE_CODE["COMPLETE"])
    assert m.shape == (len(big),) and np.array_equal(m, expected)
    for text in (
        "value < 0 or duration > 5m and act in (relu, gelu)",
        "not (host in (h1, h2, h3) or gpu != 0) and number > 500",
        "number in (" + ", ".join(str(i) for i in range(0, 100_000, 997)) + ")",
        "act == tanh",
        "",
    ):
        m = parse(text).mask(big, now=2000.0)
        assert m.shape == (len(big),) and m.dtype == bool
    host_mask = parse("host != h1").mask(big)
    assert np.array_equal(host_mask, (big.host.codes >= 0) & (big.host.codes != 1))


# the module itself ---------------------------------------------------------------------------


def test_help_is_short_lines() -> None:
    assert isinstance(HELP, str) and len(HELP.splitlines()) > 3
    assert all(len(line) <= 100 for line in HELP.splitlines())
    assert filters.__doc__ and "Missing values" in filters.__doc__


def test_no_eval_and_no_textual() -> None:
    source = Path(filters.__file__).read_text()
    assert not re.search(r"(?<![.\w])(eval|exec|literal_eval|compile)\(", source)
    code = "import sys, tui_hpo.data.filters; assert 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# metric names -----------------------------------------------------------------------------------

NAMED = dataclasses.replace(FRAME, metric_names=("error", "x"))
"""The same trials with named objectives; the second shares its name with the param ``x``."""


def named_rows(text: str, fields: object = None) -> list[int]:
    m = parse(text, fields).mask(NAMED, now=NOW)  # type: ignore[arg-type]
    return [int(n) for n in NAMED.number[m]]


def test_an_objective_by_its_metric_name() -> None:
    assert named_rows("error < 1") == rows("value < 1") == [0, 5, 7]
    assert named_rows("error >= 0.5 and state == complete") == [0, 1]


def test_a_metric_name_wins_over_a_param_of_that_name() -> None:
    assert named_rows("x < 1") == rows("value1 < 1") == [5, 7]


def test_metric_names_are_known_at_parse_time_when_given() -> None:
    fields = study_fields(PARAMS, ("error", "x"))
    assert named_rows("error < 1", fields) == [0, 5, 7]
    with pytest.raises(FilterError, match="unknown field 'eror'.*error"):
        parse("eror < 1", fields)


def test_a_metric_name_compares_with_numbers_only() -> None:
    with pytest.raises(FilterError, match="'error' compares with numbers"):
        named_rows("error == relu")


def test_without_names_a_metric_name_is_unknown() -> None:
    with pytest.raises(FilterError, match="unknown field 'error'"):
        rows("error < 1")
