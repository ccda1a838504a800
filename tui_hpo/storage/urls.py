"""Which storage to use: the one URL that reaches every part of tui-hpo, checked and masked.

``--storage``, else ``TUI_HPO_STORAGE``, else ``OPTUNA_STORAGE``, else the embedded default
``sqlite:///tui-hpo.db`` in the current folder. A URL may hold a password: it is shown only
masked (``StorageURL.masked``), and travels to workers in their environment, never in argv.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tui_hpo.errors import UserError

DEFAULT_URL = "sqlite:///tui-hpo.db"
ENV_VARS = ("TUI_HPO_STORAGE", "OPTUNA_STORAGE")


def resolve_url(flag: str | None) -> str:
    """The storage URL from the flag, the environment or the default, in that order."""
    if flag:
        return flag
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return DEFAULT_URL


def mask_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # still hide what looks like user:password@ in a URL we can't parse
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


@dataclass(frozen=True)
class StorageURL:
    """A checked storage URL: what kind of database it names, and where."""

    url: str
    backend: str
    sqlite_path: Path | None

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"


def parse_url(url: str) -> StorageURL:
    """Check the URL's form (not yet whether the database answers)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UserError(
            f"malformed storage URL {mask_url(url)!r}: expected e.g. sqlite:///tui-hpo.db "
            "or postgresql+psycopg://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise UserError(
            f"unsupported storage URL {mask_url(url)!r}: use sqlite:///PATH or "
            "postgresql+psycopg://user@host/db"
        )
    path: Path | None = None
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UserError(
                "an in-memory SQLite storage can't be shared by worker processes: "
                "give a file, e.g. sqlite:///tui-hpo.db"
            )
        path = Path(parsed.database).expanduser().absolute()
    return StorageURL(url=url, backend=backend, sqlite_path=path)
