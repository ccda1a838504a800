"""One function per steering verb: what ``tui-hpo pause S`` runs and what ``p`` in the app runs.

Each verb checks its input, acts through the storage (so it reaches workers on any machine that
can open it) and returns an ``Outcome``: what happened, in the words both front ends show. The
CLI prints ``outcome.message``; the app shows it as a notification. Neither words a verb's
result itself, so a shell and the app always say the same thing.

A mistake the user can fix raises ``UserError`` (one line; the CLI exits 2, the app notifies)
and leaves the storage as it was: input is checked before anything is written.

The verbs take a ``Steered`` study: a study by name in a storage, opened when a verb first
needs it. The CLI makes one per command; the app makes one per key press around the storage
and study id it already holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_hpo.control import local_workers, orders, queueing, registry, trial_orders
from tui_hpo.control.specs import parse_kwargs, pruner_spec, sampler_spec
from tui_hpo.control.trial_orders import not_running as not_running  # the app's words too
from tui_hpo.errors import UserError
from tui_hpo.storage.urls import StorageURL

if TYPE_CHECKING:
    import optuna
    import sqlalchemy as sa


@dataclass(frozen=True)
class Outcome:
    """What a verb did: ``message`` is shown as it is (one line, or a second one for what was
    left undone); ``details`` holds the same facts for a program to read."""

    verb: str
    study: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class Steered:
    """A study to steer, by name, in a storage that is opened (and the study looked up) only
    when a verb first needs it: a verb checks its input before it touches the storage, so a
    mistake is reported as that mistake even when the storage is away too."""

    def __init__(
        self,
        target: StorageURL,
        name: str,
        *,
        storage: optuna.storages.RDBStorage | None = None,
        study_id: int | None = None,
    ) -> None:
        self.target = target
        self.name = name
        self._storage = storage
        self._study_id = study_id

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        if self._storage is None:
            from tui_hpo.storage.engines import open_storage

            self._storage = open_storage(self.target, must_exist=True)
        return self._storage

    @property
    def engine(self) -> sa.Engine:
        return self.storage.engine

    @property
    def study_id(self) -> int:
        """The study's id, or one line naming the studies that exist."""
        if self._study_id is None:
            self._study_id = orders.study_id_of(self.engine, self.name)
        return self._study_id

    def optuna_study(self) -> optuna.Study:
        import optuna

        self.study_id  # noqa: B018 - the one-line "no study named" before Optuna's KeyError
        return optuna.load_study(study_name=self.name, storage=self.storage)

    def said(self, verb: str, text: str, **details: Any) -> Outcome:
        return Outcome(verb, self.name, f"{self.name}: {text}", details)


# pausing and freezing ---------------------------------------------------------------------------


def pause(s: Steered) -> Outcome:
    """Running trials finish; no worker starts another until ``resume``."""
    orders.set_paused(s.engine, s.study_id, True)
    return s.said("pause", "paused (running trials finish; no new trial starts until resume)")


def resume(s: Steered) -> Outcome:
    orders.set_paused(s.engine, s.study_id, False)
    return s.said("resume", "resumed")


def freeze(s: Steered) -> Outcome:
    """SIGSTOP this machine's workers at once; they keep their memory, GPU memory included."""
    return _frozen_or_thawed(s, "freeze", "froze", local_workers.freeze(s.engine, s.study_id))


def thaw(s: Steered) -> Outcome:
    return _frozen_or_thawed(s, "thaw", "thawed", local_workers.thaw(s.engine, s.study_id))


def _frozen_or_thawed(s: Steered, verb: str, past: str, result: local_workers.Outcome) -> Outcome:
    pids = ", ".join(str(w.pid) for w in result.done) or "none"
    text = f"{past} {len(result.done)} local worker(s) (pid {pids})"
    if result.elsewhere:
        hosts = ", ".join(sorted({w.host for w in result.elsewhere}))
        text += (
            f"\n{len(result.elsewhere)} worker(s) on other hosts ({hosts}) left as they are: "
            "run this command there"
        )
    return s.said(
        verb,
        text,
        pids=[w.pid for w in result.done],
        elsewhere=[f"{w.host}:{w.pid}" for w in result.elsewhere],
    )


