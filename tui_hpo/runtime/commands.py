"""One trial as a run of the user's program (a sweep's ``command``).

The program runs as a child of its worker, in a process group and session of its own (so that
pruning can end it, and whatever it started, with one signal), in the sweep's folder, with the
worker's ``CUDA_VISIBLE_DEVICES``. Its stdout is read as it comes: every report of the
objective metric is an intermediate value, and the pruner is asked after each one. Its
stdout and stderr go to the trial's output file (capped), which ``tui-hpo logs`` and the app's
log pane follow. If the worker dies (fail-trial and --trial-timeout kill it, so does the OOM
killer), the kernel kills the program too (``PR_SET_PDEATHSIG``).

Files, in the worker's output folder (``bind``): ``trial-{number}.log`` (stdout and stderr as
they came, ``[tui-hpo: ...]`` lines where tui-hpo stepped in) and
``trial-{number}.metrics.jsonl`` (``$TUI_HPO_METRICS_FILE``: where the program may write JSON
lines instead of printing them).

With several objectives, the first metric's reports are the trial's intermediate values (the
worker's trial records them in ``tui_hpo_curves``; Optuna's own Trial takes none), and the
trial ends early only on a prune order: no Optuna pruner handles several objectives.

The cost over running the program by hand is a select loop and a regex per line that names a
metric: no sleeps, and no storage write per line beyond ``trial.report``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import optuna

from tui_hpo.runtime.metric_lines import MetricReader
from tui_hpo.runtime.sweep_model import Sweep
from tui_hpo.storage import attrs

log = logging.getLogger(__name__)

OUTPUT_CAP = 10 * 1024 * 1024
"""Bytes of a trial's output kept on disk; beyond it only a count of what was dropped."""
LINE_CAP = 1024 * 1024
"""Bytes of one stdout line kept for parsing: a progress bar redrawn with ``\\r`` and no newline
would otherwise grow without end. The line's tail is kept (its latest values)."""
STDERR_LINES = 20
"""Last stderr lines kept for the fail reason (at most ``REASON_CHARS`` of them shown)."""
REASON_CHARS = 500
PRUNE_CHECK_S = 2.0
"""A program that reports nothing for this long (quiet, or printing other things) is still
checked for prune orders."""
SELECT_S = 0.5
TAIL_EVERY_S = 0.05
"""While stdout is busy, the metrics file is read at most this often (one open per read)."""
ENV_DROPPED = ("TUI_HPO_", "OPTUNA_STORAGE")
"""The worker's own settings (the storage URL, with its password, among them) stay out of the
program's environment; tui-hpo's trial variables are set afresh."""


class CommandFailed(Exception):
    """The program ended badly: its exit code and last stderr lines, or the metric it never
    printed."""

    plain_reason = True
    """Its message is the whole fail reason: no exception name, no traceback in the log."""


