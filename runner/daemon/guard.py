"""What stands between a request and the servicers: the daemon's token, and a clear answer.

- TCP requires the daemon's token (call metadata ``authorization: Bearer <token>``), compared in
  constant time; without it, or with a wrong one, a call gets ``UNAUTHENTICATED``. The unix
  socket needs none: its file is the owner's only. The health check is open to anyone who can
  connect, and so are the ``Reporter`` calls (``Report``, and ``Fetch``/``Upload`` of a job on
  another node), which carry the job's own token instead.
- Every answer is bounded and never ``UNKNOWN``: a servicer's abort message is cut to
  ``MAX_DETAILS`` characters, and an exception a servicer did not expect becomes ``INTERNAL``
  with one line naming it (the traceback goes to the daemon's log).
- A request that is not the message its method takes (corrupt or truncated bytes, nesting past
  protobuf's depth limit, a string that is not UTF-8) gets ``INVALID_ARGUMENT``: every handler
  is given the raw bytes and the guard parses them, each message of a request stream as it
  arrives, on every method of every service and server.

The token is equivalent to running code as the daemon's user (with it, a client can add a repo
whose command the daemon runs), the way access to the Docker socket is.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from typing import Any, Callable

import grpc
import grpc.aio
from grpc._cython.cygrpc import ExecuteBatchError  # an aio server's answer to a call that already ended

from runner.auth import METADATA_KEY, TOKEN_FILE

log = logging.getLogger("visionyard.daemon")

MAX_DETAILS = 2000
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/visionyard.v1.Reporter/Report",
                          "/visionyard.v1.Reporter/Fetch", "/visionyard.v1.Reporter/Upload"})


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
    """Whether `exc` ends a call that needs no other answer: the servicer's own abort (its code and
    message already stand), a request stream's end on a call that was cancelled (by its client,
    or by the server's stop), an answer to a call that had already ended."""
    if isinstance(exc, grpc.aio.AbortError):
        return True
    is_active = getattr(context, "is_active", None)
    if isinstance(exc, grpc.RpcError) and is_active is not None and not is_active():
        return True
    if isinstance(exc, ExecuteBatchError):  # a plain handler's answer on an aio server, after its call ended
        return True
    code = getattr(context, "code", None)  # the sync server's context; the aio one raises AbortError
    return code is not None and code() is not None and code() != grpc.StatusCode.OK


def _internal(exc: Exception, method: str) -> str:
    log.error("%s failed on an unexpected error", method, exc_info=exc)
    return bounded(f"{method} failed: {type(exc).__name__}: {exc}", 500)


class _Malformed(Exception):
    """Bytes that are not the request message their method takes."""


def _parser(deserializer: Callable | None) -> Callable[[bytes], Any]:
    """The method's request parser, which raises `_Malformed` for bytes that don't parse (corrupt,
    truncated, nested too deep, a string field that is not UTF-8)."""
    if deserializer is None:
        return lambda data: data
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", "request")

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 (whatever the parser says, the bytes are the client's)
            reason = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__
            raise _Malformed(bounded(f"the request is not a valid {name} message ({reason})", 500)) from None
    return parse


def _parsed(requests, parse: Callable, context):
    """A request stream's messages, each parsed as it arrives; a malformed one ends the call."""
    for data in requests:
        try:
            request = parse(data)
        except _Malformed as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        yield request


async def _async_parsed(requests, parse: Callable, context):
    async for data in requests:
        try:
            request = parse(data)
        except _Malformed as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        yield request


def _guarded(behavior: Callable, kind: str, method: str, parse: Callable) -> Callable:
    """`behavior` (of `kind`, e.g. "stream_unary") given parsed requests (bytes that don't parse
    end the call INVALID_ARGUMENT) and a bounded context, its unexpected exceptions turned into
    INTERNAL."""
    request_streaming, response_streaming = kind.startswith("stream_"), kind.endswith("_stream")
    if inspect.isasyncgenfunction(behavior) or inspect.iscoroutinefunction(behavior):
        def argument(request, context):
            return _async_parsed(request, parse, context) if request_streaming else parse(request)

        async def fail(exc: Exception, context):
            if _aborted(exc, context):
                raise exc
            if isinstance(exc, _Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            await context.abort(grpc.StatusCode.INTERNAL, _internal(exc, method))

        if inspect.isasyncgenfunction(behavior):
            async def async_stream(request, context):
                try:
                    async for item in behavior(argument(request, context), _AioBoundedContext(context)):
                        yield item
                except Exception as exc:  # noqa: BLE001 (cancellation is a BaseException: it passes)
                    await fail(exc, context)
            return async_stream

        async def async_unary(request, context):
            try:
                return await behavior(argument(request, context), _AioBoundedContext(context))
            except Exception as exc:  # noqa: BLE001
                await fail(exc, context)
        return async_unary

    def sync_argument(request, context):
        return _parsed(request, parse, context) if request_streaming else parse(request)

    def sync_fail(exc: Exception, context):
        if _aborted(exc, context):
            raise exc
        if isinstance(exc, _Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        context.abort(grpc.StatusCode.INTERNAL, _internal(exc, method))

    if response_streaming:
        def stream(request, context):
            try:
                yield from behavior(sync_argument(request, context), _BoundedContext(context))
            except Exception as exc:  # noqa: BLE001
                sync_fail(exc, context)
        return stream

    def unary(request, context):
        try:
            return behavior(sync_argument(request, context), _BoundedContext(context))
        except Exception as exc:  # noqa: BLE001
            sync_fail(exc, context)
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
    """The handler with every behavior guarded, given the request's raw bytes (grpc's own parse
    would answer a malformed request UNKNOWN or INTERNAL, and on a request stream of a sync server
    would leave the call unfinished: its stop would wait for it forever)."""
    if handler is None:
        return None
    parse = _parser(handler.request_deserializer)
    guarded = {kind: _guarded(getattr(handler, kind), kind, method, parse)
               for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
               if getattr(handler, kind) is not None}
    serializer = handler.response_serializer
    if handler.response_streaming:
        serializer = _passing_bytes(serializer)
    return handler._replace(request_deserializer=None, response_serializer=serializer, **guarded)


def _refuse(code: grpc.StatusCode, message: str):
    def refuse(request, context):
        context.abort(code, message)
    return grpc.unary_unary_rpc_method_handler(refuse)
