"""Sandbox state kept in a file across restarts of `ecomflux dev`, as the real Shopify and Intuit keep theirs.

Without it a restarted Intuit sandbox forgot the company (realm) and tokens the app had linked, and a
restarted Shopify sandbox forgot the shop's token. Each sandbox names the attributes that are its
data (shops, orders, companies, documents, tokens); counters, faults and rate windows are not kept.
The file is written atomically a moment after a change, and once more on stop.
"""

from __future__ import annotations

import logging
import pickle
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = 1
SAVE_DELAY_SECONDS = 0.5


class PersistentState:
    """Load `fields` of a sandbox state object from `path` and save them after changes."""

    def __init__(self, state, path: Path, fields: tuple[str, ...], after_load=None):
        self.state, self.path, self.fields, self.after_load = state, Path(path), fields, after_load
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> bool:
        """Restore the saved data, if any; False when there is none or it cannot be read (start empty)."""
        if not self.path.is_file():
            return False
        try:
            saved = pickle.loads(self.path.read_bytes())  # our own file under instance/, written below
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            log.warning("sandbox state %s not readable (%s): starting empty", self.path, exc)
            return False
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            return False
        with self.state.lock:
            for name in self.fields:
                if name in saved["data"]:
                    setattr(self.state, name, saved["data"][name])
            if self.after_load:
                self.after_load(self.state)
        return True

    def save(self) -> None:
        with self.state.lock:
            blob = pickle.dumps({"format": FORMAT, "data": {n: getattr(self.state, n) for n in self.fields}})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def changed(self) -> None:
        self._dirty.set()

    def watch(self, app) -> "PersistentState":
        """Save shortly after every request that may change state (any method but GET/HEAD)."""

        @app.after_request
        def _note_change(response):
            from flask import request

            if request.method not in ("GET", "HEAD", "OPTIONS"):
                self.changed()
            return response

        self._thread = threading.Thread(target=self._run, name=f"sandbox-state-{self.path.stem}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(timeout=1.0) and not self._stop.is_set():
                self._stop.wait(SAVE_DELAY_SECONDS)  # let a burst of writes land in one save
                self._dirty.clear()
                self._save_quietly()

    def _save_quietly(self) -> None:
        try:
            self.save()
        except Exception as exc:  # noqa: BLE001 - a failed save must not take the sandbox down
            log.warning("sandbox state %s not saved: %s", self.path, exc)

    def close(self) -> None:
        """Stop watching and write the final state."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._save_quietly()


def _intuit_after_load(state) -> None:
    """Per-company traffic state starts fresh: nothing is in flight after a restart."""
    from collections import deque

    for company in state.companies.values():
        company.window, company.batch_window, company.faults = deque(), deque(), deque()
        company.in_flight, company.latency = 0, 0.0


INTUIT_FIELDS = ("companies", "access", "refresh")
SHOPIFY_FIELDS = ("shops", "access_tokens", "refresh_tokens")


def persist_intuit(app, path: Path) -> PersistentState:
    keeper = PersistentState(app.sandbox, path, INTUIT_FIELDS, after_load=_intuit_after_load)
    keeper.load()
    return keeper.watch(app)


def persist_shopify(app, path: Path) -> PersistentState:
    keeper = PersistentState(app.sandbox, path, SHOPIFY_FIELDS)
    keeper.load()
    return keeper.watch(app)
