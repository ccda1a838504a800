"""Notes and tags in the storage (``control.notes``, ``control.tags``), on both storages.

Notes must be optuna-dashboard's own: each direction is checked with the dashboard's
``save_note``/``get_note`` themselves, and the rows a sequence of saves leaves behind are
compared with the rows the dashboard leaves for the same sequence. Tags are checked as Optuna
reads them, and as the app's frame reader picks them up on finished trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note, save_note

from tui_hpo.control import notes, tags
from tui_hpo.data.filters import parse
from tui_hpo.data.frames import StudyReader
from tui_hpo.errors import UserError
from tui_hpo.storage import attrs
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

LONG = "".join(f"line {i}: {'x' * (i % 70)}\n" for i in range(300))
"""A note of several pieces (over 2045 characters), with non-ASCII at a piece boundary."""
LONG = LONG[: notes.CHUNK - 1] + "é€" + LONG[notes.CHUNK - 1 :]


@pytest.fixture
def storage(storage_url: str) -> Iterator[optuna.storages.RDBStorage]:
    made = open_storage(parse_url(storage_url))
    try:
        yield made
    finally:
        made.engine.dispose()


def _study(storage: optuna.storages.RDBStorage, name: str, n: int = 3) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage)
    for i in range(n):
        study.add_trial(
            create_trial(
                params={"x": float(i)},
                distributions={"x": FloatDistribution(-10, 10)},
                value=float(i),
                state=TrialState.COMPLETE,
            )
        )
    return study


def _trial(study: optuna.Study, number: int) -> optuna.Trial:
    """The dashboard's ``save_note`` takes a live ``Trial``; one on a finished trial will do
    (it only writes study attrs)."""
    return optuna.Trial(study, study.trials[number]._trial_id)


def _read(storage: optuna.storages.RDBStorage, study_id: int, trial_id: int | None) -> str:
    with storage.engine.connect() as con:
        return notes.read_note(con, study_id, trial_id).body


def _note_rows(study: optuna.Study) -> dict[str, object]:
    """The study's note attrs, trial ids turned into trial numbers (two studies' notes compare
    equal when they hold the same notes)."""
    by_id = {t._trial_id: t.number for t in study.trials}
    out: dict[str, object] = {}
    for key, value in study._storage.get_study_system_attrs(study._study_id).items():
        if not key.startswith("dashboard:"):
            continue
        parts = key.split(":")
        if parts[1].isdigit():
            parts[1] = f"#{by_id[int(parts[1])]}"
        out[":".join(parts)] = value
    return out


# notes ------------------------------------------------------------------------------------


def test_a_note_the_dashboard_saved_reads_here(storage: optuna.storages.RDBStorage) -> None:
    study = _study(storage, "s")
    trial = _trial(study, 1)
    save_note(study, "# study\nfirst words")
    save_note(trial, LONG)
    assert _read(storage, study._study_id, None) == "# study\nfirst words"
    assert _read(storage, study._study_id, trial._trial_id) == LONG
    assert _read(storage, study._study_id, _trial(study, 0)._trial_id) == ""
    save_note(trial, "short now")  # the dashboard shrinks it: its left-over pieces are ""
    assert _read(storage, study._study_id, trial._trial_id) == "short now"
    with storage.engine.connect() as con:
        found = notes.read_note(con, study._study_id, trial._trial_id)
    assert found.version == 2


def test_a_note_saved_here_reads_in_the_dashboard(storage: optuna.storages.RDBStorage) -> None:
    study = _study(storage, "s")
    trial = _trial(study, 2)
    engine = storage.engine
    assert notes.write_note(engine, study._study_id, None, "study words").version == 1
    assert notes.write_note(engine, study._study_id, trial._trial_id, LONG).version == 1
    assert get_note(study) == "study words"
    assert get_note(trial) == LONG
    assert get_note(_trial(study, 0)) == ""
    notes.write_note(engine, study._study_id, trial._trial_id, "shrunk")
    assert get_note(trial) == "shrunk"
    notes.write_note(engine, study._study_id, trial._trial_id, LONG + LONG)
    assert get_note(trial) == LONG + LONG
    assert get_note(study) == "study words"  # the trial's pieces never touch the study's


def test_the_same_saves_leave_the_same_rows_as_the_dashboards(
    storage: optuna.storages.RDBStorage,
) -> None:
    """Version by version and piece by piece, so the dashboard's editor (which refuses a save
    whose version is not the stored one plus one) keeps working on notes saved here."""
    ours, theirs = _study(storage, "ours"), _study(storage, "theirs")
    for trial_number, body in [
        (None, LONG),
        (1, LONG + LONG),
        (1, "x"),
        (None, "y"),
        (1, ""),
        (0, "kept"),
        (1, LONG),
    ]:
        trial_id = None if trial_number is None else ours.trials[trial_number]._trial_id
        notes.write_note(storage.engine, ours._study_id, trial_id, body)
        save_note(theirs if trial_number is None else _trial(theirs, trial_number), body)
    assert _note_rows(ours) == _note_rows(theirs)
    assert _note_rows(ours)["dashboard:#1:note_ver"] == 4


def test_saves_alternate_between_the_two_tools(storage: optuna.storages.RDBStorage) -> None:
    study = _study(storage, "s")
    trial = _trial(study, 0)
    for i in range(3):
        save_note(trial, f"dashboard {i} " + LONG[: 3000 * (i % 2)])
        assert _read(storage, study._study_id, trial._trial_id) == get_note(trial)
        saved = notes.write_note(storage.engine, study._study_id, trial._trial_id, f"here {i}")
        assert saved.version == 2 * i + 2
        assert get_note(trial) == f"here {i}"


def test_an_empty_note_clears_it(storage: optuna.storages.RDBStorage) -> None:
    study = _study(storage, "s")
    notes.write_note(storage.engine, study._study_id, None, LONG)
    notes.write_note(storage.engine, study._study_id, None, "")
    assert get_note(study) == ""
    with storage.engine.connect() as con:
        assert notes.study_note_lines(con, study._study_id) == []


def test_a_save_over_a_newer_note_is_refused(storage: optuna.storages.RDBStorage) -> None:
    """The app's editor saves with the version it read: a note someone saved meanwhile (here
    in optuna-dashboard) is not overwritten, and the one line says to open it again."""
    from tui_hpo import steering

    study = _study(storage, "s")
    trial = _trial(study, 1)
    steered = steering.Steered(parse_url(str(storage.engine.url)), "s", storage=storage)
    read = steering.read_note(steered, 1)
    assert read.details["version"] == 0
    save_note(trial, "theirs")
    with pytest.raises(UserError, match="saved elsewhere since it was opened.*open it again"):
        steering.note(steered, 1, "mine", expected_version=0)
    assert get_note(trial) == "theirs"
    done = steering.note(steered, 1, "mine", expected_version=1)
    assert done.details["version"] == 2 and get_note(trial) == "mine"


def test_first_saves_at_once_each_get_a_version(storage: optuna.storages.RDBStorage) -> None:
    """Savers that all find no note yet: none fails on the unique key, and each save is one
    version (the note ends as the last one saved)."""
    import threading

    study = _study(storage, "s")
    trial_id = _trial(study, 0)._trial_id
    start = threading.Barrier(6)
    saved: list[int] = []

    def save(i: int) -> None:
        start.wait()
        saved.append(notes.write_note(storage.engine, study._study_id, trial_id, f"v{i}").version)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(saved) == [1, 2, 3, 4, 5, 6]
    with storage.engine.connect() as con:
        assert notes.read_note(con, study._study_id, trial_id).version == 6


def test_first_lines() -> None:
    note = notes.Note("\n\n  # Title  \n\nbody " + "y" * 300 + "\nthird\n", 3)
    assert note.first_lines(1) == ["# Title"]
    two = note.first_lines(2, width=20)
    assert two[1] == "body " + "y" * 14 + "…" and len(two[1]) == 20
    assert notes.Note("", 0).first_lines(3) == []


# tags -------------------------------------------------------------------------------------


def _user_attrs(url: str, name: str, number: int) -> dict[str, object]:
    """A trial's user attrs as plain Optuna reads them in a new process (no cache)."""
    fresh = optuna.storages.RDBStorage(url)
    try:
        study = optuna.load_study(study_name=name, storage=fresh)
        return study.trials[number].user_attrs
    finally:
        fresh.engine.dispose()


