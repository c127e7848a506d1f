"""Serve a runs folder with the ``tensorboard`` package's own server, in a background thread.

```python
url, stop = start("runs", port=6006)   # "http://127.0.0.1:6006/"
...
stop()
serve("runs", announce=print)          # or: until Ctrl-C or SIGTERM
```

Every run under the folder shows up as ``<name>/<time>/logs``, ``.../logs/train``
and ``.../logs/validation`` (cnnctl.tensorboard.callbacks says what each holds). Nothing here
imports TensorFlow; TensorBoard imports what it needs when it starts.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cnnctl.errors import UserError


class _KnownNotices(logging.Filter):
    """TensorBoard's loader warns of a run whose logs/train holds two graphs (runs resumed by an earlier cnnctl,
    which wrote the graph again): a notice of its own choice (it shows the newest), for every such run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Found more than one graph event per run")


_NOTICES = _KnownNotices()


def start(logdir: str | os.PathLike, port: int | None = None,
          host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Start TensorBoard on ``logdir``; return its URL and a function that stops it.

    ``port=None`` takes the first free port from 6006 up, as ``tensorboard`` does. A
    port in use, a folder that does not exist or an address that cannot be bound is
    a ``UserError`` (exit 2). Logs are read by TensorBoard's Python loader
    (``--load_fast=false``), so stopping the server leaves no data-server process behind.
    """
    path = Path(logdir)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise UserError(f"{logdir} {what}: give the runs folder (train a run first with `cnnctl train RECIPE`)")
    if port is not None and not 0 <= port <= 65535:
        raise UserError(f"port {port} is not a TCP port (0-65535)")

    from tensorboard import program

    logging.getLogger("tensorboard").addFilter(_NOTICES)
    servers: list = []

    class _Server(program.WerkzeugServer):
        """TensorBoard's own server, kept so that it can be shut down."""

        def __init__(self, wsgi_app, flags):
            super().__init__(wsgi_app, flags)
            servers.append(self)

    board = program.TensorBoard(server_class=program.with_port_scanning(_Server))
    argv = [None, "--logdir", str(path.resolve()), "--host", host, "--load_fast", "false"]
    if port is not None:
        argv += ["--port", str(port)]
    board.configure(argv=argv)
    try:
        url = board.launch()
    except program.TensorBoardPortInUseError:
        raise UserError(f"port {port} on {host} is in use: choose another with --port, "
                        "or leave it out to take the first free port from 6006") from None
    except program.TensorBoardServerException as exc:
        raise UserError(f"TensorBoard cannot serve on {host}:{port if port is not None else 'default'}: "
                        f"{exc.msg}") from None
    except OSError as exc:  # e.g. a host name that does not resolve
        raise UserError(f"TensorBoard cannot serve on {host}: {exc.strerror or exc}") from None
    server = servers[-1]
    done = threading.Event()

    def stop() -> None:
        if not done.is_set():
            done.set()
            server.shutdown()  # ends serve_forever in TensorBoard's thread
            server.server_close()

    return url, stop


def serve(logdir: str | os.PathLike, port: int | None = None, host: str = "127.0.0.1", *,
          announce: Callable[[str], None] = print) -> None:
    """Serve ``logdir`` until Ctrl-C or SIGTERM (``announce`` gets the address once it listens), then stop.

    Ctrl-C and a polite SIGTERM stop the server even when the process was started with SIGINT ignored, as a
    non-interactive shell starts a background job (Python then installs no handler of its own); the handlers
    before are put back when it returns. A request or TensorBoard's loader thread gets 5 s to finish; a program
    that ends then should not wait for TensorBoard's threads (the ``cnnctl tensorboard`` command exits at once).
    """
    url, stop = start(logdir, port=port, host=host)  # a wrong folder or a busy port is told before any handler changes
    main = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGINT, signal.SIGTERM)} if main \
        else {}
    announce(url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stopping = threading.Thread(target=stop, daemon=True)
        stopping.start()
        stopping.join(timeout=5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
