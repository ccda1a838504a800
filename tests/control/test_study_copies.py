"""Copying a study by bulk inserts (``control.study_copies``, through ``steering.copy_study``)
and deleting one with tui-hpo's own rows (``control.study_deletion``), on both storages, in
process. What is asserted is what a user gets: the copy as ``optuna.load_study`` reads it back,
trial for trial against the source, and the rows left in every ``tui_hpo_*`` table.

The CLI around them (exit codes, the confirmation prompt) is in tests/cli/test_studies_commands.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from tui_hpo import steering
from tui_hpo.control import registry, study_copies, study_deletion
from tui_hpo.errors import UserError
from tui_hpo.storage import tables
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


# a study with a bit of everything --------------------------------------------------------------


def make_source(storage: optuna.storages.RDBStorage, name: str = "src") -> optuna.Study:
    """Two objectives with metric names, study attrs, and trials in every state: values (one
    infinite), float/log/int/categorical params, intermediate values (inf among them), user and
    system attrs, a fail reason; a RUNNING and a WAITING trial; tui-hpo curves for two trials."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),  # TPE refuses curves of PRUNED ones
    )
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["error", "acc"])
    study.set_user_attr("owner", {"team": "vision", "n": [1, 2]})
    storage.set_study_system_attr(study._study_id, "tui_hpo.note", "kept")
    for i in range(12):
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_int("depth", 1, 8)
        trial.suggest_categorical("act", ["relu", "tanh", None])
        trial.set_user_attr("tui_hpo.host", f"gpu-{i % 3}")
        trial.set_user_attr("tui_hpo.retry_of", i - 1 if i % 4 == 1 else None)
        storage.set_trial_system_attr(trial._trial_id, "sys", {"i": i})
        for step in range(i % 4):
            value = math.inf if (i, step) == (5, 0) else 1.0 / (step + 1)
            storage.set_trial_intermediate_value(trial._trial_id, step, value)
        if i % 5 == 4:  # as tui-hpo's worker ends one (Optuna's tell refuses it here)
            storage.set_trial_state_values(trial._trial_id, TrialState.PRUNED)
        elif i == 6:
            storage.set_trial_system_attr(trial._trial_id, "fail_reason", "boom")
            study.tell(trial, state=TrialState.FAIL)
        elif i == 7:
            study.tell(trial, [math.inf, 0.5])
        else:
            study.tell(trial, [float(i), 1.0 / (i + 1)])
    running = study.ask()
    running.suggest_float("x", 0.0, 1.0)
    study.enqueue_trial({"x": 0.25}, user_attrs={"why": "queued"})
    engine = storage.engine
    ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    with engine.begin() as con:
        con.execute(
            tables.curves.insert(),
            [{"trial_id": ids[k], "step": s, "value": k + s / 10} for k in (2, 3) for s in (0, 1)],
        )
    return study


def facts(t: FrozenTrial) -> dict[str, Any]:
    """Everything of a trial but its number and id (which a copy renumbers)."""
    return {
        "state": t.state,
        "values": t.values,
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "params": t.params,
        "distributions": t.distributions,
        "user_attrs": t.user_attrs,
        "system_attrs": t.system_attrs,
        "intermediate_values": t.intermediate_values,
    }


