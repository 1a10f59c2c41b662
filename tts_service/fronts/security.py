"""Who may call: TLS and mutual-TLS credentials, and bearer-token authentication."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import grpc

from tts_service.errors import Unauthenticated

_SCHEME = "bearer "


class SecurityConfigError(Exception):
    """TLS or token settings are unusable; the message says which file and why."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise SecurityConfigError(f"cannot read the {what} {path}: {err.strerror}") from err


def server_credentials(cert: Path | None, key: Path | None,
                       client_ca: Path | None) -> grpc.ServerCredentials | None:
    """TLS credentials (mutual when `client_ca` is given), or None for plaintext."""
    if cert is None and key is None:
        if client_ca is not None:
            raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise SecurityConfigError("TLS needs both --tls-cert and --tls-key")
    chain = _read(cert, "TLS certificate")
    private_key = _read(key, "TLS key")
    if b"-----BEGIN" not in chain or b"-----BEGIN" not in private_key:
        raise SecurityConfigError(f"{cert} and {key} must be PEM files")
    roots = _read(client_ca, "client CA bundle") if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(private_key, chain)], root_certificates=roots, require_client_auth=roots is not None)


def load_token(token_file: Path | None) -> str | None:
    """The bearer token from --token-file, else from env TTS_TOKEN; None disables auth."""
    token = _read(token_file, "token file").decode().strip() if token_file else \
        os.environ.get("TTS_TOKEN", "").strip()
    if token_file is not None and not token:
        raise SecurityConfigError(f"the token file {token_file} is empty")
    return token or None


def bearer_token_matches(authorization: object, token: bytes) -> bool:
    """Whether an `authorization` value is `Bearer <token>` (gRPC metadata or HTTP header)."""
    if not isinstance(authorization, str) or authorization[:len(_SCHEME)].lower() != _SCHEME:
        return False
    # Constant time: the comparison must not reveal how much of a guess was right.
    return hmac.compare_digest(authorization[len(_SCHEME):].strip().encode(), token)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls to `protected_services` whose `authorization` is not `Bearer <token>`.

    Health and reflection are not protected: load balancers and orchestrators probe health
    without secrets, and reflection only describes the public API (grpcurl's `list`).
    """

    def __init__(self, token: str, protected_services: Collection[str],
                 on_refused: Callable[[str, Any, Exception], object] | None = None) -> None:
        self._token = token.encode()
        self._prefixes = tuple(f"/{service}/" for service in protected_services)
        # Told (method path, metadata, error) of each refusal, so refused calls are logged
        # and counted like the others.
        self._on_refused = on_refused

    def _authorized(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                return bearer_token_matches(value, self._token)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        if handler is None or not method.startswith(self._prefixes) or \
                self._authorized(metadata):
            return handler
        if self._on_refused is not None:
            self._on_refused(method, metadata, Unauthenticated(_REFUSAL))
        return _refusal(handler)


_REFUSAL = ("missing or wrong bearer token: send metadata 'authorization: Bearer <token>' "
            "(tts-grpc-client: --token-file or TTS_TOKEN)")


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSAL)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSAL)
        yield  # pragma: no cover - makes this an async generator

    serializers = dict(request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **serializers)
    return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