# sampler and pruner -----------------------------------------------------------------------------


def set_sampler(s: Steered, name: str, kwargs: str | None = None) -> Outcome:
    """Every worker uses this sampler from its next trial; ``kwargs`` is JSON text."""
    return _set_setting(s, "sampler", name, kwargs)


def set_pruner(s: Steered, name: str, kwargs: str | None = None) -> Outcome:
    return _set_setting(s, "pruner", name, kwargs)


def check_setting(kind: str, name: str, kwargs: str | None) -> Any:
    """The checked spec of a sampler or pruner (``kind``) named with JSON kwargs text: what a
    form checks as the user types, and what ``set_sampler``/``set_pruner`` store."""
    make = sampler_spec if kind == "sampler" else pruner_spec
    return make(name, parse_kwargs(kwargs, f"{kind} kwargs"))


def check_objective(text: str, cwd: Path) -> None:
    """The launch's own check of an objective (MODULE:FUNCTION, FILE.py:FUNCTION or a sweep
    file, which must exist): what the new-study form checks as the user types."""
    from tui_hpo.runtime.objectives import parse_spec

    parse_spec(text, cwd=cwd)


def check_directions(text: str) -> None:
    """The launch's check of ``--direction`` (minimize or maximize, comma-separated)."""
    from tui_hpo.runtime.objectives import parse_directions

    parse_directions([text])


def check_hosts(text: str) -> None:
    """The launch's check of ``--hosts``; a form that asks for hosts needs at least one."""
    from tui_hpo.runtime.remote import parse_hosts

    if not parse_hosts(text):
        raise UserError("hosts: give at least one, as host:workers,host:workers")


def _set_setting(s: Steered, kind: str, name: str, kwargs: str | None) -> Outcome:
    spec = check_setting(kind, name, kwargs)  # checked before anything is stored
    orders.set_setting(s.engine, s.study_id, kind, spec)
    return s.said(
        f"set-{kind}",
        f"{kind} {spec.label()} from every worker's next trial",
        name=spec.name,
        kwargs=spec.kwargs,
    )


# one trial ----------------------------------------------------------------------------------------


def prune_trial(s: Steered, number: int) -> Outcome:
    """Running trial ``number`` ends PRUNED at its next report, wherever it runs."""
    trial_orders.order_prune(s.engine, s.study_id, number)
    return s.said("prune-trial", f"trial {number} ends PRUNED at its next report", trial=number)


def fail_trial(s: Steered, number: int) -> Outcome:
    """Running trial ``number`` ends FAIL now; its worker process is killed and replaced."""
    text = trial_orders.order_fail(s.optuna_study(), s.engine, number)
    return s.said("fail-trial", text, trial=number)


def check_params(text: str | None) -> dict[str, Any]:
    """The params of a trial to enqueue, from JSON text: a form's check and ``enqueue``'s."""
    params = parse_kwargs(text, "params")
    if not params:
        raise UserError('params: give at least one, e.g. {"lr": 0.001}')
    return params


def enqueue(s: Steered, params: str) -> Outcome:
    """Queue a trial with these params (JSON text); it runs next, on top of the budget."""
    values = check_params(params)
    queueing.enqueue(s.optuna_study(), s.engine, values)
    return s.said("enqueue", f"queued {json.dumps(values)}", params=values)


# notes and tags -----------------------------------------------------------------------------------


def _trial_id(s: Steered, number: int | None) -> int | None:
    """The id of trial ``number`` (None: the study itself), or one line when there is none."""
    from tui_hpo.control import tags

    return None if number is None else tags.trial_id_of(s.engine, s.study_id, number)


