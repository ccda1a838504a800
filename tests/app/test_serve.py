"""``tui-hpo serve`` end to end: a real server, a real headless Chromium (Debian's, driven by
Playwright) that loads the page, and the ``tui-hpo ui`` each browser session runs.

textual-serve draws the terminal on canvases, so what the page shows is judged three ways: the
text of xterm.js's own buffer (the page's script is patched on the way in to hand the terminal
to the test), the bytes the app sent down the websocket, and the screenshot's pixels.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import alive, clean_env, free_port, run_cli, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
STUDY = "browser-demo"
SECRET = "Zq9-serve-Pw"


class Served:
    """``tui-hpo serve`` as a user starts it, in a session of its own so that the test's
    SIGINT stands for a Ctrl-C in its terminal and nothing else."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.out = cwd / "serve.stdout"
        self.err = cwd / "serve.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tui_hpo", "serve", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=clean_env(),
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_serving(self, timeout: float = 60) -> str:
        """Its start-up line, once it has said it; it listens right after."""

        def said() -> str:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.stdout()}{self.stderr()}")
            return self.stdout()

        return wait_for(said, timeout, "serve to say where it listens").strip()

    def ui_children(self) -> list[psutil.Process]:
        """The ``tui-hpo ui`` processes it runs, one per browser session."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                words = child.cmdline()
            except psutil.Error:
                continue
            if "tui_hpo" in words and "ui" in words:
                found.append(child)
        return found

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C, and its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """What a test leaves behind if it fails half-way: serve and anything under it."""
        try:
            family = [psutil.Process(self.pid), *psutil.Process(self.pid).children(True)]
        except psutil.NoSuchProcess:
            family = []
        for proc in family:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=30)


@pytest.fixture
def study_storage(tmp_path: Path) -> str:
    """A SQLite storage that holds one study with a few finished trials."""
    import optuna

    url = f"sqlite:///{tmp_path / 'tui-hpo.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=url)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=3)
    return url


@pytest.fixture
def served(study_storage: str, tmp_path: Path) -> Iterator[tuple[Served, int]]:
    port = free_port()
    server = Served(["--port", str(port), "--storage", study_storage], tmp_path)
    try:
        yield server, port
    finally:
        if server.process.poll() is None:
            server.kill()


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright (whose own browser download is not
    reachable from these machines; tests/setup-machine.sh installs chromium)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is needed for this test (tests/setup-machine.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


# the page's script, changed on its way to the browser so that the test can read the terminal
TERMINAL_MADE = re.compile(r"new (\w+)\((\w+),\{ping:(\w+)\}\)")
READ_SCREEN = """() => {
    const session = window.__tuiHpoTerminal;
    if (!session || !session.terminal) return null;
    const term = session.terminal, buffer = term.buffer.active, rows = [];
    for (let i = 0; i < term.rows; i++) {
        const line = buffer.getLine(buffer.viewportY + i);
        rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\\n");
}"""
JUDGE_PNG = """async (data) => {
    const image = await createImageBitmap(await (await fetch(data)).blob());
    const canvas = new OffscreenCanvas(image.width, image.height);
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, image.width, image.height).data;
    const colours = new Map();
    for (let i = 0; i < pixels.length; i += 4) {
        const key = (pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2];
        colours.set(key, (colours.get(key) || 0) + 1);
    }
    const commonest = Math.max(...colours.values());
    return {colours: colours.size, other: 1 - commonest / (pixels.length / 4)};
}"""


class Page:
    """One browser tab on the server: its terminal's text, the bytes the app sent it."""

    def __init__(self, browser: object, port: int) -> None:
        self.frames: list[bytes] = []
        self.patched: bool | None = None
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
        origin = f"http://127.0.0.1:{port}"
        self.page.route("**/*", lambda route: self._route(route, origin))
        self.page.on("websocket", self._watch)
        self.page.goto(origin + "/", wait_until="domcontentloaded")
        self.page.wait_for_selector("body.-first-byte", state="attached", timeout=60_000)

    def _route(self, route: object, origin: str) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if not url.startswith(origin):
            route.abort()  # type: ignore[attr-defined]  # the web font: no internet here
        elif url.endswith("/textual.js"):
            response = route.fetch()  # type: ignore[attr-defined]
            script, made = TERMINAL_MADE.subn(
                r"(window.__tuiHpoTerminal=new \1(\2,{ping:\3}))", response.text(), count=1
            )
            self.patched = made == 1
            route.fulfill(response=response, body=script)  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    def _watch(self, websocket: object) -> None:
        def received(payload: str | bytes) -> None:
            self.frames.append(payload.encode() if isinstance(payload, str) else payload)

        websocket.on("framereceived", received)  # type: ignore[attr-defined]

    def screen(self) -> str | None:
        """The terminal's rows as xterm.js holds them (None: not made yet)."""
        assert self.patched is not False, (
            "textual-serve's textual.js no longer makes its terminal the way TERMINAL_MADE "
            "expects: update the pattern so that the test can read the screen"
        )
        return self.page.evaluate(READ_SCREEN)  # type: ignore[no-any-return]

    def sent(self) -> str:
        return b"".join(self.frames).decode("utf-8", "replace")

    def wait_showing(self, text: str, timeout: float = 60) -> str:
        """Until the terminal shows ``text``; its rows then."""

        def showing() -> str | None:
            screen = self.screen()
            return screen if screen is not None and text in screen else None

        return wait_for(showing, timeout, f"the page to show {text!r}", every=0.5)

    def judge_screenshot(self, path: Path) -> dict[str, float]:
        """The screenshot, saved, and how far from one flat colour it is."""
        png = self.page.screenshot(path=str(path))
        data = "data:image/png;base64," + base64.b64encode(png).decode()
        return self.page.evaluate(JUDGE_PNG, data)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.page.close()


