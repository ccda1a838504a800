"""The ``tui-hpo`` command: a click group and a subcommand per job (``main``)."""

from __future__ import annotations

from tui_hpo.cli.main import cli, main

__all__ = ["cli", "main"]