def read_note(s: Steered, number: int | None = None) -> Outcome:
    """The note of the study (``number`` None) or of trial ``number``, shared with
    optuna-dashboard. Its message is the text as it is, with no ``STUDY: `` in front, so that
    ``tui-hpo note S > note.md`` keeps it."""
    from tui_hpo.control import notes

    trial_id = _trial_id(s, number)
    with s.engine.connect() as con:
        found = notes.read_note(con, s.study_id, trial_id)
    return Outcome("note", s.name, found.body, {"trial": number, "version": found.version})


def note(s: Steered, number: int | None, text: str, expected_version: int | None = None) -> Outcome:
    """Save ``text`` as the note of the study (``number`` None) or of trial ``number``, where
    optuna-dashboard keeps notes (it shows it, and its edits show here); empty text clears it.
    An editor passes the version it read (``expected_version``): a note saved by someone else
    since then is not overwritten, as optuna-dashboard's editor refuses it too."""
    from tui_hpo.control import notes

    trial_id = _trial_id(s, number)
    if not text.strip():
        text = ""  # blank lines only: cleared, as it says, not a note of blanks
    whose = "study note" if number is None else f"note of trial {number}"
    try:
        saved = notes.write_note(s.engine, s.study_id, trial_id, text, expected_version)
    except notes.StaleNote as exc:
        raise UserError(
            f"the {whose} was saved elsewhere since it was opened (version {exc.found}, "
            f"read at {exc.expected}): nothing saved; open it again"
        ) from None
    lines = len(text.splitlines())
    said = (
        f"{whose} saved ({lines} line{'' if lines == 1 else 's'}, {len(text)} characters)"
        if text.strip()
        else f"{whose} cleared"
    )
    return s.said("note", said, trial=number, version=saved.version)


def tag(s: Steered, number: int, names: list[str]) -> Outcome:
    """Add tags to trial ``number`` (any state): filter them with ``tag = NAME``."""
    return _retag(s, "tag", number, names)


def untag(s: Steered, number: int, names: list[str]) -> Outcome:
    """Remove tags from trial ``number``."""
    return _retag(s, "untag", number, names)


def _retag(s: Steered, verb: str, number: int, names: list[str]) -> Outcome:
    from tui_hpo.control import tags

    wanted = tags.check_tags(names)  # checked before the storage is opened
    trial_id = tags.trial_id_of(s.engine, s.study_id, number)
    change = {"add": wanted} if verb == "tag" else {"remove": wanted}
    before, after = tags.change_tags(s.engine, trial_id, **change)
    if verb == "tag":
        done = [t for t in wanted if t not in before]
        text = f"tagged {', '.join(done)}" if done else f"already tagged {', '.join(wanted)}"
    else:
        done = [t for t in wanted if t in before]
        text = f"untagged {', '.join(done)}" if done else f"has no tag {', '.join(wanted)}"
    return s.said(
        verb,
        f"trial {number} {text} (tags: {', '.join(after) or 'none'})",
        trial=number,
        tags=after,
    )


# workers ------------------------------------------------------------------------------------------


def stop(s: Steered) -> Outcome:
    """Every worker of the study, on every machine, leaves after its current trial; tasks of
    its Slurm arrays that still wait in the queue are cancelled (they would only start to
    leave)."""
    from tui_hpo.runtime import slurm

    orders.request_stop(s.engine, s.study_id)
    if not slurm.has_slurm_jobs(s.engine, s.study_id):
        return s.said("stop", "workers leave after their current trial")
    try:
        cancelled = slurm.cancel_pending(s.engine, s.study_id)
    except UserError as exc:  # the stop is recorded: workers leave as they start
        return s.said(
            "stop",
            "workers leave after their current trial\n"
            f"pending Slurm tasks not cancelled ({exc.message}): they leave as they start",
            cancelled=[],
        )
    return s.said(
        "stop",
        f"workers leave after their current trial; {len(cancelled)} pending Slurm task(s) "
        "cancelled",
        cancelled=cancelled,
    )


