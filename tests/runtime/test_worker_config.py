"""One argument list and one environment for every way a worker process starts
(``runtime.worker_config``): the launch's fork, the app's exec, the supervisor's trial process
and a remote host all build them here."""

from __future__ import annotations

from tui_hpo.control.failure_streak import DEFAULT_LIMIT
from tui_hpo.runtime.worker_config import STORAGE_ENV, WorkerConfig, worker_environ
from tui_hpo.storage.engines import Heartbeat
from tui_hpo.storage.urls import parse_url

URL = "postgresql+psycopg://me:S3CRET@db/hpo"


def _config(**kw: object) -> WorkerConfig:
    base: dict[str, object] = dict(
        objective="objectives.synthetic:quadratic",
        study="s",
        storage=parse_url(URL),
        heartbeat=Heartbeat(5, 12, 2),
        log_path="/logs/w.log",
        poll_interval=0.3,
        trial_timeout=60.0,
    )
    base.update(kw)
    return WorkerConfig(**base)  # type: ignore[arg-type]


def test_a_worker_gets_every_setting_and_never_the_url() -> None:
    args = _config(max_consecutive_failures=3).worker_args()
    assert args[:3] == ["objectives.synthetic:quadratic", "--study", "s"]
    pairs = dict(zip(args[3::2], args[4::2], strict=False))
    assert pairs == {
        "--heartbeat-interval": "5",
        "--poll-interval": "0.3",
        "--grace-period": "12",
        "--retry-failed": "2",
        "--log-file": "/logs/w.log",
        "--max-consecutive-failures": "3",
        "--trial-timeout": "60.0",
    }
    assert not any("S3CRET" in a or "postgresql" in a for a in args)


def test_the_trial_process_leaves_the_timeout_to_its_supervisor() -> None:
    args = _config().worker_args(trial_process=True)
    assert args[-1] == "--no-supervisor"
    assert "--trial-timeout" not in args


def test_defaults_are_left_out() -> None:
    args = _config(max_consecutive_failures=DEFAULT_LIMIT, trial_timeout=None).worker_args()
    assert "--max-consecutive-failures" not in args and "--trial-timeout" not in args


def test_the_environment_carries_the_url_gpu_launch_and_supervisor(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KEEP_ME", "1")
    env = worker_environ(
        URL,
        gpu_env={"CUDA_VISIBLE_DEVICES": "1"},
        launch_token="abc",
        supervisor_pid=42,
    )
    assert env[STORAGE_ENV] == URL
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["TUI_HPO_LAUNCH_TOKEN"] == "abc"
    assert env["TUI_HPO_SUPERVISOR_PID"] == "42"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["KEEP_ME"] == "1"  # the rest of this process's environment goes along
