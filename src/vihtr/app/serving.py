"""Run the app on a WSGI server: waitress (production-capable, pure Python) when installed, else Flask's own.

`start_in_thread` serves in a background thread on a free localhost port: tests and the load script call
the same server as `vihtr serve` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

SERVERS = ("auto", "waitress", "flask")
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


def serve(app, host: str = "127.0.0.1", port: int = 8000, threads: int = 4, server: str = "auto") -> None:
    """Serve until interrupted."""
    if pick_server(server) == "waitress":
        import waitress

        waitress.serve(app, host=host, port=port, threads=threads, ident="vihtr")
    else:
        app.run(host=host, port=port, threaded=True, use_reloader=False)


@dataclass
class RunningServer:
    url: str
    stop: Callable[[], None]


def start_in_thread(
    app, host: str = "127.0.0.1", port: int = 0, threads: int = 4, server: str = "auto"
) -> RunningServer:
    """Serve `app` in a daemon thread (port 0: a free one); `.url` is its address, `.stop()` shuts it down."""
    if pick_server(server) == "waitress":
        from waitress.server import create_server

        socket_map: dict = {}  # our own, so stop() can close the open connections too and end the loop
        wsgi = create_server(app, map=socket_map, host=host, port=port, threads=threads, ident="vihtr")
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
