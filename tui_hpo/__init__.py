"""tui-hpo: run, watch and steer Optuna hyperparameter searches from the terminal.

The core (storage, control, budget, registry, worker, launcher, reads) imports no Textual; the
full-screen app lives in ``tui_hpo.app`` and is imported only when it opens.
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``tui_hpo.attach`` without importing Optuna for every ``import tui_hpo``."""
    if name == "attach":
        from tui_hpo.runtime.attach import attach

        return attach
    raise AttributeError(f"module 'tui_hpo' has no attribute {name!r}")