def test_the_browser_shows_the_studies_and_stopping_leaves_no_app(
    served: tuple[Served, int], browser: object, tmp_path: Path
) -> None:
    server, port = served
    line = server.wait_serving()
    assert line.splitlines() == [line]
    assert f"http://127.0.0.1:{port}" in line
    assert server.stderr() == ""  # on 127.0.0.1: no warning

    page = Page(browser, port)
    screen = page.wait_showing(STUDY)
    assert "study" in screen and "trials" in screen  # the studies table's header
    assert STUDY in page.sent()  # and it came down the websocket from the app
    looks = page.judge_screenshot(tmp_path / "serve.png")
    assert looks["colours"] > 8 and looks["other"] > 0.01, looks  # drawn, not a blank page
    (first,) = server.ui_children()

    page.close()  # closing the tab ends its app
    wait_for(lambda: not alive(first.pid), 30, "the closed tab's tui-hpo ui to exit")

    page = Page(browser, port)
    page.wait_showing(STUDY)
    (second,) = server.ui_children()
    assert server.stop() == 0  # Ctrl-C with a tab open
    assert not alive(second.pid), "serve left its tui-hpo ui running"
    assert "Traceback" not in server.stdout() + server.stderr()


def test_another_address_is_warned_about(study_storage: str, tmp_path: Path) -> None:
    port = free_port()
    server = Served(
        ["--host", "0.0.0.0", "--port", str(port), "--storage", study_storage], tmp_path
    )
    try:
        line = server.wait_serving()
        assert f":{port}" in line
        warning = wait_for(server.stderr, 10, "the warning").strip()
        assert warning.splitlines() == [warning]
        assert warning.startswith("warning: ")
        assert "0.0.0.0" in warning and "steer" in warning
        assert server.stop() == 0
        assert "Traceback" not in server.stdout() + server.stderr()
    finally:
        if server.process.poll() is None:
            server.kill()


