"""tui-hpo: run, watch and steer Optuna hyperparameter searches from the terminal.

The core (storage, control, budget, registry, worker, launcher, reads) imports no Textual; the
full-screen app lives in ``tui_hpo.app`` and is imported only when it opens.
"""

from __future__ import annotations

__version__ = "0.1.0"
