"""Driving the app as a user does, for the app's tests: the app that keeps its notifications,
waiting for conditions on the app's loop (or, for the storage, in a thread), reading what the
screen shows, building plain-Optuna studies with fixed trials, and the workers a test starts
(and always ends)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import psutil
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.support import run_cli
from tui_hpo.app.app import TuiHpoApp
from tui_hpo.app.screens.forms import (
    PromptScreen,
)
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.app.widgets.trials_table import TrialsTable
from tui_hpo.control import orders as control
from tui_hpo.control import registry
from tui_hpo.data import summaries as reads
from tui_hpo.data.frames import STATE_NAMES
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUADRATIC = "objectives.synthetic:quadratic"
SLOW = "objectives.synthetic:slow"
HANG = "objectives.synthetic:hang"
FAST = ["--heartbeat-interval", "1", "--poll-interval", "0.2"]
NO_GPU = {"TUI_HPO_GPU_COUNT": "0"}
WAIT = 90.0  # seconds: generous, the machine is shared
SMALL = (80, 24)
WIDE = (160, 48)

QUAD_DISTS = {
    "x": FloatDistribution(-10.0, 10.0),
    "y": FloatDistribution(-10.0, 10.0),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
}
T0 = dt.datetime(2025, 1, 1, 12, 0, 0)


# the app, recording its notifications -------------------------------------------------------


class NotingApp(TuiHpoApp):
    """The real app; every notification is also kept in ``notes`` (toasts expire)."""

    def __init__(self, url: str, study: str | None = None) -> None:
        super().__init__(parse_url(url), study)
        self.notes: list[tuple[str, str]] = []

    def notify(self, message: str, *, severity: Any = "information", **kw: Any) -> None:
        self.notes.append((str(message), str(severity)))
        super().notify(message, severity=severity, **kw)

    def noted(self, part: str, severity: str | None = None) -> bool:
        return any(part in m and severity in (None, s) for m, s in self.notes)


def run(scenario: Awaitable[None]) -> None:
    asyncio.run(scenario)  # type: ignore[arg-type]


async def until(
    pilot: Pilot[Any], cond: Callable[[], object], what: str, timeout: float = WAIT
) -> None:
    """Let the app run until ``cond()`` (evaluated on the app's loop) holds."""
    deadline = time.monotonic() + timeout
    while not _holds(cond):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


def _holds(cond: Callable[[], object]) -> bool:
    try:
        return bool(cond())
    except NoMatches:  # a screen still composing, or another one on top
        return False


async def until_db(
    pilot: Pilot[Any], cond: Callable[[], object], what: str, timeout: float = WAIT
) -> Any:
    """Like ``until`` for a condition that reads the storage or processes: run in a thread,
    so the app keeps painting and polling meanwhile. Returns the condition's value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(cond)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.3)


def text(widget: Any) -> str:
    return str(widget.render())


def table_of(app: TuiHpoApp) -> TrialsTable:
    return app.screen.query_one(TrialsTable)


def study_screen(app: TuiHpoApp) -> StudyScreen:
    screen = app.screen
    assert isinstance(screen, StudyScreen), type(screen).__name__
    return screen


def header(app: TuiHpoApp) -> str:
    return text(app.screen.query_one("#header", Static))


def shown_states(app: TuiHpoApp) -> list[str]:
    table = table_of(app)
    assert table.frame is not None
    return [STATE_NAMES[int(table.frame.state[i])] for i in table.view]


def shown_numbers(app: TuiHpoApp) -> list[int]:
    table = table_of(app)
    assert table.frame is not None
    return [int(table.frame.number[i]) for i in table.view]


def state_of(app: TuiHpoApp, number: int) -> str | None:
    screen = app.screen
    if not isinstance(screen, StudyScreen) or screen.snapshot is None:
        return None
    frame = screen.snapshot.frame
    i = frame.index_of(number)
    return None if i is None else STATE_NAMES[int(frame.state[i])]


async def open_study(pilot: Pilot[Any], app: TuiHpoApp, name: str, n_trials: int = 1) -> None:
    """Wait until the study view of ``name`` is up with at least ``n_trials`` rows."""

    def ready() -> bool:
        screen = app.screen
        return (
            isinstance(screen, StudyScreen)
            and screen.study == name
            and len(screen.query_one(TrialsTable).view) >= n_trials
        )

    await until(pilot, ready, f"the study view of {name} with {n_trials} trial(s)")


async def selected_settles(pilot: Pilot[Any], app: TuiHpoApp, number: int) -> None:
    await until(pilot, lambda: table_of(app).selected_number() == number, f"trial {number}")


async def type_into(pilot: Pilot[Any], value: str) -> None:
    """Type into the focused Input as a user does: clear it, then key by key."""
    focused = pilot.app.focused
    assert isinstance(focused, Input), focused
    focused.value = ""
    await pilot.press(*value)


async def prompt(pilot: Pilot[Any], key: str, value: str) -> None:
    """Open a one-line prompt with ``key``, type ``value`` and press Enter."""
    app = pilot.app
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, PromptScreen), f"the prompt of {key!r}")
    await type_into(pilot, value)
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, PromptScreen), "the prompt to close")


async def submit_form(pilot: Pilot[Any], input_id: str) -> None:
    """Submit the open form by Enter in one of its inputs."""
    pilot.app.screen.query_one(f"#{input_id}", Input).focus()
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


def fill(app: TuiHpoApp, **values: str) -> None:
    for key, value in values.items():
        app.screen.query_one(f"#{key}", Input).value = value


def form_error(app: TuiHpoApp) -> str:
    return text(app.screen.query_one(".error", Static))


# storage content -------------------------------------------------------------------------------


_ENSURED: set[str] = set()


def engine_of(url: str) -> sa.Engine:
    """An engine on the storage, its tui-hpo tables made as every command makes them (a study
    made by plain Optuna has none until then)."""
    if url not in _ENSURED:
        open_storage(parse_url(url), must_exist=True).engine.dispose()
        _ENSURED.add(url)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def status(url: str, study: str) -> dict[str, Any]:
    """``tui-hpo status --study STUDY --json``'s study object, read in-process (the CLI prints
    exactly ``StudySummary.to_json``; a subprocess costs seconds on this machine)."""
    engine = engine_of(url)
    try:
        with engine.connect() as con:
            (summary,) = reads.summaries(con, study)
        return summary.to_json()
    finally:
        engine.dispose()


def status_cli(url: str, study: str) -> dict[str, Any]:
    proc = run_cli("status", "--study", study, "--json", "--storage", url)
    assert proc.returncode == 0, proc.stderr
    (found,) = json.loads(proc.stdout)["studies"]
    return found


def workers_of(url: str, study: str, *, all_: bool = True) -> list[registry.WorkerRow]:
    engine = engine_of(url)
    try:
        with engine.connect() as con:
            ids = reads.study_ids(con)
            if study not in ids:
                return []
            return registry.list_workers(con, ids[study], include_exited=all_)
    finally:
        engine.dispose()


def live(url: str, study: str) -> list[registry.WorkerRow]:
    return [w for w in workers_of(url, study) if w.state not in ("exited", "lost")]


def orders(url: str, study: str) -> control.Orders:
    engine = engine_of(url)
    try:
        with engine.connect() as con:
            return control.read_orders(con, reads.study_ids(con)[study])
    finally:
        engine.dispose()


def trials_of(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        found = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
        return sorted(found, key=lambda t: t.number)
    finally:
        storage.engine.dispose()


def trial_state(url: str, study: str, number: int) -> str:
    (t,) = [t for t in trials_of(url, study) if t.number == number]
    return t.state.name


def running_with_pid(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in trials_of(url, study)
        if t.state == TrialState.RUNNING and "tui_hpo.pid" in t.user_attrs
    ]


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def proc_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def quad_trial(i: int, state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    """A fixed, finished trial of the quadratic objective's space (params, value, times)."""
    x, y, lr = -8.0 + 1.7 * i, 6.0 - 1.3 * i, 10 ** (-4.5 + 0.4 * i)
    value = float((x - 2) ** 2 + (y + 1) ** 2 + 0.1 * (np.log10(lr) + 3) ** 2)
    start = T0 + dt.timedelta(seconds=30 * i)
    trial = create_trial(
        state=state,
        params={"x": x, "y": y, "lr": lr},
        distributions=QUAD_DISTS,
        value=value if state == TrialState.COMPLETE else None,
        intermediate_values={s: value + 5.0 / (s + 1) for s in range(3)},
    )
    return _with_times(trial, start, start + dt.timedelta(seconds=20))


