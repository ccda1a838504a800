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
import socket
import sys
from typing import Any

import click

from tui_hpo.cli.options import mask_own_title, storage_option, target
from tui_hpo.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


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


def end_children() -> None:
    """Whatever app is still running once the server has stopped (one that ignored quit, or a
    stop cut short) is terminated, then killed: ``serve`` leaves no ``tui-hpo ui`` behind."""
    import psutil

    from tui_hpo.app.served import STOP_GRACE_S

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
    from tui_hpo.app.served import make_server  # aiohttp and textual-serve: only now

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
