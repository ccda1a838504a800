"""The app served to a browser: textual-serve's server, changed where tui-hpo needs it.

``tui-hpo serve`` (``cli/serve.py``) checks its options and the port, then builds this server;
each browser tab gets a ``tui-hpo ui`` of its own, a child of the server, driven over a
websocket. It lives beside the app because it is the app's other front end (textual-serve, on
aiohttp), which the CLI imports only when ``serve`` runs.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

STOP_GRACE_S = 5.0
"""How long a browser session's app gets to quit when ``serve`` stops, before it is killed."""

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
