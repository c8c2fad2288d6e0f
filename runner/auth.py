"""Who may call: the daemon's token (a file in the home, owner-only; sent by clients as call
metadata over TCP) and a job's reporter token (the store keeps only its hash)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import grpc

TOKEN_FILE = "auth-token"
TOKEN_ENV = "VISIONYARD_TOKEN"
METADATA_KEY = "authorization"


def load_or_create_token(home: Path, given: str | None = None) -> str:
    """The daemon's token: `given`, else the home's token file, made (0600) on first start."""
    if given:
        return given
    path = home / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(home: Path) -> str | None:
    """The token a local client may use: the home's token file, when it can read it."""
    try:
        return (home / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def hash_token(token: str) -> str:
    """What the store keeps of a job's token: enough to check one, not to forge one."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


class TokenCredentials(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                       grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the daemon's token to every call a client makes."""

    def __init__(self, token: str):
        self.metadata = (METADATA_KEY, f"Bearer {token}")

    def _details(self, details):
        metadata = [*(details.metadata or ()), self.metadata]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base, metadata):
        self.method, self.timeout, self.credentials = base.method, base.timeout, base.credentials
        self.wait_for_ready, self.compression = base.wait_for_ready, base.compression
        self.metadata = metadata
