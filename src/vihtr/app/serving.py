"""Run the app on a WSGI server: waitress (production-capable, pure Python) when installed, else Flask's own.

`start_in_thread` serves in a background thread on a free localhost port: tests and the load script call
the same server as `vihtr serve` does.

Connections: waitress's defaults (100 connections, 120 s idle timeout, select()) let 100 idle clients lock
everyone else out for two minutes. Here the server polls (no 1,024-descriptor ceiling), accepts up to
`connection_limit` connections and drops a connection idle for `channel_timeout` seconds, so idle or slow
clients cost a few descriptors and go away. Worker threads mostly wait on the batch queue, so there are
enough of them for concurrent requests to be batched together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

SERVERS = ("auto", "waitress", "flask")
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT_S = 20
SERVER_THREADS = 16


def waitress_options(
    threads: int = SERVER_THREADS,
    connection_limit: int = CONNECTION_LIMIT,
    channel_timeout: float = CHANNEL_TIMEOUT_S,
) -> dict:
    return {
        "threads": threads,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
        "cleanup_interval": max(1, min(30, int(channel_timeout) // 2)),
        "asyncore_use_poll": True,
        "ident": "vihtr",
    }


log = logging.getLogger(__name__)


def pick_server(name: str = "auto") -> str:
    if name not in SERVERS:
        raise ValueError(f"server must be one of {SERVERS}, got {name!r}")
    if name != "auto":
        return name
    try:
        import waitress  # noqa: F401
    except ModuleNotFoundError:
        log.warning("waitress is not installed: using Flask's development server")
        return "flask"
    return "waitress"


def serve(
    app,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = SERVER_THREADS,
    server: str = "auto",
    **limits,
) -> None:
    """Serve until interrupted. `limits`: `connection_limit`, `channel_timeout` (waitress)."""
    if pick_server(server) == "waitress":
        import waitress

        waitress.serve(app, host=host, port=port, **waitress_options(threads, **limits))
    else:
        app.run(host=host, port=port, threaded=True, use_reloader=False)


@dataclass
class RunningServer:
    url: str
    stop: Callable[[], None]


def start_in_thread(
    app, host: str = "127.0.0.1", port: int = 0, threads: int = SERVER_THREADS, server: str = "auto", **limits
) -> RunningServer:
    """Serve `app` in a daemon thread (port 0: a free one); `.url` is its address, `.stop()` shuts it down."""
    if pick_server(server) == "waitress":
        from waitress.server import create_server

        socket_map: dict = {}  # our own, so stop() can close the open connections too and end the loop
        wsgi = create_server(app, map=socket_map, host=host, port=port, **waitress_options(threads, **limits))
        thread = threading.Thread(target=wsgi.run, daemon=True)
        thread.start()

        def stop() -> None:
            wsgi.close()
            for channel in list(socket_map.values()):
                channel.close()
            wsgi.task_dispatcher.shutdown()
            thread.join(timeout=5)

        return RunningServer(f"http://{host}:{wsgi.effective_port}", stop)

    from werkzeug.serving import make_server

    wsgi = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        wsgi.shutdown()
        wsgi.server_close()
        thread.join(timeout=5)

    return RunningServer(f"http://{host}:{wsgi.server_port}", stop)
