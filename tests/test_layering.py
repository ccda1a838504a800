"""The layering the package promises (tui_hpo/__init__.py, tui_hpo/session.py, tui_hpo/cli.py):

- the core (every module outside ``tui_hpo/app/``) imports no Textual: checked by importing each
  module in a fresh interpreter and looking at ``sys.modules``, and statically in its source;
- the app runs no SQL of its own: no module of ``tui_hpo/app/`` imports a database driver,
  SQLAlchemy or Optuna's storages, or calls ``.execute(`` (everything goes through ``Session``);
- ``tui-hpo --help`` imports neither torch nor Textual (nor Optuna): heavy imports happen inside
  the subcommands.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tui_hpo"
APP = PACKAGE / "app"

CORE_FILES = sorted(p for p in PACKAGE.rglob("*.py") if APP not in p.parents)
APP_FILES = sorted(APP.rglob("*.py"))
# ``python -m tui_hpo``'s entry runs the CLI when imported: checked statically only.
RUNS_ON_IMPORT = {"tui_hpo.__main__"}

UI_PACKAGES = ("textual", "textual_plotext")
SQL_PACKAGES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb")
SQL_CALLS = ("execute", "executemany", "exec_driver_sql", "executescript")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` anywhere in the file names (inside
    functions too), with its line; ``from a import b`` counts as both ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_file_lists_are_what_they_should_be() -> None:
    names = {module_name(p) for p in CORE_FILES}
    assert {"tui_hpo", "tui_hpo.data.session", "tui_hpo.cli", "tui_hpo.data.frames"} <= names
    assert not any(n.startswith("tui_hpo.app") for n in names)
    assert {module_name(p) for p in APP_FILES} >= {"tui_hpo.app.app", "tui_hpo.app.screens.study"}


@pytest.mark.parametrize(
    "module",
    [module_name(p) for p in CORE_FILES if module_name(p) not in RUNS_ON_IMPORT],
)
def test_core_module_imports_no_textual(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'textual_plotext'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"{module} pulls in {proc.stdout.strip()}"


@pytest.mark.parametrize("path", CORE_FILES, ids=module_name)
def test_core_source_has_no_textual_import(path: Path) -> None:
    bad = [(line, name) for line, name in imported_modules(path) if _under(name, UI_PACKAGES)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", APP_FILES, ids=module_name)
def test_app_module_runs_no_sql_of_its_own(path: Path) -> None:
    rel = path.relative_to(ROOT)
    imports = imported_modules(path)
    drivers = [(line, n) for line, n in imports if _under(n, SQL_PACKAGES)]
    assert not drivers, f"{rel} imports {drivers}"
    storages = [(line, n) for line, n in imports if _under(n, ("optuna.storages",))]
    assert not storages, f"{rel} imports {storages}"
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = [
        (node.lineno, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_CALLS
    ]
    assert not calls, f"{rel} calls {calls}"
    text = path.read_text()
    assert ".execute(" not in text, f"{rel} has '.execute(' in its source"


def test_the_static_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """The checks above would see a forbidden import or call (one inside a function too)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from __future__ import annotations\n"
        "def f(con):\n"
        "    import sqlalchemy as sa\n"
        "    from textual.widgets import Static\n"
        "    from optuna import storages\n"
        "    return con.execute(sa.text('SELECT 1'))\n"
    )
    names = [n for _, n in imported_modules(sample)]
    assert any(_under(n, SQL_PACKAGES) for n in names)
    assert any(_under(n, UI_PACKAGES) for n in names)
    assert any(_under(n, ("optuna.storages",)) for n in names)


def test_help_imports_neither_torch_nor_textual() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tui_hpo", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: tui-hpo" in proc.stdout
    # -X importtime: "import time: self [us] | cumulative | imported package" per module
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "tui_hpo.cli" in imported  # the check sees the CLI's own imports
    heavy = sorted(
        name for name in imported if _under(name, ("torch", "textual", "textual_plotext", "optuna"))
    )
    assert not heavy, f"tui-hpo --help imports {heavy}"


def test_help_in_process_leaves_torch_and_textual_unimported() -> None:
    code = (
        "import sys\n"
        "from tui_hpo.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='tui-hpo')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules}"
        " & {'torch', 'textual', 'textual_plotext', 'optuna'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout[-500:]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of this repo's pyproject.toml, on the package under
    ``root`` (this repo, or a copy of it)."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=180,
    )


def test_the_layer_contracts_hold() -> None:
    """pyproject.toml's contracts: the layers, no Textual in the core, no SQL in the app, no
    import circle among the modules of one package."""
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("storage/tables.py", "import tui_hpo.runtime.worker", "Layers"),
        ("control/orders.py", "from tui_hpo import steering", "Layers"),
        ("data/frames.py", "import textual", "no Textual"),
        ("control/orders.py", "from tui_hpo.control import budget", "import circle"),
    ],
)
def test_an_upward_import_or_a_circle_fails_the_check(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """The contracts catch what they are for: the same check on a copy of the package with
    one import added where it must not be."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "tui_hpo", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "tui_hpo" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout[-2000:]
    verdicts = proc.stdout.split("Broken contracts", 1)[0]
    assert any(broken in line and "BROKEN" in line for line in _joined(verdicts)), verdicts


def _joined(text: str) -> list[str]:
    """lint-imports wraps a long contract name over two lines: one line per contract."""
    return (
        text.replace("\n", " ").replace("KEPT", "KEPT\n").replace("BROKEN", "BROKEN\n").split("\n")
    )


def _thread_workers(path: Path) -> list[ast.FunctionDef]:
    """Methods decorated ``@work(thread=True, ...)`` in an app module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and getattr(deco.func, "id", getattr(deco.func, "attr", None)) == "work"
                and any(
                    k.arg == "thread" and getattr(k.value, "value", False) for k in deco.keywords
                )
            ):
                found.append(node)
    return found


def test_thread_workers_only_post_messages() -> None:
    """A thread worker takes its inputs as arguments and posts a message: it queries no
    widget, writes no attribute and calls nothing back on the UI thread (Textual's widgets
    are not thread-safe; a message is)."""
    workers = [(p, f) for p in APP_FILES for f in _thread_workers(p)]
    assert len(workers) >= 8  # every pane's loader, the polls, the commands
    for path, func in workers:
        where = f"{path.relative_to(ROOT)}:{func.name}"
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in ("query_one", "query", "call_from_thread"), where
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    assert not (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ), f"{where} writes self.{target.attr}"
        posts = [
            n
            for n in ast.walk(func)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "post_message"
        ]
        assert posts, f"{where} posts no message"
