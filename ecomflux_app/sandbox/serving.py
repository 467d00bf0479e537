"""Serve a WSGI app on a loopback port in a background thread (sandboxes in dev and tests)."""

from __future__ import annotations

import threading

from werkzeug.serving import make_server


class BackgroundServer:
    """A threaded werkzeug server; port 0 picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True)
        self.host = host
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"sandbox-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
