"""``python -m libs.grpc_call ADDRESS SERVICE/METHOD [JSON]``: call any Omni unary RPC with a
JSON request and print the JSON response (a small grpcurl for people without one)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import grpc
import omni
from google.protobuf import descriptor_pool, json_format, message_factory


def _load_all_protos() -> None:
    # Generated packages have no __init__.py, so walk the files rather than the packages.
    for root in map(Path, omni.__path__):
        for path in sorted(root.rglob("*_pb2.py")):
            relative = path.relative_to(root.parent).with_suffix("")
            importlib.import_module(".".join(relative.parts))


def call(address: str, method: str, body: str, timeout: float = 10.0) -> str:
    _load_all_protos()
    service_name, _, method_name = method.lstrip("/").rpartition("/")
    if not service_name:
        service_name, _, method_name = method.rpartition(".")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    rpc = service.methods_by_name[method_name]
    request_type = message_factory.GetMessageClass(rpc.input_type)
    response_type = message_factory.GetMessageClass(rpc.output_type)
    request = json_format.Parse(body or "{}", request_type())
    with grpc.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = stub(request, timeout=timeout)
    return json_format.MessageToJson(response, preserving_proto_field_name=True)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(call(argv[1], argv[2], argv[3] if len(argv) > 3 else "{}"))
    except grpc.RpcError as error:
        print(json.dumps({"code": error.code().name, "details": error.details()}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