def scale(s: Steered, workers: int, *, relative: bool = False) -> Outcome:
    """Grow or shrink this machine's workers of the study to ``workers`` (or by it, with
    ``relative``). New workers start like the launch's first ones (same objective, GPUs
    round-robin, fewest first); shrinking asks the newest to leave after their trial.

    A study whose workers run under Slurm (it has a Slurm job, and no worker runs on this
    machine outside Slurm) scales its Slurm workers instead (``_scale_slurm``)."""
    from tui_hpo.runtime import slurm
    from tui_hpo.runtime.spawn import WorkerRecipe, spawn_worker

    if workers < 0 and not relative:
        raise UserError("scale takes a number of workers, 0 or more")
    local = [
        w
        for w in registry.live_workers(s.engine, s.study_id)
        if w.is_local and not w.stop_requested and w.slurm_job is None
    ]
    if not local and slurm.has_slurm_jobs(s.engine, s.study_id):
        return _scale_slurm(s, workers, relative=relative)
    before = len(local)
    target = max(0, before + workers) if relative else workers
    if target == before:
        return s.said("scale", f"already {target} local workers", before=before, after=target)
    if target < before:
        leaving = sorted(local, key=lambda w: w.worker_id)[target:]
        registry.request_worker_stop(s.engine, [w.worker_id for w in leaving])
        pids = ", ".join(str(w.pid) for w in leaving)
        return s.said(
            "scale",
            f"{before} -> {target} local workers (pid {pids} leave after their current trial)",
            before=before,
            after=target,
        )
    recorded = orders.launch_recipe(s.engine, s.study_id)
    if recorded is None:
        raise UserError(
            f"study {s.name!r} was not launched by tui-hpo here, so there is no recipe for more "
            "workers: use tui-hpo launch (or tui-hpo worker) to start them"
        )
    recipe = WorkerRecipe.from_dict(recorded, s.name, s.target.url)
    gpus = recipe.gpus_for(target - before, [w.gpu for w in local])
    orders.clear_stop(s.engine, s.study_id)  # a scale-up undoes a study-wide stop
    for gpu in gpus:
        spawn_worker(recipe, gpu)
    where = ", ".join("cpu" if g is None else f"GPU {g}" for g in gpus)
    return s.said(
        "scale",
        f"{before} -> {target} local workers (started on {where})",
        before=before,
        after=target,
    )


def _scale_slurm(s: Steered, workers: int, *, relative: bool) -> Outcome:
    """Slurm workers to ``workers``: more is a new array of the missing tasks, made like the
    study's newest; fewer cancels pending tasks first, then tasks whose worker is still
    starting, then asks the newest running workers to leave after their trial."""
    from tui_hpo.runtime import slurm

    now = slurm.slurm_workers(s.engine, s.study_id)
    before = now.count
    target = max(0, before + workers) if relative else workers
    said = {"before": before, "after": target, "slurm": True}
    if target == before:
        return s.said("scale", f"already {target} Slurm workers", **said)
    if target > before:
        job = slurm.grow(s.engine, s.study_id, s.target, target - before)
        orders.clear_stop(s.engine, s.study_id)  # a scale-up undoes a study-wide stop
        return s.said(
            "scale",
            f"{before} -> {target} Slurm workers (job {job}: {target - before} task(s) queued)",
            job=job,
            **said,
        )
    done = slurm.shrink(s.engine, now, before - target)
    parts = []
    if done.cancelled_pending:
        parts.append(f"cancelled pending {', '.join(done.cancelled_pending)}")
    if done.cancelled_starting:
        parts.append(f"cancelled starting {', '.join(done.cancelled_starting)}")
    if done.asked_to_leave:
        names = ", ".join(w.slurm_job or str(w.pid) for w in done.asked_to_leave)
        parts.append(f"{names} leave after their current trial")
    return s.said(
        "scale",
        f"{before} -> {target} Slurm workers ({'; '.join(parts)})",
        cancelled=done.cancelled_pending + done.cancelled_starting,
        leaving=[w.slurm_job for w in done.asked_to_leave],
        **said,
    )