def curves_of(engine: sa.Engine, trial_ids: list[int]) -> list[list[tuple[int, float]]]:
    c = tables.curves
    with engine.connect() as con:
        return [
            [
                (s, v)
                for s, v in con.execute(
                    sa.select(c.c.step, c.c.value).where(c.c.trial_id == tid).order_by(c.c.step)
                )
            ]
            for tid in trial_ids
        ]


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in every table, Optuna's and tui-hpo's: a refused copy must change none."""
    with engine.connect() as con:
        names = sa.inspect(con).get_table_names()
        return {n: con.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one() for n in names}


@pytest.fixture
def storage(storage_url: str) -> Iterator[optuna.storages.RDBStorage]:
    opened = open_storage(parse_url(storage_url))
    yield opened
    opened.engine.dispose()


@pytest.fixture
def source(storage: optuna.storages.RDBStorage) -> optuna.Study:
    return make_source(storage)


def steered(storage: optuna.storages.RDBStorage, url: str, name: str) -> steering.Steered:
    return steering.Steered(parse_url(url), name, storage=storage)


def assert_same_study(src: optuna.Study, copy: optuna.Study, numbers: list[int]) -> None:
    """``copy`` holds the trials of ``src`` numbered ``numbers``, renumbered 0.. in order."""
    assert copy.directions == src.directions
    assert copy.metric_names == src.metric_names
    assert copy.user_attrs == src.user_attrs
    assert copy._storage.get_study_system_attrs(copy._study_id) == (
        src._storage.get_study_system_attrs(src._study_id)
    )
    by_number = {t.number: t for t in src.trials}
    got = copy.trials
    assert [t.number for t in got] == list(range(len(numbers)))
    assert [facts(t) for t in got] == [facts(by_number[n]) for n in numbers]


# copying --------------------------------------------------------------------------------------


def test_a_whole_copy_reads_back_as_the_source(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    done = steering.copy_study(steered(storage, storage_url, "src"), "dst")
    copy = optuna.load_study(study_name="dst", storage=storage_url)
    src = optuna.load_study(study_name="src", storage=storage_url)
    assert_same_study(src, copy, list(range(14)))
    assert done.details["trials"] == done.details["source_trials"] == 14
    assert "copied 14 of 14 trials to 'dst'" in done.message
    states = [t.state for t in copy.trials]
    assert TrialState.RUNNING in states and TrialState.WAITING in states
    assert copy.trials[7].values == [math.inf, 0.5]
    assert copy.trials[5].intermediate_values[0] == math.inf
    # tui-hpo's curves moved to the new trial ids; the source keeps its own
    assert curves_of(storage.engine, [t._trial_id for t in copy.trials[2:4]]) == curves_of(
        storage.engine, [t._trial_id for t in src.trials[2:4]]
    )
    assert curves_of(storage.engine, [copy.trials[2]._trial_id]) == [[(0, 2.0), (1, 2.1)]]


def test_a_filter_keeps_its_trials_renumbered_in_order(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    keep = "state == complete and depth >= 1 and number != 3"
    done = steering.copy_study(steered(storage, storage_url, "src"), "clean", filter_text=keep)
    src = optuna.load_study(study_name="src", storage=storage_url)
    numbers = [t.number for t in src.trials if t.state == TrialState.COMPLETE and t.number != 3]
    assert len(numbers) == 8
    copy = optuna.load_study(
        study_name="clean", storage=storage_url, sampler=optuna.samplers.RandomSampler()
    )
    assert_same_study(src, copy, numbers)
    assert done.details["trials"] == 8 and done.details["source_trials"] == 14
    assert "renumbered 0-7" in done.message
    # trial 2 (COMPLETE) is the copy's 2, with its curve; trial 3 was left out with its own
    assert curves_of(storage.engine, [copy.trials[2]._trial_id]) == [[(0, 2.0), (1, 2.1)]]
    with storage.engine.connect() as con:
        assert con.execute(sa.select(sa.func.count()).select_from(tables.curves)).scalar() == 6
    # the copy is a study Optuna can go on with
    copy.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0), 1.0), n_trials=1)
    assert copy.trials[-1].number == 8


def test_a_metric_name_filters_like_in_the_app(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    steering.copy_study(steered(storage, storage_url, "src"), "good", filter_text="error < 4")
    copy = optuna.load_study(study_name="good", storage=storage_url)
    assert [t.values[0] for t in copy.trials] == [0.0, 1.0, 2.0, 3.0]


def test_a_copy_into_another_storage(
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    source: optuna.Study,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """SQLite to PostgreSQL and PostgreSQL to a new SQLite file: the rows' types (times,
    enums, infinities) cross dialects."""
    if storage_url.startswith("sqlite"):
        other = request.getfixturevalue("postgres_url")
    else:
        other = f"sqlite:///{tmp_path / 'copy.db'}"
    done = steering.copy_study(
        steered(storage, storage_url, "src"),
        "moved",
        filter_text="not state == pruned",
        to=parse_url(other),
    )
    assert "in " in done.message
    src = optuna.load_study(study_name="src", storage=storage_url)
    numbers = [t.number for t in src.trials if t.state != TrialState.PRUNED]
    there = optuna.storages.RDBStorage(other)
    try:
        copy = optuna.load_study(study_name="moved", storage=there)
        assert_same_study(src, copy, numbers)
        assert curves_of(there.engine, [copy.trials[2]._trial_id]) == [[(0, 2.0), (1, 2.1)]]
    finally:
        there.engine.dispose()
    assert [s.study_name for s in optuna.get_all_study_summaries(storage_url)] == ["src"]


def test_a_copy_of_an_empty_study(storage: optuna.storages.RDBStorage, storage_url: str) -> None:
    optuna.create_study(study_name="empty", storage=storage)
    done = steering.copy_study(steered(storage, storage_url, "empty"), "empty2")
    assert "copied 0 of 0 trials" in done.message
    assert optuna.load_study(study_name="empty2", storage=storage_url).trials == []


@pytest.mark.parametrize(
    ("src", "dst", "filter_text", "words"),
    [
        ("nope", "dst", None, "no study named 'nope'"),
        ("src", "src", None, "a study named 'src' already exists"),
        ("src", "dst", "x > 5", "filter 'x > 5' matches none of the 14 trials of 'src'"),
        ("src", "dst", "lr <", "filter:"),
        ("src", "dst", "lrr < 1", "unknown field 'lrr'"),
        ("src", "dst", "act == gelu", "filter:"),
        ("src", "", None, "give the copy a name"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    source: optuna.Study,
    src: str,
    dst: str,
    filter_text: str | None,
    words: str,
) -> None:
    before = row_counts(storage.engine)
    with pytest.raises(UserError) as raised:
        steering.copy_study(steered(storage, storage_url, src), dst, filter_text=filter_text)
    assert words in raised.value.message and "\n" not in raised.value.message
    assert row_counts(storage.engine) == before


def test_a_name_taken_meanwhile_writes_nothing(
    storage: optuna.storages.RDBStorage, source: optuna.Study
) -> None:
    """The unique study name is the last guard: the whole copy rolls back."""
    optuna.create_study(study_name="taken", storage=storage)
    before = row_counts(storage.engine)
    with pytest.raises(UserError, match="already exists"):
        study_copies.copy_study(storage.engine, source._study_id, storage.engine, "taken")
    assert row_counts(storage.engine) == before


def test_rounds_smaller_than_the_study(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    """The copy that reads rows out and writes them back (the one into another storage; here
    a second engine on the same database), in rounds of a few trials, by id list and by id
    range, copies the same rows as the copy within one database."""
    src = optuna.load_study(study_name="src", storage=storage_url)
    ids = [t._trial_id for t in src.trials if t.number % 2 == 0]
    reader = sa.create_engine(storage_url, poolclass=sa.pool.NullPool)
    for name, chunk in (("by-list", 3), ("by-range", 5)):
        old = study_copies.IN_LIST
        study_copies.IN_LIST = 2 if name == "by-range" else old
        try:
            study_copies.copy_study(reader, src._study_id, storage.engine, name, ids, chunk=chunk)
        finally:
            study_copies.IN_LIST = old
        copy = optuna.load_study(study_name=name, storage=storage_url)
        assert_same_study(src, copy, list(range(0, 14, 2)))
        assert curves_of(storage.engine, [copy.trials[1]._trial_id]) == [[(0, 2.0), (1, 2.1)]]
    reader.dispose()


# deleting -------------------------------------------------------------------------------------


def _own_rows(engine: sa.Engine, study_id: int, trial_ids: list[int]) -> dict[str, int]:
    """Rows of one study in each tui_hpo_* table, found by study_id or by trial_id."""
    out = {}
    with engine.connect() as con:
        for table in study_deletion.own_tables():
            whose = []
            if "study_id" in table.c:
                whose.append(table.c.study_id == study_id)
            if "trial_id" in table.c:
                whose.append(table.c.trial_id.in_(trial_ids))
            out[table.name] = con.execute(
                sa.select(sa.func.count()).select_from(table).where(sa.or_(*whose))
            ).scalar_one()
    return out


def _give_rows(engine: sa.Engine, study: optuna.Study) -> None:
    """A row for the study in every tui_hpo_* table, as a launch and its workers leave."""
    sid = study._study_id
    trial = study.trials[0]
    with engine.begin() as con:
        con.execute(tables.studies.insert().values(study_id=sid, trial_budget=10, paused=False))
        con.execute(tables.settings.insert().values(study_id=sid, kind="sampler", spec_json="{}"))
        con.execute(
            tables.slurm_jobs.insert().values(
                job_id=f"9{sid}", study_id=sid, tasks=2, recipe_json="{}"
            )
        )
        con.execute(
            tables.requests.insert().values(
                study_id=sid, trial_id=trial._trial_id, trial_number=0, action="prune"
            )
        )
        con.execute(tables.curves.insert().values(trial_id=trial._trial_id, step=9, value=1.0))
    worker = registry.register(engine, sid, gpu=None, log_path=None)
    registry.update(engine, worker, state="exited")


def test_delete_takes_every_row_of_the_study_and_no_other(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    other = make_source(storage, "other")
    for study in (source, other):
        _give_rows(storage.engine, study)
    gone_ids = [t._trial_id for t in source.trials]
    kept_ids = [t._trial_id for t in other.trials]
    assert all(_own_rows(storage.engine, source._study_id, gone_ids).values())
    kept_before = _own_rows(storage.engine, other._study_id, kept_ids)
    covered = {t.name for t in study_deletion.own_tables()}
    assert covered == set(tables.metadata.tables)  # every tui_hpo_* table belongs to a study

    done = steering.delete_study(steered(storage, storage_url, "src"))
    assert done.details["deleted"] and done.details["trials"] == 14
    assert "deleted, with its 14 trial(s)" in done.message
    assert _own_rows(storage.engine, source._study_id, gone_ids) == dict.fromkeys(covered, 0)
    assert _own_rows(storage.engine, other._study_id, kept_ids) == kept_before
    assert [s.study_name for s in optuna.get_all_study_summaries(storage_url)] == ["other"]
    with storage.engine.connect() as con:
        for table in optuna.storages._rdb.models.BaseModel.metadata.sorted_tables:
            if "trial_id" in table.c:
                left = con.execute(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(table.c.trial_id.in_(gone_ids))
                ).scalar_one()
                assert left == 0, table.name
    assert len(optuna.load_study(study_name="other", storage=storage_url).trials) == 14


def test_live_workers_refuse_a_delete_unless_forced(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    worker = registry.register(storage.engine, source._study_id, gpu="0", log_path=None)
    registry.update(storage.engine, worker, state="running")
    with pytest.raises(UserError, match=r"1 live worker\(s\) .*tui-hpo stop src.*--force"):
        steering.delete_study(steered(storage, storage_url, "src"))
    assert len(optuna.load_study(study_name="src", storage=storage_url).trials) == 14
    done = steering.delete_study(steered(storage, storage_url, "src"), force=True)
    assert done.details["deleted"] and "1 live worker(s) left running" in done.message
    assert optuna.get_all_study_summaries(storage_url) == []
    assert _own_rows(storage.engine, source._study_id, [])["tui_hpo_workers"] == 0


def test_a_delete_that_is_not_confirmed_deletes_nothing(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    asked: list[str] = []

    def say_no(question: str) -> bool:
        asked.append(question)
        return False

    before = row_counts(storage.engine)
    done = steering.delete_study(steered(storage, storage_url, "src"), confirm=say_no)
    assert asked == ["Delete study 'src' and its 14 trial(s) for good?"]
    assert done.details["deleted"] is False and done.message == "src: not deleted"
    assert row_counts(storage.engine) == before


def test_deleting_an_unknown_study_is_one_line(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    with pytest.raises(UserError, match="no study named 'nope' in this storage"):
        steering.delete_study(steered(storage, storage_url, "nope"))


def test_trial_notes_follow_their_trials(
    storage: optuna.storages.RDBStorage, storage_url: str, source: optuna.Study
) -> None:
    """optuna-dashboard keys a trial's note by trial id (study system attrs): the note of a
    kept trial moves to its new id, the note of a trial left out is not copied."""
    src = optuna.load_study(study_name="src", storage=storage_url)
    two, three = src.trials[2]._trial_id, src.trials[3]._trial_id
    for tid in (two, three):
        storage.set_study_system_attr(src._study_id, f"dashboard:{tid}:note_ver", 1)
        storage.set_study_system_attr(src._study_id, f"dashboard:{tid}:note_str:0", f"n{tid}")
    for name, where in (("here", None), ("there", "other")):
        reader = None if where is None else sa.create_engine(storage_url)
        study_copies.copy_study(
            reader or storage.engine,
            src._study_id,
            storage.engine,
            name,
            [t._trial_id for t in src.trials if t.number != 3],
        )
        if reader is not None:
            reader.dispose()
        copy = optuna.load_study(study_name=name, storage=storage_url)
        new = copy.trials[2]._trial_id
        notes = {
            k: v
            for k, v in storage.get_study_system_attrs(copy._study_id).items()
            if k.startswith("dashboard:")
        }
        assert notes == {f"dashboard:{new}:note_ver": 1, f"dashboard:{new}:note_str:0": f"n{two}"}


def test_trial_notes_into_a_storage_whose_ids_overlap(
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    source: optuna.Study,
    tmp_path: Path,
) -> None:
    """Into another storage the new trial ids shift by what it holds already, so a note's new
    key can be the key another source note has still: every note ends on its own trial."""
    other = f"sqlite:///{tmp_path / 'padded.db'}"
    pad = optuna.create_study(study_name="pad", storage=other)
    pad.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    src = optuna.load_study(study_name="src", storage=storage_url)
    for trial in src.trials:
        tid = trial._trial_id
        storage.set_study_system_attr(src._study_id, f"dashboard:{tid}:note_ver", 1)
        storage.set_study_system_attr(
            src._study_id, f"dashboard:{tid}:note_str:0", f"#{trial.number}"
        )
    steering.copy_study(steered(storage, storage_url, "src"), "moved", to=parse_url(other))
    there = optuna.storages.RDBStorage(other)
    try:
        copy = optuna.load_study(study_name="moved", storage=there)
        attrs = there.get_study_system_attrs(copy._study_id)
        for trial in copy.trials:
            assert attrs[f"dashboard:{trial._trial_id}:note_str:0"] == f"#{trial.number}"
        assert sum(k.startswith("dashboard:") for k in attrs) == 2 * len(copy.trials)
    finally:
        there.engine.dispose()
