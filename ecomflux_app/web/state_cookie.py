"""A signed, short-lived first-party cookie holding an OAuth state nonce: binds a flow to the browser that began it."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


@dataclass(frozen=True)
class StateCookie:
    """One OAuth flow's cookie: its name, path, signing salt and lifetime (seconds)."""

    name: str
    path: str
    salt: str
    max_age: int

    def _signer(self) -> URLSafeTimedSerializer:
        # The salt keeps one flow's cookie from passing for any other value signed with SECRET_KEY.
        return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=self.salt)

    @staticmethod
    def _secure() -> bool:
        return current_app.config["APP_URL"].startswith("https://")

    def set(self, response, nonce: str) -> None:
        # Lax: the cookie still comes back on the provider's top-level GET redirect to the callback.
        response.set_cookie(self.name, self._signer().dumps(nonce), max_age=self.max_age, path=self.path,
                            httponly=True, samesite="Lax", secure=self._secure())

    def clear(self, response) -> None:
        response.delete_cookie(self.name, path=self.path, httponly=True, samesite="Lax", secure=self._secure())

    def nonce(self) -> tuple[str | None, str]:
        """The nonce from this browser's cookie, or None and why the cookie is unusable."""
        raw = request.cookies.get(self.name)
        if not raw:
            return None, "missing"
        try:
            nonce = self._signer().loads(raw, max_age=self.max_age)
        except SignatureExpired:
            return None, "expired"
        except BadSignature:
            return None, "invalid"
        return (nonce, "ok") if isinstance(nonce, str) and nonce else (None, "invalid")

    def check(self, state: str | None) -> tuple[bool, str]:
        """Whether this browser's cookie holds `state` (constant-time), and the problem when it does not."""
        nonce, problem = self.nonce()
        if nonce is None:
            return False, problem
        if not hmac.compare_digest(nonce.encode(), (state or "").encode()):
            return False, "does not match state"
        return True, "ok"
