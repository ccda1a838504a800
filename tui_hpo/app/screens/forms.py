"""Modal forms: confirm, one-line prompts, sampler/pruner switch, enqueue, new study.

Every field sits on one row with its label beside it, so a form fits an 80x24 terminal with
its buttons in view; a line at the bottom says what the field in focus means, with an example.

Values are checked as the user types and again on submit, with the functions the CLI uses
(``check_objective``, ``check_directions``, ``check_hosts``, ``check_setting`` and
``check_params`` of ``steering``, ``parse_gpus``, the sbatch argument parser): the same input
gets the same words in a shell and here, and a bad value never leaves the form. Checks run in a
thread worker that posts ``FormChecked``: building a sampler, counting GPUs (NVML) or looking
for an objective's file is work the UI thread must not wait on. What only the storage or the
objective's import can tell is checked by the command itself and comes back as a notification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from tui_hpo.control.specs import PRUNER_NAMES, SAMPLER_NAMES, Spec
from tui_hpo.errors import UserError, one_line
from tui_hpo.machine.gpus import gpu_count, parse_gpus
from tui_hpo.machine.slurm import parse_args as parse_slurm_args
from tui_hpo.steering import (
    NewStudy,
    check_directions,
    check_hosts,
    check_objective,
    check_params,
    check_setting,
)

FORM_CSS = """
_Form { align: center middle; }
.form {
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: round $accent; background: $surface; padding: 0 1;
}
.form Label.title { text-style: bold; width: 100%; }
.form .row { height: 1; width: 100%; }
.form .row Label { width: 16; color: $text-muted; }
.form .row:focus-within Label { color: $accent; text-style: bold; }
.form .row.-bad Label { color: $error; text-style: bold; }
.form .row Input, .form .row Select { width: 1fr; }
.form .row Input { background: $boost; }
.form .row Input:focus { background: $panel; }
.form .error { color: $error; height: auto; }
.form .help { color: $text-muted; height: auto; }
.form .buttons { height: 1; margin-top: 1; align-horizontal: right; }
.form Button { min-width: 10; margin-left: 1; }
"""

Values = Mapping[str, str]
"""A form's field values by field id, read on the UI thread and handed to the checks."""


@dataclass(frozen=True)
class Field:
    """One row of a form: its label, the line of help shown while it has focus, and either a
    text input (placeholder, value) or a choice among ``choices`` (label, value)."""

    key: str
    label: str
    help: str
    value: str = ""
    placeholder: str = ""
    choices: tuple[tuple[str, str], ...] = ()


@dataclass
class FormChecked(Message, bubble=False):
    """What a form's checks found for one snapshot of its values (``generation``, so that a
    slow check of older values is ignored); ``submit`` when the user asked to submit them."""

    values: dict[str, str]
    errors: dict[str, str]
    generation: int
    submit: bool


