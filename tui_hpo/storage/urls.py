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


STORAGE_FILE_ENV = "TUI_HPO_STORAGE_FILE"
"""A file holding the storage URL (``tui-hpo worker --storage-file``): how workers under a
scheduler get it without the URL entering the scheduler's records."""


def storage_file_for(url: str, home: Path | None = None) -> Path:
    """Where the URL is kept for workers under Slurm: ``~/.tui-hpo/storage/<hash>.url``, under
    the home folder a cluster shares with its nodes; one file per URL (its hash names it, so
    submitting again rewrites the same file)."""
    import hashlib

    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return (home or Path.home()) / ".tui-hpo" / "storage" / f"{digest}.url"


def write_storage_file(url: str, home: Path | None = None) -> Path:
    """Write the URL to its file, readable by this user only (folder 0700, file 0600), and
    return the path. Written beside and renamed over, so a worker never reads half a URL."""
    path = storage_file_for(url, home)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        os.chmod(path.parent.parent, 0o700)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(url + "\n")
        os.chmod(part, 0o600)
        os.replace(part, path)
    except OSError as exc:
        raise UserError(f"can't write the storage file {path}: {exc.strerror}") from None
    return path


def read_storage_file(path: str | Path) -> str:
    """The URL in a storage file (its first line), or one line saying why there is none."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise UserError(f"--storage-file {path}: {exc.strerror or exc}") from None
    url = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not url:
        raise UserError(f"--storage-file {path}: the file is empty (it should hold the URL)")
    return url