def test_other_origins_and_host_names_are_refused(
    served: tuple[Served, int], tmp_path: Path
) -> None:
    """A page on another site can't open the app's websocket (it would steer the search), and
    a loopback server answers no other host name (DNS rebinding); the server's own page and
    its websocket, by any loopback name, still work."""
    import http.client

    server, port = served
    server.wait_serving()
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }

    def status(path: str, headers: dict[str, str]) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    here = f"127.0.0.1:{port}"
    code, body = status("/ws", {**upgrade, "Host": here, "Origin": "http://evil.example"})
    assert code == 403 and "evil.example" in body
    code, body = status("/", {"Host": f"evil.example:{port}"})
    assert code == 403 and "loopback" in body
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert status("/ws", {**upgrade, **rebound})[0] == 403
    assert not server.ui_children()  # no refused request started an app

    assert status("/", {"Host": f"localhost:{port}"})[0] == 200
    assert status("/", {"Host": here})[0] == 200
    code, _ = status("/ws", {**upgrade, "Host": here, "Origin": f"http://{here}"})
    assert code == 101
    assert server.stop() == 0


@pytest.mark.parametrize(
    ("host", "origin", "bound", "local", "refused"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", "127.0.0.1", True, False),
        ("localhost:9000", "http://localhost:9000", "127.0.0.1", True, False),  # ssh -L 9000
        ("[::1]:8000", None, "127.0.0.1", True, False),
        ("gpu-box:8000", None, "gpu-box", True, False),  # --host gpu-box (127.0.1.1)
        ("evil.example:8000", "http://evil.example:8000", "127.0.0.1", True, True),
        ("127.0.0.1:8000", "http://evil.example", "127.0.0.1", True, True),
        ("127.0.0.1:8000", "http://127.0.0.1:8001", "127.0.0.1", True, True),
        ("gpu-box.lab:8000", "http://gpu-box.lab:8000", "0.0.0.0", False, False),
        ("gpu-box.lab:8000", "http://evil.example", "0.0.0.0", False, True),
    ],
)
def test_refusal(host: str, origin: str | None, bound: str, local: bool, refused: bool) -> None:
    from tui_hpo.app.served import refusal

    assert (refusal(host, origin, bound, local) is not None) is refused


def test_the_password_stays_out_of_every_command_line(postgres_url: str, tmp_path: Path) -> None:
    secret_url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    port = free_port()
    server = Served(["--port", str(port), "--storage", secret_url], tmp_path)
    try:
        line = server.wait_serving()
        assert SECRET not in line and "***" in line

        async def one_session() -> list[psutil.Process]:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"ws://127.0.0.1:{port}/ws?width=80&height=24"):
                    children: list[psutil.Process] = []
                    for _ in range(150):
                        children = server.ui_children()
                        if children:
                            break
                        await asyncio.sleep(0.2)
                    assert children, "no tui-hpo ui started for the session"
                    await asyncio.sleep(1)  # the app well under way
                    family = [
                        psutil.Process(server.pid),
                        *psutil.Process(server.pid).children(True),
                    ]
                    for proc in family:  # while the session runs
                        assert SECRET not in " ".join(proc.cmdline()), proc.cmdline()
                    assert "***" in " ".join(family[0].cmdline())  # serve's own, masked
                    # (the URL reaches the app in TUI_HPO_STORAGE; /proc/PID/environ can't show
                    # it: setproctitle reuses that memory for the masked title)
                    return children

        children = asyncio.run(one_session())
        assert server.stop() == 0
        assert not any(alive(child.pid) for child in children)
        assert "Traceback" not in server.stdout() + server.stderr()
        assert SECRET not in server.stdout() + server.stderr()
    finally:
        if server.process.poll() is None:
            server.kill()


def _one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["--port", "abc"], ["--port 'abc'", "1 to 65535"], id="port-not-a-number"),
        pytest.param(["--port", "70000"], ["1 to 65535"], id="port-too-big"),
        pytest.param(["--host", "no.such.host.invalid"], ["--host", "no such"], id="bad-host"),
        pytest.param(["--host", "192.0.2.1"], ["not an address of this machine"], id="not-here"),
    ],
)
def test_bad_input(study_storage: str, tmp_path: Path, args: list[str], needles: list[str]) -> None:
    _one_error(run_cli("serve", "--storage", study_storage, *args, cwd=tmp_path), *needles)


def test_port_in_use(study_storage: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--storage", study_storage, "--port", str(port), cwd=tmp_path)
    _one_error(proc, f"port {port}", "in use")