def _find_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once here: after a fork only the call itself is safe."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _child_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the program when its worker dies.

    The kernel ties this to the thread that forked, so ``Popen`` must run in the thread that
    lives as long as the worker (its main thread, where the objective runs). A worker that
    died between the fork and the ``prctl`` would go unnoticed: the child checks its parent
    afterwards and leaves if it is already gone.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class CommandObjective:
    """A sweep as an Optuna objective: ``objective(trial)`` runs the program once."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.directions = sweep.directions
        self.metric_names = sweep.metric_names
        self._reader = MetricReader([*sweep.metric_names, *sweep.keep])
        self._output_dir: Path | None = None
        self._study = ""

    def bind(self, *, output_dir: Path, study: str) -> None:
        """Where trial output goes and which study this is, before the first trial."""
        self._output_dir = output_dir
        self._study = study

    def wrap_sampler(self, sampler: Any, seed: int | None) -> Any:
        """Random search draws with W&B's own distributions where Optuna's differ."""
        priors = {n: p.prior for n, p in self.sweep.params.items() if p.prior is not None}
        if priors and type(sampler) is optuna.samplers.RandomSampler:
            from tui_hpo.runtime.sweep_sampler import PriorRandomSampler

            return PriorRandomSampler(priors, seed=seed)
        return sampler

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from tui_hpo.runtime.sweeps import build_argv  # sweeps reads files: only when run

        values = {n: trial._suggest(n, p.distribution) for n, p in self.sweep.params.items()}
        argv, extra = build_argv(self.sweep, values)
        folder = self._output_dir or (self.sweep.cwd / "tui-hpo-trials")
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / f"trial-{trial.number}.log"
        metrics_file = folder / f"trial-{trial.number}.metrics.jsonl"
        metrics_file.unlink(missing_ok=True)
        trial.set_user_attr(attrs.OUTPUT, str(output))
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_DROPPED)}
        env.update(extra)
        env.update(
            TUI_HPO_STUDY=self._study,
            TUI_HPO_TRIAL_NUMBER=str(trial.number),
            TUI_HPO_METRICS_FILE=str(metrics_file),
            PYTHONUNBUFFERED="1",
        )
        run = _Run(argv, self.sweep.cwd, env, output, self.sweep.kill_grace)
        try:
            return self._follow(trial, run, metrics_file)
        finally:
            run.close()

    def _follow(self, trial: optuna.Trial, run: _Run, metrics_file: Path) -> float | list[float]:
        reports: dict[str, list[float]] = {m: [] for m in self.metric_names}
        kept: dict[str, float] = {}
        steps: set[int] = set()
        first = self.metric_names[0]
        # Optuna's own Trial reports one objective only; the worker's records curves of several
        can_report = len(self.metric_names) == 1 or getattr(trial, "reports_multi_objective", False)
        # a cheap look at prune orders alone where the trial offers one; else the pruner too
        ordered: Callable[[], bool] = getattr(trial, "prune_ordered", trial.should_prune)
        tail = _Tail(metrics_file)
        last_check = time.monotonic()

        def take(line: str) -> int | None:
            """Record a line's metrics; the step it reported at, if the trial is to be pruned."""
            nonlocal last_check
            found, step = self._reader.parse(line)
            if not found:
                return None
            for name, value in found.items():
                if name in reports:
                    reports[name].append(value)
                else:
                    kept[name] = value
            if first not in found or not can_report:
                return None
            at = step if step is not None else len(reports[first])  # counted from 1
            if at in steps:  # Optuna keeps one value per step: the first
                return None
            steps.add(at)
            trial.report(found[first], at)
            last_check = time.monotonic()
            return at if trial.should_prune() else None

        with contextlib.closing(run.lines(tail)) as lines:
            for line in lines:
                if line is not None:
                    at = take(line)
                    if at is not None:
                        self._prune(trial, run, kept, f"pruned at step {at}")
                if time.monotonic() - last_check >= PRUNE_CHECK_S:
                    last_check = time.monotonic()
                    if ordered():
                        self._prune(trial, run, kept, "pruned on request")
        code = run.wait()
        for line in tail.read(final=True):
            take(line)
        self._keep(trial, kept)
        trial.set_user_attr(attrs.EXIT_CODE, code)
        if code != 0:
            raise CommandFailed(_exit_reason(code, run.stderr_tail()))
        missing = [m for m in self.metric_names if not reports[m]]
        if missing:
            raise CommandFailed(f"printed no {missing[0]}")
        results = [_summary(reports[m], self.sweep.summary) for m in self.metric_names]
        return results[0] if len(results) == 1 else results

    def _prune(self, trial: optuna.Trial, run: _Run, kept: dict[str, float], why: str) -> None:
        run.end(why)
        self._keep(trial, kept)
        raise optuna.TrialPruned(why)

    def _keep(self, trial: optuna.Trial, kept: dict[str, float]) -> None:
        for name, value in kept.items():
            trial.set_user_attr(name, value)


def _summary(values: list[float], how: str) -> float:
    """The trial's value from its reports; ``min``/``max`` pass over NaN reports (a diverged
    epoch among good ones), ``last`` takes what came last, as W&B does."""
    if how == "last":
        return values[-1]
    numbers = [v for v in values if not math.isnan(v)] or values
    return min(numbers) if how == "min" else max(numbers)


def _exit_reason(code: int, stderr: list[str]) -> str:
    if code < 0:
        try:
            said = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            said = f"killed by signal {-code}"
    else:
        said = f"exit code {code}"
    lines = [line.strip() for line in stderr if line.strip()]
    text = " | ".join(lines)
    if len(text) > REASON_CHARS:
        text = "..." + text[-REASON_CHARS:]
    return f"{said}: {text}" if text else said


