"""Minimal safetensors reader/writer (no dependency on the `safetensors` package).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (padded with spaces to a
multiple of 8), then the raw little-endian tensor bytes. The header maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section) and may
hold "__metadata__" (string -> string). Tensors are written in sorted name order, back to back.
"""

from __future__ import annotations

import json
import struct
from typing import Dict, Optional, Tuple

import numpy as np

# safetensors dtype name -> numpy little-endian dtype (BF16 handled as raw uint16 bits)
_NP = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def float32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (NaN kept quiet)."""
    bits = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    out = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    out[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def bf16_bits_to_float32(b: np.ndarray) -> np.ndarray:
    return (b.astype("<u4") << 16).view("<f4")


def to_storage(array: np.ndarray, dtype: str) -> np.ndarray:
    """Converts a numpy array to the stored representation of `dtype`."""
    if dtype == "BF16":
        return float32_to_bf16_bits(np.asarray(array, dtype=np.float32))
    if dtype not in _NP:
        raise ValueError(f"dtype: expected one of {sorted(_NP)}, got {dtype!r}")
    return np.ascontiguousarray(array, dtype=_NP[dtype])


def write_safetensors(path: str, tensors: Dict[str, Tuple[np.ndarray, str]],
                      metadata: Optional[Dict[str, str]] = None) -> None:
    """tensors: name -> (array, dtype name). Arrays are converted to that dtype."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array, dtype = tensors[name]
        stored = to_storage(array, dtype)
        raw = stored.tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(stored.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path: str) -> Tuple[Dict[str, Tuple[np.ndarray, str]], Dict[str, str]]:
    """Returns (name -> (array, dtype), metadata). BF16 arrays come back as float32 values."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} exceeds file size {len(data)}")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype = info["dtype"]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if dtype not in _NP:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype!r}")
        arr = np.frombuffer(body[begin:end], dtype=_NP[dtype])
        expected = int(np.prod(shape)) if shape else 1
        if arr.size != expected:
            raise ValueError(f"{path}: tensor {name}: {arr.size} elements, shape {shape} needs {expected}")
        arr = arr.reshape(shape)
        if dtype == "BF16":
            arr = bf16_bits_to_float32(arr)
        out[name] = (arr.copy(), dtype)
    return out, metadata
