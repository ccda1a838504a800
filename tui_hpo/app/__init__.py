"""The full-screen Textual app. Talks to the core only through ``tui_hpo.session.Session``
from thread workers; widgets render the immutable snapshots those workers post."""

from __future__ import annotations