class _Tail:
    """New complete lines of the program's metrics file (JSON lines), as it appends them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self, *, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        parts = data.split(b"\n")
        self._partial = b"" if final else parts.pop()
        return [p.decode("utf-8", "replace") for p in parts if p.strip()]


class _Run:
    """The program's process, its pipes and its output file."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], output: Path, grace: float):
        self.grace = grace
        self._out: IO[bytes] = open(output, "wb")  # noqa: SIM115 - closed in close()
        self._written = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_child_setup(),  # noqa: PLW1509 - prctl, resolved before the fork
            )
        except OSError as exc:
            reason = _launch_error(exc, argv[0], cwd)
            self.note(reason)
            self._out.close()
            raise CommandFailed(reason) from None
        self._errors = threading.Thread(target=self._read_stderr, daemon=True)
        self._errors.start()

    def _write(self, data: bytes) -> None:
        with self._lock:
            room = OUTPUT_CAP - self._written
            if room <= 0:
                self._dropped += len(data)
                return
            kept = data[:room]
            self._out.write(kept)
            self._out.flush()
            self._written += len(kept)
            self._dropped += len(data) - len(kept)

    def note(self, text: str) -> None:
        """A line of tui-hpo's own in the output file (outside the cap: there are few)."""
        with self._lock:
            self._out.write(f"[tui-hpo: {text}]\n".encode())
            self._out.flush()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in iter(self.process.stderr.readline, b""):
            self._write(raw)
            self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def stderr_tail(self) -> list[str]:
        self._errors.join(timeout=5)
        return list(self._stderr)

    def lines(self, tail: _Tail) -> Iterator[str | None]:
        """Each stdout line and metrics-file line as it comes; None after ``SELECT_S`` of quiet.

        Ends at stdout's end, or once the program has exited and stdout stays quiet: what still
        holds the pipe then is something the program left behind, which ``close`` ends."""
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        partial = b""
        tailed = time.monotonic()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                ready = selector.select(timeout=SELECT_S)
                now = time.monotonic()
                if not ready or now - tailed >= TAIL_EVERY_S:
                    tailed = now
                    yield from tail.read()
                if not ready:
                    if self.process.poll() is not None:
                        break
                    yield None
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._write(chunk)
                partial += chunk
                *complete, partial = partial.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", "replace")
                if len(partial) > LINE_CAP:
                    partial = partial[-LINE_CAP:]
        if partial:
            yield partial.decode("utf-8", "replace")

    def wait(self) -> int:
        return self.process.wait()

    def end(self, why: str | None = None) -> None:
        """SIGTERM to the program's group, SIGKILL after the grace period; at once if the
        worker is told to stop again meanwhile (a second Ctrl-C means now)."""
        if self.process.poll() is not None:
            self._kill_group(signal.SIGKILL)  # what it started may outlive it
            return
        self.note(f"{why or 'trial cut short'}: SIGTERM to the program")
        self._kill_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self.note(f"still running {self.grace:g} s after SIGTERM: SIGKILL")
        finally:  # also when a second signal cuts the grace short
            self._kill_group(signal.SIGKILL)
        self.process.wait()

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def close(self) -> None:
        """Whatever happened (a signal to the worker included): no program outlives its
        trial, no pipe or file stays open."""
        try:
            self.end()
        finally:
            self._errors.join(timeout=5)
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            with self._lock:
                if self._dropped:
                    self._out.write(
                        f"\n[tui-hpo: output capped at {OUTPUT_CAP} bytes; "
                        f"{self._dropped} more dropped]\n".encode()
                    )
                self._out.close()


def _launch_error(exc: OSError, program: str, cwd: Path) -> str:
    """One line on why the program could not start. ``Popen`` raises the same errors for a
    missing folder as for a missing program; the exception's file name tells them apart."""
    if exc.filename is not None and str(exc.filename) == str(cwd):
        return f"can't run {program!r}: folder {str(cwd)!r} doesn't exist"
    if isinstance(exc, FileNotFoundError):
        return f"program {program!r} not found (run in {cwd})"
    if isinstance(exc, PermissionError):
        return f"program {program!r} is not executable (run in {cwd})"
    return f"can't run {program!r}: {exc.strerror or exc}"
