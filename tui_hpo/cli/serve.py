"""``tui-hpo serve``: the app in a browser, through textual-serve.

For a teammate without a terminal, or a laptop that reaches the GPU box through one tunnelled
port. Each browser tab gets a ``tui-hpo ui`` of its own, a child of this process, driven over a
websocket; closing the tab or stopping ``serve`` ends it, and the workers go on as ever.

The storage URL may hold a password, so it reaches the children in their environment
(``TUI_HPO_STORAGE``), never in their argv, and this process masks its own title as ``ui`` does.
Anyone who can open the port can steer the search, so it listens on 127.0.0.1 unless told
otherwise, and says so when told otherwise.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shlex
import socket
import sys
from typing import TYPE_CHECKING, Any

import click

from tui_hpo.cli.options import mask_own_title, storage_option, target
from tui_hpo.errors import UserError

if TYPE_CHECKING:
    from aiohttp import web

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STOP_GRACE_S = 5.0
"""How long a browser session's app gets to quit when ``serve`` stops, before it is killed."""


def parse_port(text: str) -> int:
    """The port as a number, or one line that says what a port is (click's own complaint about
    an int option is several lines of usage)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UserError(f"--port {text!r}: give a port number from 1 to 65535")
    return port


def listen_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """What binding ``host`` means (one address, or several for a name such as localhost):
    a host that names nothing fails here in one line, not deep in aiohttp."""
    try:
        found = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UserError(f"--host {host!r}: no such address or host name ({reason})") from None
    return [(family, address) for family, _type, _proto, _name, address in found]


def check_free(host: str, port: int, addresses: list[tuple[Any, ...]]) -> None:
    """Bind each address once and let go, the way aiohttp will (SO_REUSEADDR), so that a port
    in use or an address this machine doesn't have is one line before anything starts."""
    for family, address in addresses:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise bind_error(host, port, exc) from None


