"""The one exception type that reaches the user as a single line.

Anything the user can get wrong (a URL, a name, a JSON string, a GPU index) is raised as
``UserError``; the CLI prints ``error: <message>`` and exits with ``exit_code``, the app shows
a notification. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

USAGE = 2
"""Exit code for input the user can fix (click uses 2 for usage errors too)."""

FAILURE = 1
"""Exit code for a run that started but did not end as asked (a crashed worker, say)."""


class UserError(Exception):
    """A problem with what the user asked for, worded for them."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


def one_line(exc: BaseException, *, limit: int = 300, typed: bool = False) -> str:
    """An exception's text as one line for a message, a log line or a notification.

    SQLAlchemy wraps the driver's error (``.orig``), whose own text is the useful part; a
    multi-line text (a constructor's complaint, psycopg's "is the server running?") is joined,
    not cut, and the whole is capped at ``limit`` so one bad input can't flood a screen.
    ``typed`` puts the exception's class first (``ValueError: ...``) where the text alone would
    not say what went wrong.
    """
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    name = type(exc).__name__
    if typed:
        text = f"{name}: {text}" if text else name
    return (text or name)[:limit]