class _Form(ModalScreen[object]):
    """Rows of labelled fields, an error line, a help line and the buttons.

    A subclass says its ``fields``, checks a snapshot of the values in ``errors`` (which may do
    I/O: it runs in a thread) and turns valid values into what ``dismiss`` hands back in
    ``result``. An error shows once its field was edited, or everywhere after a submit.
    """

    DEFAULT_CSS = FORM_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    TITLE_TEXT = ""
    OK = "OK"
    BUTTONS_HELP = "Enter or the button submits; Escape cancels"

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        """Counts the snapshots of the values sent to be checked; the newest one counts."""
        self.checked = 0
        """The generation whose check is shown (tests wait for it to reach ``generation``)."""
        self._errors: dict[str, str] = {}
        self._touched: set[str] = set()
        self._submitted = False
        self._ready = False
        """Set once mounted: fields post Changed while they mount, before every row exists."""

    # what a form is --------------------------------------------------------------------------

    def fields(self) -> list[Field]:
        return []

    def title_text(self) -> str:
        return self.TITLE_TEXT

    def errors(self, values: Values) -> dict[str, str]:
        """Field id -> the CLI's message for its value; runs in a thread worker."""
        return {}

    def result(self, values: Values) -> object:
        return dict(values)

    def shown(self, key: str) -> bool:
        """Whether the field is in use now (the new-study form hides some)."""
        return True

    # layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            if self.title_text():
                yield Label(self.title_text(), classes="title", markup=False)
            for field in self.fields():
                with Horizontal(classes="row", id=f"row-{field.key}"):
                    yield Label(field.label, markup=False)
                    yield self._widget(field)
            # plain text: a message may quote JSON ([1]) and a hint the filter syntax (values[i])
            yield Static("", classes="error", markup=False)
            yield Static("", classes="help", markup=False)
            yield self.buttons(self.OK)

    def _widget(self, field: Field) -> Widget:
        if field.choices:
            return Select(
                field.choices,
                value=field.value or field.choices[0][1],
                allow_blank=False,
                compact=True,
                id=field.key,
            )
        return Input(field.value, placeholder=field.placeholder, compact=True, id=field.key)

    def buttons(self, ok: str = "OK") -> Horizontal:
        return Horizontal(
            Button(ok, variant="primary", compact=True, id="ok"),
            Button("Cancel", compact=True, id="cancel"),
            classes="buttons",
        )

    def on_mount(self) -> None:
        self._sync_shown()
        first = next((f for f in self.fields() if self.shown(f.key)), None)
        if first is not None:
            self.query_one(f"#{first.key}").focus()
        else:
            self.query_one("#ok", Button).focus()
        self._ready = True
        self._recheck()

    def _sync_shown(self) -> None:
        for field in self.fields():
            shown = self.shown(field.key)
            self.query_one(f"#row-{field.key}").display = shown
            self.query_one(f"#{field.key}").display = shown

    # help line ---------------------------------------------------------------------------------

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if self._ready:
            self._show_messages()

    def _focused_key(self) -> str | None:
        widget = self.focused
        while widget is not None and widget is not self:
            if widget.id in self._keys():
                return widget.id
            parent = widget.parent
            widget = parent if isinstance(parent, Widget) else None
        return None

    def _keys(self) -> set[str]:
        return {f.key for f in self.fields()}

    def _show_messages(self) -> None:
        """The help of the field in focus; the error of that field if it has one, else the
        first error shown anywhere (in field order)."""
        key = self._focused_key()
        helps = {f.key: f.help for f in self.fields()}
        help_text = helps.get(key or "", "") if key else self.BUTTONS_HELP
        self.query_one(".help", Static).update(help_text)
        shown = {
            k: v
            for k, v in self._errors.items()
            if self._submitted or k in self._touched or k not in self._keys()
        }
        for field in self.fields():
            row = self.query_one(f"#row-{field.key}")
            row.set_class(field.key in shown and self.shown(field.key), "-bad")
        order = [key] if key in shown else []
        order += [f.key for f in self.fields() if f.key in shown and self.shown(f.key)]
        order += [k for k in shown if k not in self._keys()]
        self.show_error(shown[order[0]] if order else "")

    def help_text(self) -> str:
        return str(self.query_one(".help", Static).render())

    def show_error(self, text: str) -> None:
        self.query_one(".error", Static).update(text)

    # checking ----------------------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for field in self.fields():
            widget = self.query_one(f"#{field.key}")
            if isinstance(widget, Select):
                found[field.key] = str(widget.value)
            elif isinstance(widget, Input):
                found[field.key] = widget.value.strip()
        return found

    def _recheck(self, submit: bool = False) -> None:
        self.generation += 1
        self._check(self.values(), self.generation, submit)

    @work(thread=True, group="form-check", exit_on_error=False)
    def _check(self, values: dict[str, str], generation: int, submit: bool) -> None:
        try:
            errors = self.errors(values)
        except Exception as exc:  # a bug in a check: say it, never submit on it
            errors = {"": one_line(exc, limit=200, typed=True)}
        self.post_message(FormChecked(values, errors, generation, submit))

    def on_form_checked(self, message: FormChecked) -> None:
        if message.generation != self.generation:
            return  # the values changed since: a newer check is on its way
        self.checked = message.generation
        self._errors = message.errors
        if message.submit:
            self._submitted = True
            if not message.errors:
                self.dismiss(self.result(message.values))
                return
        self._show_messages()

    def on_input_changed(self, event: Input.Changed) -> None:
        if not self._ready:
            return
        if event.input.id:
            self._touched.add(event.input.id)
        self._recheck()

    def on_select_changed(self, event: Select.Changed) -> None:
        if not self._ready:
            return
        if event.select.id:
            self._touched.add(event.select.id)
        self._sync_shown()
        self._recheck()

    # submitting --------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.submit()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.submit()

    def submit(self) -> None:
        """Check the values as they are now; the form closes when they pass."""
        self._recheck(submit=True)


def _first_error(checks: Mapping[str, Callable[[], object]]) -> dict[str, str]:
    """Run each field's check; a ``UserError`` is that field's message."""
    errors: dict[str, str] = {}
    for key, check in checks.items():
        try:
            check()
        except UserError as exc:
            errors[key] = exc.message
    return errors