def test_tags_on_a_finished_trial(storage: optuna.storages.RDBStorage, storage_url: str) -> None:
    study = _study(storage, "s")
    engine = storage.engine
    trial_id = tags.trial_id_of(engine, study._study_id, 1)
    assert tags.change_tags(engine, trial_id, add=["keep", "bad", "keep"]) == ([], ["bad", "keep"])
    assert _user_attrs(storage_url, "s", 1)[attrs.TAGS] == ["bad", "keep"]
    assert tags.change_tags(engine, trial_id, remove=["bad", "never"]) == (
        ["bad", "keep"],
        ["keep"],
    )
    assert tags.change_tags(engine, trial_id, remove=["keep"]) == (["keep"], [])
    assert _user_attrs(storage_url, "s", 1)[attrs.TAGS] == []
    assert attrs.TAGS not in _user_attrs(storage_url, "s", 0)
    with engine.connect() as con:
        assert tags.read_tags(con, trial_id) == []


def test_each_change_is_the_newest_row(storage: optuna.storages.RDBStorage) -> None:
    """What lets the app's reader find changed tags among the newest rows only: a change is
    written as a new row (SQLite may give it the id of the row it replaced, when that was the
    newest), never updated in place under an old id."""
    from optuna.storages._rdb import models

    ua = models.TrialUserAttributeModel.__table__
    study = _study(storage, "s")
    engine = storage.engine
    trial_id = tags.trial_id_of(engine, study._study_id, 0)

    def row_id() -> int:
        with engine.connect() as con:
            return con.execute(
                sa.select(ua.c.trial_user_attribute_id).where(
                    ua.c.trial_id == trial_id, ua.c.key == attrs.TAGS
                )
            ).scalar_one()

    def newest() -> int:
        with engine.connect() as con:
            return con.execute(sa.select(sa.func.max(ua.c.trial_user_attribute_id))).scalar_one()

    tags.change_tags(engine, trial_id, add=["a"])
    first = row_id()
    assert first == newest()
    tags.change_tags(engine, trial_id, add=["a"])  # nothing changed: the row stays
    assert row_id() == first
    other = tags.trial_id_of(engine, study._study_id, 1)
    tags.change_tags(engine, other, add=["x"])
    tags.change_tags(engine, trial_id, add=["b"])
    assert row_id() == newest() > first


