"""The app as its screens and widgets see it, typed once.

Textual types ``DOMNode.app`` as a plain ``App``; ``tui_app(self)`` is the one place that says
it is a ``TuiHpoApp`` (with the session, the storage URL and the steering helper), instead of a
``type: ignore`` at every use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from tui_hpo.app.app import TuiHpoApp


def tui_app(node: DOMNode) -> TuiHpoApp:
    return cast("TuiHpoApp", node.app)