# a new study ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewStudy:
    """What the app's new-study form asks for."""

    study: str
    objective: str
    directions: str = ""
    sampler: str = "tpe"
    sampler_kwargs: str = ""
    pruner: str = "median"
    pruner_kwargs: str = ""
    n_trials: int | None = 100
    workers: int = 2
    gpus: str = ""
    log_dir: str = ""
    where: str = "local"
    """Where the workers run: ``local`` (this machine, ``workers`` of them on ``gpus``),
    ``hosts`` (through ssh, ``hosts`` as ``--hosts`` takes them) or ``slurm`` (one job array of
    ``workers`` tasks, submitted with ``slurm_args``)."""
    hosts: str = ""
    slurm_args: str = ""

    WHERE = ("local", "hosts", "slurm")

    def launch_args(self) -> list[str]:
        """``tui-hpo launch`` arguments for this form, detached."""
        if self.where not in self.WHERE:
            raise UserError(f"workers run where? {self.where!r} is not one of local, hosts, slurm")
        if self.where == "hosts" and not self.hosts.strip():
            raise UserError("hosts: give at least one, as host:workers,host:workers")
        workers = 0 if self.where == "hosts" else self.workers
        args = [
            self.objective,
            "--study",
            self.study,
            "--workers",
            str(workers),
            "--sampler",
            self.sampler,
            "--pruner",
            self.pruner,
            "--detach",
        ]
        if self.n_trials is not None:
            args += ["--n-trials", str(self.n_trials)]
        if self.where == "slurm":
            args.append("--slurm")
        for flag, value in (
            ("--hosts", self.hosts if self.where == "hosts" else ""),
            ("--slurm-args", self.slurm_args if self.where == "slurm" else ""),
            ("--directions", self.directions),
            ("--gpus", self.gpus if self.where == "local" else ""),
            ("--sampler-kwargs", self.sampler_kwargs),
            ("--pruner-kwargs", self.pruner_kwargs),
            ("--log-dir", self.log_dir),
        ):
            if value:
                args += [flag, value]
        return args


def launch(target: StorageURL, form: NewStudy) -> Outcome:
    """Create the study and start its workers, detached: they outlive whoever asked.

    Runs ``tui-hpo launch --detach`` as a process of its own: the same checks and messages as
    in a shell, the objective (torch, say) is imported there and not into the caller, and
    forking is safe there (the app has threads).
    """
    from tui_hpo.runtime.worker_config import STORAGE_ENV

    done = subprocess.run(
        [sys.executable, "-m", "tui_hpo", "launch", *form.launch_args()],
        capture_output=True,
        text=True,
        env=dict(os.environ, **{STORAGE_ENV: target.url}),
        timeout=300,
    )
    lines = [x for x in (done.stderr + done.stdout).splitlines() if x.strip()]
    if done.returncode != 0:
        errors = [x for x in lines if x.startswith("error:")] or lines[-1:]
        raise UserError(errors[0].removeprefix("error: ") if errors else "launch failed")
    if form.where == "slurm":
        job = re.search(r"\bjob (\d+)", done.stdout)
        text = f"{form.workers} Slurm task(s) queued" + (f" (job {job[1]})" if job else "")
    elif form.where == "hosts":
        text = f"workers started on {form.hosts}"
    else:
        text = f"launched {form.workers} worker(s)"
    return Outcome("launch", form.study, f"{form.study}: {text}", {})


# exporting, copying and deleting studies ----------------------------------------------------------


def export(s: Steered, path: str, *, filter_text: str = "") -> Outcome:
    """Write the trials ``filter_text`` matches (what the app's table shows) to ``path``, as
    CSV or JSON by its extension, in the columns of ``tui-hpo export``. The name and the filter
    are checked before the storage is read; the file is replaced whole or not at all."""
    from tui_hpo.data import export as exporting
    from tui_hpo.data import filters

    fmt = exporting.format_of(path)
    filters.parse(filter_text)  # the syntax; param names against the study in ``filtered``
    table = exporting.read_table(s.engine, s.study_id).filtered(filter_text)
    exporting.write_file(path, lambda out: table.write(out, fmt))
    return Outcome(
        "export",
        s.name,
        f"wrote {len(table)} trials to {path}",
        {"path": path, "format": fmt, "trials": len(table), "filter": filter_text},
    )