def test_a_worker_starting_a_tagged_waiting_trial_keeps_its_tags(
    storage: optuna.storages.RDBStorage,
) -> None:
    """A worker clears the ``tui_hpo.*`` attrs of a trial it starts (a retried trial carries
    the lost run's), but not the tags someone gave the trial while it waited in the queue."""
    from tui_hpo.control import provenance

    study = _study(storage, "s", 0)
    study.enqueue_trial({"x": 1.0})
    engine = storage.engine
    trial_id = tags.trial_id_of(engine, study._study_id, 0)
    tags.change_tags(engine, trial_id, add=["queued-by-hand"])
    provenance.record_start(engine, trial_id, {attrs.HOST: "box"}, heartbeat=False)
    with engine.connect() as con:
        assert tags.read_tags(con, trial_id) == ["queued-by-hand"]


def test_tags_someone_else_stored_are_read_as_well_as_they_can_be() -> None:
    assert tags.decode(json.dumps(["b", "a", "b", " "])) == ["a", "b"]
    assert tags.decode(json.dumps("x,y")) == ["x", "y"]
    assert tags.decode(json.dumps(3)) == ["3"]
    assert tags.decode("null") == [] and tags.decode(None) == []


@pytest.mark.parametrize(
    ("tag", "piece"),
    [
        ("", "can't be empty"),
        ("two words", "has a blank in it"),
        ("tab\there", "has a blank in it"),
        ("a,b", "has a comma in it"),
        ("-x", "starts with '-'"),
        ("bell\x07", "control character"),
        ("x" * 65, "longer than 64"),
    ],
)
def test_bad_tags(tag: str, piece: str) -> None:
    with pytest.raises(UserError, match=piece) as caught:
        tags.check_tag(tag)
    assert len(caught.value.message.splitlines()) == 1


