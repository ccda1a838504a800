"""tui-hpo's own tables, kept beside Optuna's in the same database.

Optuna's schema stays untouched (the ``optuna`` CLI and optuna-dashboard keep reading the
storage); everything tui-hpo adds lives in tables prefixed ``tui_hpo_``. They reference
Optuna's ``study_id`` by value, not by foreign key, so deleting a study with Optuna's own tools
keeps working. docs/storage.md describes each column.

- ``tui_hpo_studies``: one row per study tui-hpo has run: the trial budget, the seed, the
  deadline and (from the control plane) the pause/stop flags. Workers read it before each trial.
- ``tui_hpo_settings``: every sampler or pruner put in force, with its time; the newest row of
  each kind is the one workers use, the rest is the history.
- ``tui_hpo_workers``: every worker process that joined a study: where it runs (with its Slurm
  task, ``JOB_TASK``, under Slurm), its state and a heartbeat, so ``status`` and ``workers``
  can show remote workers too.
- ``tui_hpo_slurm_jobs``: every Slurm job array submitted for a study, and how (the recipe
  ``scale`` submits more of), so any machine finds the tasks still waiting in Slurm's queue.
- ``tui_hpo_curves``: learning curves of multi-objective trials (see below).
- ``tui_hpo_requests``: prune or fail orders for one running trial, picked up by the worker
  (prune, at its next report) or by the worker's supervisor on its host (fail: kill, replace).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

studies = sa.Table(
    "tui_hpo_studies",
    metadata,
    sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("trial_budget", sa.Integer, nullable=True),
    sa.Column("seed", sa.Integer, nullable=True),
    sa.Column("deadline", sa.DateTime, nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("stop_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    # how the last launch started its workers, so `scale` can start more of the same
    sa.Column("launch_json", sa.Text, nullable=True),
)

settings = sa.Table(
    "tui_hpo_settings",
    metadata,
    sa.Column("setting_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "sampler" or "pruner"
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("set_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("set_by", sa.String(255), nullable=True),
)

workers = sa.Table(
    "tui_hpo_workers",
    metadata,
    sa.Column("worker_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("gpu", sa.String(64), nullable=True),
    sa.Column("log_path", sa.Text, nullable=True),
    sa.Column("supervisor_pid", sa.Integer, nullable=True),
    sa.Column("sampler", sa.Text, nullable=True),
    sa.Column("stop_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("trial_number", sa.Integer, nullable=True),
    sa.Column("trials_done", sa.Integer, nullable=False, default=0),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("started_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    # added after the first release: ``ensure`` adds it to a table made before
    sa.Column("slurm_job", sa.String(64), nullable=True),
)

ADDED_COLUMNS = (("tui_hpo_workers", "slurm_job", "VARCHAR(64)"),)
"""Columns added to a table after it was first released: ``ensure`` adds them to a storage
made before, so older storages keep working."""

slurm_jobs = sa.Table(
    "tui_hpo_slurm_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True, autoincrement=False),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("tasks", sa.Integer, nullable=False),
    # what was submitted (sbatch arguments, worker command; never the storage URL)
    sa.Column("recipe_json", sa.Text, nullable=False),
    sa.Column("submitted_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("submitted_by", sa.String(255), nullable=True),
)

requests = sa.Table(
    "tui_hpo_requests",
    metadata,
    sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("trial_id", sa.Integer, nullable=False, index=True),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.Integer, nullable=True, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # "prune" or "fail"
    sa.Column("issued_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("issued_by", sa.String(255), nullable=True),
    sa.Column("handled_at", sa.DateTime, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
)

curves = sa.Table(
    "tui_hpo_curves",
    metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Float, nullable=True),
)
"""Learning curves of multi-objective trials. Optuna refuses ``report`` there, and its TPE
sampler fails on a PRUNED trial that has intermediate values in a multi-objective study, so
tui-hpo keeps these curves here instead of in Optuna's own table."""


# Optuna's own tables, named without importing Optuna (the supervisor stays light): only the
# columns tui-hpo's budget and lookups need. State is compared by name after a cast to text:
# SQLite stores the name, PostgreSQL an enum that a text parameter can't be compared with.
optuna_studies = sa.table("studies", sa.column("study_id"), sa.column("study_name"))
optuna_trials = sa.table("trials", sa.column("trial_id"), sa.column("study_id"), sa.column("state"))
optuna_study_directions = sa.table(
    "study_directions", sa.column("study_id"), sa.column("objective"), sa.column("direction")
)
optuna_trial_heartbeats = sa.table(
    "trial_heartbeats", sa.column("trial_id"), sa.column("heartbeat")
)


def ensure(engine: sa.Engine) -> None:
    """Create tui-hpo's tables when missing, and add the columns a later release added to a
    table made before (``ADDED_COLUMNS``); existing rows and columns are never touched.

    Several workers may start at once on a fresh database; the loser of a race to create a
    table (or to add a column) sees an error for one that now exists, so one more pass settles
    it.
    """
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.DBAPIError:
        metadata.create_all(engine, checkfirst=True)
    try:
        _add_columns(engine)
    except sa.exc.DBAPIError:
        _add_columns(engine)


def _add_columns(engine: sa.Engine) -> None:
    for table, column, kind in ADDED_COLUMNS:
        with engine.connect() as con:
            have = {c["name"] for c in sa.inspect(con).get_columns(table)}
        if column in have:
            continue
        with engine.begin() as con:
            con.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