def copy_study(
    s: Steered, new_name: str, *, filter_text: str | None = None, to: StorageURL | None = None
) -> Outcome:
    """Copy the study as a new one, ``new_name``, with only the trials ``filter_text`` matches
    (the app's filter language; none: every trial), into this storage or ``to``: how bad
    trials are dropped, since Optuna can't delete one. Trials are renumbered from 0 in order.

    Checked before anything is written, cheapest first: the name, the filter's syntax, the
    source study, the filter against it (it must match a trial), then the destination (it must
    answer and not hold a study of that name)."""
    from tui_hpo.control import study_copies
    from tui_hpo.data import selection
    from tui_hpo.storage.engines import check_reachable, open_storage

    study_copies.check_name(new_name)
    text = (filter_text or "").strip()
    if text:
        selection.check(text)
    elsewhere = to is not None and to.url != s.target.url
    if elsewhere:
        assert to is not None
        check_reachable(to, must_exist=False)  # a dead server is one line before the work
    chosen = None
    if text:
        picked = selection.select(s.engine, s.study_id, text)
        if not picked.trial_ids:
            raise UserError(
                f"filter {text!r} matches none of the {picked.total} trials of {s.name!r}: "
                "nothing copied"
            )
        chosen = picked.trial_ids
    else:
        s.study_id  # noqa: B018 - the one-line "no study named" first
    if elsewhere:
        assert to is not None
        engine = open_storage(to).engine
        where = to.masked
    else:
        engine = s.engine
        where = "this storage"
    try:
        study_copies.check_absent(engine, new_name, where)
        done = study_copies.copy_study(s.engine, s.study_id, engine, new_name, chosen)
    finally:
        if elsewhere:
            engine.dispose()
    into = f" in {to.masked}" if elsewhere and to is not None else ""
    numbers = f", renumbered 0-{done.trials - 1} in their order" if done.trials else ""
    return s.said(
        "copy-study",
        f"copied {done.trials} of {done.source_trials} trials to {new_name!r}{into}{numbers} "
        "(attrs naming a trial number, like tui_hpo.retry_of, keep the old numbers)",
        copy=new_name,
        study_id=done.study_id,
        trials=done.trials,
        source_trials=done.source_trials,
        rows=done.rows,
    )


def delete_study(
    s: Steered, *, force: bool = False, confirm: Callable[[str], bool] | None = None
) -> Outcome:
    """Delete the study for good: Optuna's rows and tui-hpo's own (orders, settings, workers,
    Slurm jobs, trial orders, curves). Refused while workers of it are live, unless ``force``.
    ``confirm`` is asked the question and may say no (nothing deleted), or raise a UserError
    where there is no one to ask."""
    from tui_hpo.control import study_deletion

    live = registry.live_workers(s.engine, s.study_id)
    if live and not force:
        where = ", ".join(sorted({f"{w.host}:{w.pid}" for w in live})[:5])
        raise UserError(
            f"study {s.name!r} has {len(live)} live worker(s) ({where}): stop them first "
            f"(tui-hpo stop {s.name}), or add --force"
        )
    trials = study_deletion.trial_count(s.engine, s.study_id)
    question = f"Delete study {s.name!r} and its {trials} trial(s) for good?"
    if confirm is not None and not confirm(question):
        return s.said("delete-study", "not deleted", deleted=False)
    done = study_deletion.delete_study(s.storage, s.study_id)
    own = sum(done.tui_rows.values())
    left = f"\n{len(live)} live worker(s) left running on a study that is gone" if live else ""
    return s.said(
        "delete-study",
        f"deleted, with its {done.trials} trial(s) and {own} row(s) of tui-hpo's own{left}",
        deleted=True,
        trials=done.trials,
        tui_rows=done.tui_rows,
    )