def test_good_tags() -> None:
    assert tags.check_tags(["bad", "lr-1e-3", "v2.1", "été", "bad"]) == [
        "bad",
        "lr-1e-3",
        "v2.1",
        "été",
    ]
    with pytest.raises(UserError, match="at least one tag"):
        tags.check_tags([])


def test_a_trial_not_in_the_study(storage: optuna.storages.RDBStorage) -> None:
    study = _study(storage, "s")
    _study(storage, "other", 5)  # its trial 4 is not s's
    with pytest.raises(UserError, match="^trial 4 does not exist in this study$"):
        tags.trial_id_of(storage.engine, study._study_id, 4)


def test_the_frame_reader_sees_tags_change_on_finished_trials(
    storage: optuna.storages.RDBStorage,
) -> None:
    study = _study(storage, "s", 5)
    engine = storage.engine
    tags.change_tags(engine, tags.trial_id_of(engine, study._study_id, 0), add=["early"])
    reader = StudyReader(engine, study._study_id, ["minimize"])
    frame = reader.poll()
    assert [frame.tags_of(i) for i in range(5)] == [["early"], [], [], [], []]
    assert reader.poll() is frame  # nothing changed: the same frame
    # finished trials are not read again, yet their new tags show at the next poll
    tags.change_tags(engine, tags.trial_id_of(engine, study._study_id, 3), add=["bad", "odd"])
    tags.change_tags(engine, tags.trial_id_of(engine, study._study_id, 0), remove=["early"])
    frame = reader.poll()
    assert [frame.tags_of(i) for i in range(5)] == [[], [], [], ["bad", "odd"], []]
    assert list(frame.number[parse("tag = bad").mask(frame)]) == [3]
    assert list(frame.number[parse("tag != bad").mask(frame)]) == [0, 1, 2, 4]
    # a new trial with tags, and the reader's other attrs untouched
    study.add_trial(
        create_trial(
            params={"x": 9.0},
            distributions={"x": FloatDistribution(-10, 10)},
            value=9.0,
            user_attrs={attrs.TAGS: ["late"], attrs.HOST: "box"},
        )
    )
    frame = reader.poll()
    assert frame.tags_of(5) == ["late"] and frame.host[5] == "box"
    assert reader.poll() is frame


def test_first_taggings_at_once_add_up(storage: optuna.storages.RDBStorage) -> None:
    import threading

    study = _study(storage, "s")
    trial_id = _trial(study, 2)._trial_id
    start = threading.Barrier(5)
    failed: list[BaseException] = []

    def tag(i: int) -> None:
        start.wait()
        try:
            tags.change_tags(storage.engine, trial_id, add=[f"t{i}"])
        except BaseException as exc:  # noqa: BLE001 - the test reports it below
            failed.append(exc)

    threads = [threading.Thread(target=tag, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failed == []
    with storage.engine.connect() as con:
        assert tags.read_tags(con, trial_id) == ["t0", "t1", "t2", "t3", "t4"]
