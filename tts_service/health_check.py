"""Health probe for containers: exits 0 when the local server reports SERVING, else 1.

`python -m tts_service.health_check [HOST:PORT]` asks the standard gRPC health service, so the
image needs no extra binary; the address defaults to 127.0.0.1 and $TTS_PORT.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_TIMEOUT_S = 3.0


def is_serving(address: str, timeout_s: float = _TIMEOUT_S) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else f"127.0.0.1:{os.environ.get('TTS_PORT', '50051')}"
    serving = is_serving(address)
    if not serving:
        print(f"{address} is not serving", file=sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
