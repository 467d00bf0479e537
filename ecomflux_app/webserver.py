"""The production HTTP server's command line (granian), shared by `ecomflux web` and the benchmarks.

granian parses HTTP in Rust and hands each request to a pool of Python threads, so a request costs
the GIL only for the application's own work; gunicorn's gthread worker parses, dispatches and
writes in Python. Measured in `make bench` (2 cores, same app, same load): webhook intake on
PostgreSQL went from ~2,000 to ~3,300-3,700 req/s, and the bare Flask ceiling from ~3,300 to ~5,500.
The benchmarks start the bare-Flask ceiling and the real app through `server_args`, so both always
run on the same server configuration.
"""

from __future__ import annotations

import os
import shutil
import sys

# Each request waits for its group commit in a thread: enough threads per process that a commit
# carries many rows, few enough that they do not fight over the GIL (measured: 32 beat 16 and 64).
# granian's --backpressure stays at its default (backlog / workers): set near the thread count it
# cut p99 at 200 wrk senders (91 -> 75 ms) but starved some keep-alive connections for 30 s in the
# 20,000-webhook burst (40 of 20,000 requests timed out), which Shopify would see as failures.
DEFAULT_THREADS = 32
KILL_TIMEOUT_SECONDS = 10


def default_workers() -> int:
    """Two processes per core: several GILs per machine, each with its own group-commit writer."""
    return 2 * (os.cpu_count() or 1)


def server_args(target: str, *, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None,
                threads: int = DEFAULT_THREADS, access_log: bool = True) -> list[str]:
    """The argv that serves the WSGI callable `target` ("module:attribute")."""
    granian = shutil.which("granian", path=os.path.dirname(sys.executable)) or "granian"
    args = [
        granian, "--interface", "wsgi", "--host", host, "--port", str(port),
        "--workers", str(workers or default_workers()), "--blocking-threads", str(threads),
        "--backlog", "2048", "--no-ws", "--respawn-failed-workers", "--log-level", "warning",
        # A worker that misses SIGTERM (one that was still importing the app when it came) is killed
        # after this long rather than holding the shutdown forever; in-flight webhooks were not yet
        # acknowledged, so Shopify delivers them again.
        "--workers-kill-timeout", str(KILL_TIMEOUT_SECONDS),
    ]
    if access_log:
        args.append("--access-log")
    return [*args, target]
