"""Token encryption at rest with MultiFernet: the first key encrypts, every key decrypts."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_box: MultiFernet | None = None


class TokenDecryptError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def configure(keys: list[str]) -> None:
    """Install the process-wide key ring (called by the app factory and the worker)."""
    global _box
    if not keys:
        raise ValueError("ENCRYPTION_KEYS needs at least one Fernet key")
    _box = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def _ring() -> MultiFernet:
    if _box is None:
        raise RuntimeError("crypto.configure() was not called")
    return _box


def encrypt(plaintext: str) -> str:
    return _ring().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _ring().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise TokenDecryptError("stored secret does not decrypt with ENCRYPTION_KEYS") from exc


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the first key (for key rotation)."""
    return _ring().rotate(ciphertext.encode()).decode()
