"""gRPC health probe (grpc.health.v1) for the Omni services, used by docker-compose healthchecks.

Usage: python deploy/healthcheck.py PORT [HOST] [SERVICE]

HOST defaults to 127.0.0.1 and SERVICE to "" (the whole server). Prints the status and exits 0
when it is SERVING, 1 otherwise (including when the server cannot be reached), 2 on bad usage.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[1].isdigit():
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    port = int(argv[1])
    host = argv[2] if len(argv) > 2 else "127.0.0.1"
    service = argv[3] if len(argv) > 3 else ""
    target = f"{host}:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS
            )
    except grpc.RpcError as exc:
        print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{target}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