def _with_times(
    trial: optuna.trial.FrozenTrial, start: dt.datetime, end: dt.datetime
) -> optuna.trial.FrozenTrial:
    trial.datetime_start = start
    trial.datetime_complete = end
    return trial


def plain_study(
    url: str, name: str, states: list[TrialState] | None = None, directions: int = 1
) -> optuna.Study:
    """A study made by plain Optuna (no tui-hpo involved), with fixed trials."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["minimize"] * directions
    )
    if directions == 1:
        for i, state in enumerate(states or [TrialState.COMPLETE] * 3):
            study.add_trial(quad_trial(i, state))
    else:
        for i in range(8):
            f1 = i / 7
            # points 0, 2, 4, 6 on the ZDT1 front; the odd ones behind it
            f2 = 1 - np.sqrt(f1) + (0.5 if i % 2 else 0.0)
            extra = [0.5 + 0.05 * i] * (directions - 2)
            study.add_trial(
                _with_times(
                    create_trial(
                        params={"x0": f1, "x1": 0.1 * (i % 3)},
                        distributions={
                            "x0": FloatDistribution(0, 1),
                            "x1": FloatDistribution(0, 1),
                        },
                        values=[f1, float(f2), *extra],
                    ),
                    T0 + dt.timedelta(seconds=30 * i),
                    T0 + dt.timedelta(seconds=30 * i + 20),
                )
            )
    storage.engine.dispose()
    return study


# workers ---------------------------------------------------------------------------------------


def _tui_hpo_cmdline(proc: psutil.Process) -> list[str] | None:
    """The arguments of a ``python -m tui_hpo ...`` process of this user, else None (a
    PostgreSQL backend's title names our database too: never match on a substring)."""
    try:
        if proc.uids().real != os.getuid():
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if len(cmdline) >= 3 and cmdline[1:3] == ["-m", "tui_hpo"]:
        return cmdline
    return None


def _kill(pid: int) -> None:
    """SIGKILL a worker: its whole process group when it leads one of its own (a supervisor
    and its trial process), else just the process."""
    try:
        if _tui_hpo_cmdline(psutil.Process(pid)) is None:
            return
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
        pass


class Workers:
    """Workers of one storage started for a test, and the cleanup that ends all of them."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.log_dir = tmp_path / "logs"
        self.studies: set[str] = set()

    def launch(
        self,
        objective: str,
        study: str,
        *extra: str,
        workers: int = 1,
        n_trials: int = 100,
        env: dict[str, str] | None = None,
    ) -> None:
        self.studies.add(study)
        proc = run_cli(
            "launch",
            objective,
            "--study",
            study,
            "--workers",
            str(workers),
            "--n-trials",
            str(n_trials),
            "--detach",
            "--storage",
            self.url,
            "--log-dir",
            str(self.log_dir),
            *FAST,
            *extra,
            env={**NO_GPU, **(env or {})},
            timeout=240,
        )
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr

    def pids(self) -> set[int]:
        """Worker and supervisor pids in the storage, and any ``python -m tui_hpo`` process of
        ours whose storage is exactly this one (started but not registered yet)."""
        found: set[int] = set()
        for study in self.studies:
            try:
                rows = workers_of(self.url, study)
            except Exception:  # noqa: BLE001 - storage gone: the process scan below remains
                rows = []
            for w in rows:
                found.update(p for p in (w.pid, w.supervisor_pid) if p)
        for proc in psutil.process_iter():
            cmdline = _tui_hpo_cmdline(proc)
            if cmdline is None:
                continue
            try:
                env_url = proc.environ().get("TUI_HPO_STORAGE")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            flag = [b for a, b in zip(cmdline, cmdline[1:], strict=False) if a == "--storage"]
            if env_url == self.url or self.url in flag:
                found.add(proc.pid)
        mine = set()
        for pid in found:
            try:
                if pid != os.getpid() and _tui_hpo_cmdline(psutil.Process(pid)) is not None:
                    mine.add(pid)
            except psutil.NoSuchProcess:
                continue
        return mine

    def cleanup(self) -> None:
        # `tui-hpo stop STUDY` is control.request_stop; called in-process (a CLI call costs
        # ~5 s here) since SIGKILL right after ends the workers anyway.
        engine = engine_of(self.url)
        try:
            with engine.connect() as con:
                ids = reads.study_ids(con)
            for study in self.studies:
                if study in ids:
                    control.request_stop(engine, ids[study])
        except Exception:  # noqa: BLE001 - the storage may be gone; the kill still runs
            pass
        finally:
            engine.dispose()
        pids = self.pids()
        for pid in pids:
            if alive(pid):
                _kill(pid)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
