#!/usr/bin/env python3
"""An Open Inference Protocol gRPC client built on Debian's python3-grpcio, independent of the server's code.

Generates Python stubs from protos/grpc_service.proto at run time (grpc_tools.protoc into a temporary
directory), then calls ServerLive, ModelMetadata and ModelInfer on a continuous model with a deterministic
window (or the values given with --input-json).

  /usr/bin/python3 tests/peers/grpc_client.py --target localhost:8001 --model sensor --time 16
  /usr/bin/python3 tests/peers/grpc_client.py --target localhost:8001 --model sensor --json   # machine-readable

Exit codes: 0 success, 2 a call failed, 3 grpcio or grpc_tools is missing.
"""

import argparse
import importlib
import json
import math
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "protos", "grpc_service.proto"))


def load_stubs(proto_path):
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc
    except ImportError as e:
        sys.stderr.write(f"grpc_client.py needs python3-grpcio and python3-grpc-tools (apt-get install python3-grpcio python3-grpc-tools): {e}\n")
        sys.exit(3)
    out_dir = tempfile.mkdtemp(prefix="oip-stubs-")
    proto_dir = os.path.dirname(os.path.abspath(proto_path))
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", os.path.abspath(proto_path)])
    if rc != 0:
        sys.stderr.write(f"grpc_tools.protoc failed with exit code {rc} on {proto_path}\n")
        sys.exit(3)
    sys.path.insert(0, out_dir)
    name = os.path.splitext(os.path.basename(proto_path))[0]
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")


def make_window(batch, time, channels):
    """Smooth per-channel signals, the same on every run."""
    return [math.sin(0.25 * t + c) + 0.05 * ((b * 7 + t * 3 + c) % 5)
            for b in range(batch) for t in range(time) for c in range(channels)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="localhost:8001", help="host:port of the gRPC listener")
    parser.add_argument("--model", default="sensor")
    parser.add_argument("--version", default="")
    parser.add_argument("--variant", default="", help="parameters.variant, e.g. window-0.75")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--time", type=int, default=16)
    parser.add_argument("--input-json", default="", help="a JSON array of input values (row-major [batch, time, channels])")
    parser.add_argument("--proto", default=DEFAULT_PROTO)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds, sent as grpc-timeout")
    parser.add_argument("--json", action="store_true", help="print one JSON document with the input and every output")
    args = parser.parse_args()

    pb2, pb2_grpc = load_stubs(args.proto)
    import grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            live = stub.ServerLive(pb2.ServerLiveRequest(), timeout=args.timeout)
            metadata = stub.ModelMetadata(pb2.ModelMetadataRequest(name=args.model, version=args.version), timeout=args.timeout)
            model_input = metadata.inputs[0]
            channels = model_input.shape[-1]
            values = json.loads(args.input_json) if args.input_json else make_window(args.batch, args.time, channels)
            if model_input.datatype != "FP32":
                raise SystemExit(f"this client sends FP32 windows; model input '{model_input.name}' is {model_input.datatype}")

            request = pb2.ModelInferRequest(model_name=args.model, model_version=args.version, id="python-peer")
            tensor = request.inputs.add()
            tensor.name = model_input.name
            tensor.datatype = "FP32"
            tensor.shape.extend([args.batch, args.time, channels])
            request.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
            if args.variant:
                request.parameters["variant"].string_param = args.variant
            response = stub.ModelInfer(request, timeout=args.timeout)
        except grpc.RpcError as e:
            sys.stderr.write(f"gRPC call failed: {e.code().name}: {e.details()}\n")
            sys.exit(2)

    outputs = []
    for tensor, raw in zip(response.outputs, response.raw_output_contents):
        if tensor.datatype == "FP32":
            data = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        elif tensor.datatype == "BOOL":
            data = [b != 0 for b in raw]
        else:
            data = list(raw)
        outputs.append({"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": data})

    # Round-trip the input through float32 so it states exactly what the server received.
    sent = list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))
    result = {
        "live": live.live,
        "model": {"name": metadata.name, "versions": list(metadata.versions), "platform": metadata.platform,
                  "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in metadata.inputs],
                  "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in metadata.outputs]},
        "response": {"model_name": response.model_name, "model_version": response.model_version, "id": response.id,
                     "variant": response.parameters["variant"].string_param if "variant" in response.parameters else ""},
        "input": {"shape": [args.batch, args.time, channels], "data": sent},
        "outputs": outputs,
    }
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return

    print(f"live: {live.live}")
    print(f"model {metadata.name} versions {list(metadata.versions)} input {model_input.name} {model_input.datatype} {list(model_input.shape)}")
    print(f"served by version {response.model_version}, variant {result['response']['variant']}")
    for o in outputs:
        preview = ", ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in o["data"][:6])
        print(f"  {o['name']} {o['datatype']} {o['shape']}: [{preview}{', ...' if len(o['data']) > 6 else ''}]")


if __name__ == "__main__":
    main()