class ConfirmScreen(_Form):
    """Yes or no; Enter or y confirms, Escape or n declines."""

    BINDINGS = [
        Binding("escape,n", "cancel", "No"),
        Binding("y", "yes", "Yes"),
    ]
    OK = "Yes"
    BUTTONS_HELP = "y or Enter: yes · n or Escape: no"

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def title_text(self) -> str:
        return self.question

    def action_yes(self) -> None:
        self.dismiss(True)

    def result(self, values: Values) -> object:
        return True


class PromptScreen(_Form):
    """One line of text (a filter, a trial number); ``check``, when given, is the caller's
    own check of it (pure: it runs in the form's check thread), and ``hint`` its help line."""

    def __init__(
        self,
        title: str,
        value: str = "",
        placeholder: str = "",
        hint: str = "",
        *,
        label: str = "",
        check: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__()
        self.title_label = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint
        self.label = label
        self.check = check

    def title_text(self) -> str:
        return self.title_label if self.label else ""

    def fields(self) -> list[Field]:
        help_text = self.hint or f"{self.placeholder}; Enter submits, Escape cancels".lstrip("; ")
        label = self.label or self.title_label
        return [Field("value", label, help_text, self.value, self.placeholder)]

    def errors(self, values: Values) -> dict[str, str]:
        check = self.check
        if check is None:
            return {}
        return _first_error({"value": lambda: check(values["value"])})

    def result(self, values: Values) -> object:
        return values["value"]


class SettingForm(_Form):
    """Pick a sampler or pruner and its kwargs; checked as ``tui-hpo set-sampler`` checks it,
    before anything is sent."""

    OK = "Switch"
    HELP = {
        "sampler": "How the next trial's params are chosen; tpe suits most searches. "
        "e.g. tpe, random, cmaes (several objectives: nsga2)",
        "pruner": "How unpromising trials are stopped at their reports; none never prunes. "
        "e.g. median, hyperband",
    }
    KWARGS_EXAMPLE = {"sampler": '{"n_startup_trials": 5}', "pruner": '{"n_warmup_steps": 5}'}

    def __init__(self, kind: str, current: Spec) -> None:
        super().__init__()
        self.kind = kind
        self.current = current

    def title_text(self) -> str:
        return f"Switch {self.kind} (now {self.current.label()})"

    def fields(self) -> list[Field]:
        import json

        names = SAMPLER_NAMES if self.kind == "sampler" else PRUNER_NAMES
        example = self.KWARGS_EXAMPLE[self.kind]
        return [
            Field(
                "name",
                self.kind,
                self.HELP[self.kind],
                self.current.name if self.current.name in names else names[0],
                choices=tuple((n, n) for n in names),
            ),
            Field(
                "kwargs",
                "kwargs (JSON)",
                f"The {self.kind}'s constructor arguments, a JSON object; empty: its defaults. "
                f"e.g. {example}",
                json.dumps(self.current.kwargs) if self.current.kwargs else "",
                f"e.g. {example}",
            ),
        ]

    def errors(self, values: Values) -> dict[str, str]:
        kind = self.kind
        return _first_error(
            {"kwargs": lambda: check_setting(kind, values["name"], values["kwargs"])}
        )

    def result(self, values: Values) -> object:
        return (values["name"], values["kwargs"])


class EnqueueForm(_Form):
    """Params of a trial to run next, as JSON, prefilled from the selected trial; checked as
    ``tui-hpo enqueue`` checks them (the study's distributions: by the command itself)."""

    TITLE_TEXT = "Enqueue a trial (runs next)"
    OK = "Enqueue"

    def __init__(self, params_json: str) -> None:
        super().__init__()
        self.params_json = params_json

    def fields(self) -> list[Field]:
        return [
            Field(
                "params",
                "params (JSON)",
                "The trial's params as a JSON object, each within the study's "
                'distributions; it runs next. e.g. {"lr": 0.001, "layers": 3}',
                self.params_json,
                '{"lr": 0.001}',
            )
        ]

    def errors(self, values: Values) -> dict[str, str]:
        return _first_error({"params": lambda: check_params(values["params"])})

    def result(self, values: Values) -> object:
        return values["params"]


@dataclass(frozen=True)
class CopyRequest:
    """What the copy form hands back: the new study's name and the filter (empty: all)."""

    name: str
    filter_text: str


class CopyStudyForm(_Form):
    """A copy of a study under a new name, with only the trials a filter matches: how bad
    trials are dropped, since Optuna can't delete one. The name and the filter's syntax are
    checked here as ``tui-hpo copy-study`` checks them; whether the filter matches a trial and
    the name is free, only the storage can say (the verb's notification)."""

    TITLE_TEXT = "Copy a study"
    OK = "Copy"

    def __init__(self, study: str) -> None:
        super().__init__()
        self.study = study

    def title_text(self) -> str:
        return f"Copy study {self.study}"

    def fields(self) -> list[Field]:
        return [
            Field(
                "copy-name",
                "new name",
                "The copy's name; no study may have it yet. Trials are renumbered from 0.",
                f"{self.study}-copy",
                f"{self.study}-copy",
            ),
            Field(
                "copy-filter",
                "filter",
                "Only the trials this matches (the table's filter language); empty: all. "
                "e.g. state == COMPLETE and tag != bad",
                "",
                "state == COMPLETE and tag != bad",
            ),
        ]

    def errors(self, values: Values) -> dict[str, str]:
        from tui_hpo.control.study_copies import check_name
        from tui_hpo.data.filters import parse

        return _first_error(
            {
                "copy-name": lambda: check_name(values["copy-name"]),
                "copy-filter": lambda: parse(values["copy-filter"]),
            }
        )

    def result(self, values: Values) -> object:
        return CopyRequest(values["copy-name"], values["copy-filter"])


class DeleteStudyScreen(_Form):
    """The yes to deleting a study for good: its name, typed. Enter alone, or a key pressed
    by habit, can't delete what has no undo; Escape cancels."""

    OK = "Delete"
    BUTTONS_HELP = "Type the study's name, then Enter or Delete; Escape cancels"

    def __init__(self, study: str, trials: int) -> None:
        super().__init__()
        self.study = study
        self.trials = trials

    def title_text(self) -> str:
        return f"Delete study {self.study!r} and its {self.trials} trial(s) for good?"

    def fields(self) -> list[Field]:
        return [
            Field(
                "confirm-name",
                "study name",
                "Its trials, notes and tui-hpo's rows go with it; there is no undo. Escape cancels",
                "",
                self.study,
            )
        ]

    def errors(self, values: Values) -> dict[str, str]:
        if values["confirm-name"] == self.study:
            return {}
        return {"confirm-name": f"type {self.study} exactly to delete it (Escape cancels)"}

    def result(self, values: Values) -> object:
        return True


# the new-study form's own checks -----------------------------------------------------------------
# ``tui-hpo launch`` checks an objective's form, directions and --hosts in tui_hpo.runtime, which
# the app may not import (pyproject's import contracts); these say exactly what those say (the
# app's form tests compare them), and the launch itself checks again.


def whole_number(key: str, text: str, *, allow_empty: bool = False) -> int | None:
    """A count of at least 1 (trials, workers); empty means None where that is allowed."""
    if not text and allow_empty:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{key.replace('_', ' ')}: {text!r} is not a whole number") from None
    if value < 1:
        raise UserError(f"{key.replace('_', ' ')} must be at least 1")
    return value


class NewStudyForm(_Form):
    """Objective, directions, sampler, pruner, trials, and where the workers run: this machine
    (how many, on which GPUs), other machines through ssh (``--hosts``), or a Slurm job array
    (how many tasks, sbatch's arguments). Launches them."""

    TITLE_TEXT = "New study: launches its workers"
    OK = "Launch"
    WHERE = (
        ("this machine", "local"),
        ("other machines, through ssh", "hosts"),
        ("a Slurm job array", "slurm"),
    )
    SHOWN = {
        "local": ("workers", "gpus"),
        "hosts": ("hosts",),
        "slurm": ("workers", "slurm_args"),
    }
    FIELDS = (
        Field(
            "study",
            "study",
            "The study's name in the storage; the app, status and every command use it. "
            "e.g. resnet-lr",
            placeholder="a name, e.g. resnet-lr",
        ),
        Field(
            "objective",
            "objective",
            "What each trial runs: module:function, file.py:function or a W&B sweep file. "
            "e.g. train.py:objective, sweep.yaml",
            "objectives.digits:objective",
            "module:function or file.py:function",
        ),
        Field(
            "directions",
            "directions",
            "minimize or maximize, one per objective value, comma-separated; empty: the "
            "objective's own, else minimize. e.g. minimize,maximize",
            placeholder="empty: from the objective",
        ),
        Field(
            "sampler",
            "sampler",
            SettingForm.HELP["sampler"],
            "tpe",
            choices=tuple((n, n) for n in SAMPLER_NAMES),
        ),
        Field(
            "sampler_kwargs",
            "sampler kwargs",
            "The sampler's constructor arguments, a JSON object; empty: its defaults. "
            'e.g. {"n_startup_trials": 5}',
            placeholder="JSON, empty: defaults",
        ),
        Field(
            "pruner",
            "pruner",
            SettingForm.HELP["pruner"],
            "median",
            choices=tuple((n, n) for n in PRUNER_NAMES),
        ),
        Field(
            "pruner_kwargs",
            "pruner kwargs",
            "The pruner's constructor arguments, a JSON object; empty: its defaults. "
            'e.g. {"n_warmup_steps": 5}',
            placeholder="JSON, empty: defaults",
        ),
        Field(
            "n_trials",
            "trials",
            "Trials to run in all, over every worker; empty: no budget, until stopped. e.g. 100",
            "100",
            "empty: until stopped",
        ),
        Field(
            "where",
            "workers run on",
            "Where the workers run: this machine, other machines through ssh (tui-hpo "
            "installed there), or a Slurm job array.",
            "local",
            choices=WHERE,
        ),
        Field(
            "workers",
            "workers",
            "Worker processes, one trial at a time each (Slurm: array tasks, one GPU each). e.g. 2",
            "2",
        ),
        Field(
            "gpus",
            "GPUs",
            "GPUs the workers take round-robin, as nvidia-smi numbers them: all, none or "
            "indexes. e.g. 0,1",
            placeholder="empty: all, when there are any",
        ),
        Field(
            "hosts",
            "hosts",
            "Machines reached through ssh, each with its number of workers. e.g. gpu1:4,gpu2:4",
            placeholder="host:workers,host:workers",
        ),
        Field(
            "slurm_args",
            "sbatch args",
            "sbatch's arguments for the job array; --gres=gpu:1 unless they ask for GPUs. "
            "e.g. -p gpu --time=04:00:00",
            placeholder="empty: --gres=gpu:1",
        ),
    )

    def __init__(self) -> None:
        super().__init__()
        self.cwd = Path.cwd()
        """Where a relative objective file is looked for: where the launch runs."""

    def fields(self) -> list[Field]:
        return list(self.FIELDS)

    def _where(self) -> str:
        try:
            return str(self.query_one("#where", Select).value)
        except Exception:  # not composed yet
            return "local"

    def shown(self, key: str) -> bool:
        optional = {k for keys in self.SHOWN.values() for k in keys}
        return key not in optional or key in self.SHOWN[self._where()]

    def errors(self, values: Values) -> dict[str, str]:
        where = values["where"]
        checks: dict[str, Callable[[], object]] = {
            "study": lambda: _named(values["study"]),
            "objective": lambda: check_objective(values["objective"], self.cwd),
            "directions": lambda: check_directions(values["directions"]),
            "sampler_kwargs": lambda: check_setting(
                "sampler", values["sampler"], values["sampler_kwargs"]
            ),
            "pruner_kwargs": lambda: check_setting(
                "pruner", values["pruner"], values["pruner_kwargs"]
            ),
            "n_trials": lambda: whole_number("n_trials", values["n_trials"], allow_empty=True),
        }
        if where in ("local", "slurm"):
            checks["workers"] = lambda: whole_number("workers", values["workers"])
        if where == "local" and values["gpus"]:
            checks["gpus"] = lambda: parse_gpus(values["gpus"], gpu_count())
        if where == "hosts":
            checks["hosts"] = lambda: check_hosts(values["hosts"])
        if where == "slurm":
            checks["slurm_args"] = lambda: parse_slurm_args(values["slurm_args"])
        return _first_error(checks)

    def result(self, values: Values) -> object:
        where = values["where"]
        n_trials = whole_number("n_trials", values["n_trials"], allow_empty=True)
        return NewStudy(
            study=values["study"],
            objective=values["objective"],
            directions=values["directions"],
            sampler=values["sampler"],
            sampler_kwargs=values["sampler_kwargs"],
            pruner=values["pruner"],
            pruner_kwargs=values["pruner_kwargs"],
            n_trials=n_trials,
            workers=(whole_number("workers", values["workers"]) or 0) if where != "hosts" else 0,
            gpus=values["gpus"] if where == "local" else "",
            where=where,
            hosts=values["hosts"] if where == "hosts" else "",
            slurm_args=values["slurm_args"] if where == "slurm" else "",
        )


def _named(study: str) -> None:
    if not study:
        raise UserError("give the study a name")
