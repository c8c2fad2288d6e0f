"""What stands between a request and the servicers: the daemon's token, and a clear answer.

- TCP requires the daemon's token (call metadata ``authorization: Bearer <token>``), compared in
  constant time; without it, or with a wrong one, a call gets ``UNAUTHENTICATED``. The unix
  socket needs none: its file is the owner's only. The health check is open to anyone who can
  connect, and so are the ``Reporter`` calls (``Report``, and ``Fetch``/``Upload`` of a job on
  another node), which carry the job's own token instead.
- Every answer is bounded and never ``UNKNOWN``: a servicer's abort message is cut to
  ``MAX_DETAILS`` characters, and an exception a servicer did not expect becomes ``INTERNAL``
  with one line naming it (the traceback goes to the daemon's log).

The token is equivalent to running code as the daemon's user (with it, a client can add a repo
whose command the daemon runs), the way access to the Docker socket is.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Callable

import grpc
import grpc.aio

log = logging.getLogger("visionyard.daemon")

TOKEN_FILE = "auth-token"
TOKEN_ENV = "VISIONYARD_TOKEN"
METADATA_KEY = "authorization"
MAX_DETAILS = 2000
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/visionyard.v1.Reporter/Report",
                          "/visionyard.v1.Reporter/Fetch", "/visionyard.v1.Reporter/Upload"})


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


def bounded(text: str, limit: int = MAX_DETAILS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 40] + f"… ({len(text) - limit + 40} more characters)"


class _BoundedContext:
    """The servicer's context, whose `abort` keeps its message short."""

    def __init__(self, context):
        self._context = context

    def abort(self, code, details):
        self._context.abort(code, bounded(details))

    def __getattr__(self, name):
        return getattr(self._context, name)


class _AioBoundedContext(_BoundedContext):
    async def abort(self, code, details):
        await self._context.abort(code, bounded(details))


def _aborted(exc: Exception, context) -> bool:
    """Whether `exc` is the servicer's own abort (its code and message already stand)."""
    if isinstance(exc, grpc.aio.AbortError):
        return True
    code = getattr(context, "code", None)  # the sync server's context; the aio one raises AbortError
    return code is not None and code() is not None and code() != grpc.StatusCode.OK


def _internal(exc: Exception, method: str) -> str:
    log.error("%s failed on an unexpected error", method, exc_info=exc)
    return bounded(f"{method} failed: {type(exc).__name__}: {exc}", 500)


def _guarded(behavior: Callable, streaming: bool, method: str) -> Callable:
    if inspect.isasyncgenfunction(behavior):
        async def async_stream(request, context):
            try:
                async for item in behavior(request, _AioBoundedContext(context)):
                    yield item
            except Exception as exc:  # noqa: BLE001 (cancellation is a BaseException: it passes)
                if _aborted(exc, context):
                    raise
                await context.abort(grpc.StatusCode.INTERNAL, _internal(exc, method))
        return async_stream

    if inspect.iscoroutinefunction(behavior):
        async def async_unary(request, context):
            try:
                return await behavior(request, _AioBoundedContext(context))
            except Exception as exc:  # noqa: BLE001
                if _aborted(exc, context):
                    raise
                await context.abort(grpc.StatusCode.INTERNAL, _internal(exc, method))
        return async_unary

    def fail(exc: Exception, context):
        if _aborted(exc, context):
            raise exc
        context.abort(grpc.StatusCode.INTERNAL, _internal(exc, method))

    if streaming:
        def stream(request, context):
            try:
                yield from behavior(request, _BoundedContext(context))
            except Exception as exc:  # noqa: BLE001
                fail(exc, context)
        return stream

    def unary(request, context):
        try:
            return behavior(request, _BoundedContext(context))
        except Exception as exc:  # noqa: BLE001
            fail(exc, context)
    return unary


def _passing_bytes(serializer: Callable | None) -> Callable:
    """A stream's response serializer that sends what is already serialized as it is."""
    def serialize(message):
        return message if isinstance(message, bytes) else serializer(message)
    return serialize


class Guard(grpc.ServerInterceptor):
    """Bounded answers on every server; the token check on the TCP one (`token` given)."""

    def __init__(self, token: str | None = None):
        self.expected = f"Bearer {token}".encode() if token else None

    def refusal(self, handler_call_details):
        """The answer to a call without the token, or None to let it through."""
        if self.expected is None or handler_call_details.method in OPEN_METHODS:
            return None
        presented = dict(handler_call_details.invocation_metadata or ()).get(METADATA_KEY, "")
        if hmac.compare_digest(str(presented).encode(), self.expected):
            return None
        return _refuse(grpc.StatusCode.UNAUTHENTICATED,
                       "missing or wrong token: pass --token or set VISIONYARD_TOKEN (the daemon's "
                       f"token is in its home, {TOKEN_FILE})")

    def intercept_service(self, continuation, handler_call_details):
        return self.refusal(handler_call_details) or _wrap(continuation(handler_call_details),
                                                           handler_call_details.method)


class AioGuard(grpc.aio.ServerInterceptor):
    """The same guard on an asyncio server: plain functions run on its thread pool, coroutines
    and async generators on its loop."""

    def __init__(self, token: str | None = None):
        self.guard = Guard(token)

    async def intercept_service(self, continuation, handler_call_details):
        return self.guard.refusal(handler_call_details) or _wrap(await continuation(handler_call_details),
                                                                 handler_call_details.method)


def _wrap(handler, method: str):
    if handler is None:
        return None
    if handler.unary_unary:
        return handler._replace(unary_unary=_guarded(handler.unary_unary, False, method))
    if handler.stream_unary:
        return handler._replace(stream_unary=_guarded(handler.stream_unary, False, method))
    if handler.unary_stream:
        return handler._replace(unary_stream=_guarded(handler.unary_stream, True, method),
                                response_serializer=_passing_bytes(handler.response_serializer))
    return handler


def _refuse(code: grpc.StatusCode, message: str):
    def refuse(request, context):
        context.abort(code, message)
    return grpc.unary_unary_rpc_method_handler(refuse)


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
