"""Modal forms: confirm, one-line prompts, sampler/pruner switch, enqueue, new study.

Each form checks what it can without I/O (names, JSON, numbers) and shows the error in place,
so a bad value never leaves the form; what needs the storage is checked by the command itself
and comes back as a notification.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from tui_hpo.control.specs import PRUNER_NAMES, SAMPLER_NAMES, Spec
from tui_hpo.errors import UserError
from tui_hpo.steering import NewStudy, check_params, check_setting

FORM_CSS = """
ModalScreen { align: center middle; }
.form {
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: round $accent; background: $surface; padding: 0 1;
}
.form Label.title { text-style: bold; width: 100%; }
.form .error { color: $error; height: auto; }
.form Input, .form Select { width: 100%; }
.form .buttons { height: 3; align-horizontal: right; }
.form Button { min-width: 10; margin-left: 1; }
"""


class _Form(ModalScreen[object]):
    DEFAULT_CSS = FORM_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    def buttons(self, ok: str = "OK") -> Horizontal:
        return Horizontal(
            Button(ok, variant="primary", id="ok"), Button("Cancel", id="cancel"), classes="buttons"
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.submit()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.submit()

    def submit(self) -> None:
        raise NotImplementedError

    def show_error(self, text: str) -> None:
        self.query_one(".error", Static).update(text)


class ConfirmScreen(_Form):
    """Yes or no; Enter or y confirms, Escape or n declines."""

    BINDINGS = [
        Binding("escape,n", "cancel", "No"),
        Binding("y", "yes", "Yes"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Label(self.question, classes="title")
            yield Static("", classes="error")
            yield self.buttons("Yes")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_yes(self) -> None:
        self.dismiss(True)

    def submit(self) -> None:
        self.dismiss(True)


class PromptScreen(_Form):
    """One line of text (a filter, a trial number)."""

    def __init__(self, title: str, value: str = "", placeholder: str = "", hint: str = ""):
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Label(self.title_text, classes="title")
            yield Input(self.value, placeholder=self.placeholder, id="value")
            if self.hint:
                yield Static(self.hint)
            yield Static("", classes="error")
            yield self.buttons()

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def submit(self) -> None:
        self.dismiss(self.query_one("#value", Input).value)


class SettingForm(_Form):
    """Pick a sampler or pruner and its kwargs; validated here before anything is sent."""

    def __init__(self, kind: str, current: Spec) -> None:
        super().__init__()
        self.kind = kind
        self.current = current

    def compose(self) -> ComposeResult:
        import json

        names = SAMPLER_NAMES if self.kind == "sampler" else PRUNER_NAMES
        with Vertical(classes="form"):
            yield Label(f"Switch {self.kind} (now {self.current.label()})", classes="title")
            yield Select(
                [(n, n) for n in names],
                value=self.current.name if self.current.name in names else names[0],
                allow_blank=False,
                id="name",
            )
            yield Input(
                json.dumps(self.current.kwargs) if self.current.kwargs else "",
                placeholder='kwargs as JSON, e.g. {"n_startup_trials": 5}',
                id="kwargs",
            )
            yield Static("", classes="error")
            yield self.buttons("Switch")

    def on_mount(self) -> None:
        self.query_one("#name", Select).focus()

    def submit(self) -> None:
        name = str(self.query_one("#name", Select).value)
        text = self.query_one("#kwargs", Input).value
        try:
            check_setting(self.kind, name, text)
        except UserError as exc:
            self.show_error(exc.message)
            return
        self.dismiss((name, text))


class EnqueueForm(_Form):
    """Params of a trial to run next, as JSON, prefilled from the selected trial."""

    def __init__(self, params_json: str) -> None:
        super().__init__()
        self.params_json = params_json

    def compose(self) -> ComposeResult:
        with Vertical(classes="form"):
            yield Label("Enqueue a trial (runs next)", classes="title")
            yield Input(self.params_json, placeholder='{"lr": 0.001}', id="params")
            yield Static("", classes="error")
            yield self.buttons("Enqueue")

    def on_mount(self) -> None:
        self.query_one("#params", Input).focus()

    def submit(self) -> None:
        text = self.query_one("#params", Input).value
        try:
            check_params(text)
        except UserError as exc:
            self.show_error(exc.message)
            return
        self.dismiss(text)


class NewStudyForm(_Form):
    """Objective, directions, sampler, pruner, trials, and where the workers run: this machine
    (how many, on which GPUs), other machines through ssh (``--hosts``), or a Slurm job array
    (how many tasks, sbatch's arguments). Launches them."""

    WHERE = (
        ("workers run on this machine", "local"),
        ("workers run on other machines, through ssh", "hosts"),
        ("workers run as a Slurm job array", "slurm"),
    )
    SHOWN = {
        "local": ("workers", "gpus"),
        "hosts": ("hosts",),
        "slurm": ("workers", "slurm_args"),
    }

    FIELDS = (
        ("study", "study name", ""),
        (
            "objective",
            "objective: module:function or file.py:function",
            "objectives.digits:objective",
        ),
        ("directions", "directions (empty: from the objective)", ""),
        ("n_trials", "trials", "100"),
        ("workers", "workers (Slurm: array tasks, one GPU each)", "2"),
        ("gpus", "GPUs: all, none or 0,1 (empty: all when any)", ""),
        ("hosts", "hosts: gpu1:4,gpu2:4 (workers per host)", ""),
        ("slurm_args", 'sbatch arguments: -p gpu --time=04:00:00 (default "--gres=gpu:1")', ""),
        ("sampler_kwargs", "sampler kwargs (JSON)", ""),
        ("pruner_kwargs", "pruner kwargs (JSON)", ""),
    )

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="form"):
            yield Label("New study: launches its workers", classes="title")
            for key, label, value in self.FIELDS[:3]:
                yield Input(value, placeholder=label, id=key, tooltip=label)
            yield Select(
                [(n, n) for n in SAMPLER_NAMES], value="tpe", allow_blank=False, id="sampler"
            )
            yield Select(
                [(n, n) for n in PRUNER_NAMES], value="median", allow_blank=False, id="pruner"
            )
            key, label, value = self.FIELDS[3]
            yield Input(value, placeholder=label, id=key, tooltip=label)
            yield Select(
                [(label, key) for label, key in self.WHERE],
                value="local",
                allow_blank=False,
                id="where",
            )
            for key, label, value in self.FIELDS[4:]:
                yield Input(value, placeholder=label, id=key, tooltip=label)
            yield Static("", classes="error")
            yield self.buttons("Launch")

    def on_mount(self) -> None:
        self._show_where("local")
        self.query_one("#study", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "where":
            self._show_where(str(event.value))

    def _show_where(self, where: str) -> None:
        """Only the fields that the chosen place of the workers uses."""
        for key in ("workers", "gpus", "hosts", "slurm_args"):
            self.query_one(f"#{key}", Input).display = key in self.SHOWN[where]

    def _value(self, key: str) -> str:
        return self.query_one(f"#{key}", Input).value.strip()

    def submit(self) -> None:
        try:
            study = self._value("study")
            if not study:
                raise UserError("give the study a name")
            if ":" not in self._value("objective"):
                raise UserError("objective: expected module:function or file.py:function")
            n_trials = self._int("n_trials", allow_empty=True)
            where = str(self.query_one("#where", Select).value)
            workers = (self._int("workers") or 0) if where != "hosts" else 0
            if where == "hosts" and not self._value("hosts"):
                raise UserError("hosts: give at least one, as host:workers,host:workers")
            sampler = str(self.query_one("#sampler", Select).value)
            pruner = str(self.query_one("#pruner", Select).value)
            check_setting("sampler", sampler, self._value("sampler_kwargs"))
            check_setting("pruner", pruner, self._value("pruner_kwargs"))
        except UserError as exc:
            self.show_error(exc.message)
            return
        self.dismiss(
            NewStudy(
                study=study,
                objective=self._value("objective"),
                directions=self._value("directions"),
                sampler=sampler,
                sampler_kwargs=self._value("sampler_kwargs"),
                pruner=pruner,
                pruner_kwargs=self._value("pruner_kwargs"),
                n_trials=n_trials,
                workers=workers,
                gpus=self._value("gpus") if where == "local" else "",
                where=where,
                hosts=self._value("hosts") if where == "hosts" else "",
                slurm_args=self._value("slurm_args") if where == "slurm" else "",
            )
        )

    def _int(self, key: str, allow_empty: bool = False) -> int | None:
        text = self._value(key)
        if not text and allow_empty:
            return None
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{key.replace('_', ' ')}: {text!r} is not a whole number") from None
        if value < 1:
            raise UserError(f"{key.replace('_', ' ')} must be at least 1")
        return value