def bind_error(host: str, port: int, exc: OSError) -> UserError:
    """The one line for a failed bind, worded for what the user can change."""
    if exc.errno == errno.EADDRINUSE:
        return UserError(f"port {port} on {host} is in use: pick another with --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"--host {host!r} is not an address of this machine")
    if exc.errno == errno.EACCES:
        return UserError(
            f"port {port} needs more privileges than this user has: pick one above 1023"
        )
    return UserError(f"can't listen on {host} port {port}: {exc.strerror or exc}")


def is_local(addresses: list[tuple[Any, ...]]) -> bool:
    """Whether every address is loopback: only then can no one else reach the port."""
    for _family, address in addresses:
        try:
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                return False
        except ValueError:
            return False
    return bool(addresses)


def open_url(host: str, port: int) -> str:
    """The address to type into a browser: a wildcard host means this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def ui_command(study: str | None) -> list[str]:
    """What each browser session runs: ``tui-hpo ui`` from this very installation, with the
    study (a name, not a secret) but never the storage, which travels in the environment."""
    words = [sys.executable, "-m", "tui_hpo", "ui"]
    if study is not None:
        words += ["--study", study]
    return words


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_name(netloc: str) -> str:
    """``host`` of ``host:port`` (``[::1]:8000`` → ``::1``), lower case."""
    name = netloc.strip().lower()
    if name.startswith("["):
        return name[1 : name.find("]")] if "]" in name else name[1:]
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def refusal(request_host: str, origin: str | None, bound: str, local_only: bool) -> str | None:
    """Why a request must be refused, or None.

    A websocket is not bound by the same-origin policy: any page the user has open could
    otherwise connect to the port and steer the search, so its Origin must be this server.
    On a loopback bind the Host must also be a loopback name (or the one given with --host),
    which shuts out DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends
    Host and Origin evil.example, both of which agree with each other.
    """
    if local_only and _host_name(request_host) not in LOOPBACK_NAMES | {bound.lower()}:
        return f"refused: {request_host!r} is not this machine's loopback name"
    if origin is not None:
        from urllib.parse import urlsplit

        if urlsplit(origin).netloc.lower() != request_host.lower():
            return f"refused: a page from {origin} may not open this app"
    return None


def make_server(command: list[str], host: str, port: int, local_only: bool = True) -> Any:
    """textual-serve's server, changed where tui-hpo needs it otherwise (built here so that
    ``tui-hpo --help`` never imports aiohttp):

    - the page points its websocket at the host and port the browser used, so it works through
      an ssh tunnel on another port or on a wildcard address (textual-serve writes the address
      it listens on into the page);
    - each session's app runs without a shell, in a session of its own, so Ctrl-C in the
      terminal reaches ``serve`` alone, which then quits every app in turn (textual-serve waits
      for open websockets for a minute, and leaves that to aiohttp);
    - one start-up line instead of a banner, warnings only in the log;
    - a page or websocket from another origin (or, on a loopback bind, another host name) is
      refused, see ``refusal``.
    """
    import asyncio
    import logging
    import signal

    import aiohttp_jinja2
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server

    class SessionApp(AppService):
        """One browser session's ``tui-hpo ui``."""

        async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
            environment = self._build_environment(width=width, height=height)
            self._process = process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                start_new_session=True,
            )
            assert process.stdin is not None
            self._stdin = process.stdin
            return process

        async def stop(self) -> None:
            """Quit the app, and wait for its process to be gone: a process still being
            waited for when the loop closes leaves asyncio complaining at exit. An app that
            ignores quit doesn't hold this up past the grace period: it is killed."""
            try:
                await asyncio.wait_for(super().stop(), STOP_GRACE_S)
            except asyncio.TimeoutError:
                pass
            process = self._process
            if process is None or process.returncode is not None:
                return
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()

    class TuiHpoServer(Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sessions: set[tuple[web.WebSocketResponse, SessionApp]] = set()
            """The open browser sessions, for ``on_shutdown`` to end."""

        def initialize_logging(self) -> None:
            logging.basicConfig(level=logging.WARNING, format="serve: %(message)s")

        async def on_startup(self, app: web.Application) -> None:
            """Nothing to print: ``serve`` has said where it listens before it started."""

        async def on_shutdown(self, app: web.Application) -> None:
            """Quit every session's app (textual-serve's own ``quit`` message), close its
            websocket, and give up on an app that takes too long (``serve`` kills it)."""

            async def end(websocket: web.WebSocketResponse, service: SessionApp) -> None:
                try:
                    await asyncio.wait_for(service.stop(), STOP_GRACE_S)
                except (asyncio.TimeoutError, OSError, RuntimeError):
                    pass
                await websocket.close()

            await asyncio.gather(*(end(ws, service) for ws, service in list(self.sessions)))

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            refused = refusal(request.host, None, host, local_only)
            if refused:
                raise web.HTTPForbidden(text=refused)
            base = f"{request.scheme}://{request.host}"
            ws_base = ("wss:" if request.scheme == "https" else "ws:") + base.split(":", 1)[1]
            context = {
                "font_size": _size(request.query.get("fontsize"), 16),
                "app_websocket_url": ws_base + str(request.app.router["websocket"].url_for()),
                "config": {"static": {"url": f"{base}/static/"}},
                "application": {"name": self.title},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            refused = refusal(request.host, request.headers.get("Origin"), host, local_only)
            if refused:
                raise web.HTTPForbidden(text=refused)
            websocket = web.WebSocketResponse(heartbeat=15)
            width = _size(request.query.get("width"), 80)
            height = _size(request.query.get("height"), 24)
            service: SessionApp | None = None
            try:
                await websocket.prepare(request)
                service = SessionApp(
                    "tui-hpo ui",
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=websocket.close,
                    download_manager=self.download_manager,
                )
                await service.start(width, height)
                self.sessions.add((websocket, service))
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as exc:  # one session's trouble must not stop the others
                logging.getLogger("textual-serve").warning("a browser session failed: %s", exc)
            finally:
                if service is not None:
                    self.sessions.discard((websocket, service))
                    await service.stop()
            return websocket

        def serve(self, debug: bool = False) -> None:
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.request_exit)
            try:
                web.run_app(
                    self._make_app(),
                    host=self.host,
                    port=self.port,
                    handle_signals=False,
                    loop=loop,
                    print=lambda *args: None,
                    access_log=None,
                    shutdown_timeout=STOP_GRACE_S,
                )
            finally:
                if not loop.is_closed():
                    loop.close()

    return TuiHpoServer(shlex.join(command), host=host, port=port, title="tui-hpo")


def _size(text: str | None, default: int) -> int:
    try:
        return max(1, int(text or default))
    except ValueError:
        return default


def end_children() -> None:
    """Whatever app is still running once the server has stopped (one that ignored quit, or a
    stop cut short) is terminated, then killed: ``serve`` leaves no ``tui-hpo ui`` behind."""
    import psutil

    # direct children only: a worker that a browser session launched is a grandchild in a
    # session of its own, and it must outlive ``serve`` as it outlives ``ui``
    children = psutil.Process().children(recursive=False)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, left = psutil.wait_procs(children, timeout=STOP_GRACE_S)
    for child in left:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=STOP_GRACE_S)


@click.command()
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; anyone who reaches it can steer the search.",
)
@click.option(
    "--port",
    default=str(DEFAULT_PORT),
    show_default=True,
    metavar="PORT",
    help="Port to listen on.",
)
@click.option("--study", "-s", default=None, help="Open this study directly.")
@storage_option
def serve(host: str, port: str, study: str | None, storage: str | None) -> None:
    """Serve the app to a browser: each tab runs its own `tui-hpo ui` on the storage."""
    from tui_hpo.storage.engines import act_as, check_reachable, crowded

    number = parse_port(port)
    where = target(storage)
    mask_own_title(where)
    act_as("app")
    try:
        check_reachable(where, must_exist=False)
    except UserError as exc:
        if not crowded(exc):
            raise
    addresses = listen_addresses(host, number)
    check_free(host, number, addresses)
    # the children read the storage from here; OPTUNA_STORAGE ranks below it
    os.environ["TUI_HPO_STORAGE"] = where.url
    server = make_server(ui_command(study), host, number, local_only=is_local(addresses))
    which = f", study {study}" if study is not None else ""
    click.echo(
        f"serving the tui-hpo app on {where.masked}{which} at {open_url(host, number)} "
        "(open it in a browser; Ctrl-C stops)"
    )
    if not is_local(addresses):
        click.echo(
            f"warning: listening on {host}, not on this machine alone: anyone who can reach "
            f"port {number} can watch and steer the search (pause, stop, fail trials); "
            "prefer the default 127.0.0.1 and an ssh tunnel (ssh -L)",
            err=True,
        )
    sys.stdout.flush()
    try:
        server.serve()
    except OSError as exc:  # the port taken between the check and the bind
        raise bind_error(host, number, exc) from None
    finally:
        end_children()
