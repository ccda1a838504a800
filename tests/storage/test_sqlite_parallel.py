"""Eight local workers share one SQLite file: no "database is locked", exactly N trials.

SQLite is tui-hpo's default storage, so many workers on one machine must queue for its write
lock rather than fail (storage.py: WAL, a long busy timeout) and must still stop at exactly
``--n-trials`` (budget.py: the count and the new trial under one flock).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest

from tests.support import Cli

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS = 400
WORKERS = 8


@pytest.mark.e2e
def test_eight_workers_on_sqlite(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    logs = workdir / "logs"
    proc = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        "P",
        "--storage",
        sqlite_url,
        "--n-trials",
        str(N_TRIALS),
        "--workers",
        str(WORKERS),
        "--log-dir",
        str(logs),
        env={"TUI_HPO_GPU_COUNT": "0"},
        timeout=280,
    )
    output = proc.stdout + proc.stderr
    texts = [p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))]
    assert len(texts) == WORKERS
    for text in [output, *texts]:
        assert "database is locked" not in text.lower()
        assert "Traceback" not in text
    assert proc.returncode == 0, proc.stderr

    storage = optuna.storages.RDBStorage(sqlite_url)
    try:
        trials = optuna.load_study(study_name="P", storage=storage).get_trials()
    finally:
        storage.engine.dispose()
    states = Counter(t.state.name for t in trials)
    assert len(trials) == N_TRIALS, states
    assert states["COMPLETE"] + states["PRUNED"] == N_TRIALS, states  # quadratic never fails
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    by_worker = Counter(t.user_attrs["tui_hpo.worker"] for t in trials)
    assert len(by_worker) == WORKERS, by_worker  # every worker took part
    assert "done: 400 trial(s) ended" in " ".join(proc.stderr.split())
