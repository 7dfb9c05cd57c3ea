"""Reading ``.safetensors`` files as NumPy arrays, without torch or the ``safetensors`` package.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N,
N bytes of JSON (``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` plus an optional
``__metadata__``), then the tensors' bytes, offsets counted from the end of the header. The file
is memory-mapped, so reading a few tensors of a large checkpoint (the text tower of a CLIP
folder) touches only their pages. Written by transformers (model folders) and by
:mod:`newsimg.store.lam_files` (LAM folders).

Measured on this project's 2-core machine: ``import safetensors.numpy`` costs about 0.3 s (it
loads its Rust extension), the reader below nothing beyond NumPy; and ``safetensors.numpy``
cannot read bfloat16, which NumPy lacks (here widened to float32 exactly).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from newsimg.errors import InputError

DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # widened to float32 by read_tensors (the top half of a float32)
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
MAX_HEADER = 100_000_000  # the format's own limit on the JSON header


def read_header(path: Path) -> tuple[dict[str, dict], int]:
    """(tensor name -> {dtype, shape, data_offsets}, offset of the data) of a safetensors file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise InputError(f"{path} is not a safetensors file: shorter than its header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise InputError(f"{path} is not a safetensors file: a {n}-byte header")
            header = json.loads(f.read(n))
    except OSError as err:
        raise InputError(f"cannot read {path}: {err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not a safetensors file: its header: {err}") from None
    if not isinstance(header, dict):
        raise InputError(f"{path} is not a safetensors file: its header is not an object")
    header.pop("__metadata__", None)
    return header, 8 + n


def read_tensors(
    path: Path, keep: Callable[[str], bool] = lambda name: True, *, float32: bool = True
) -> dict[str, np.ndarray]:
    """The tensors of ``path`` whose name ``keep`` accepts, as read-only arrays backed by the
    memory-mapped file. ``float32``: floating tensors come as float32 (float16 and bfloat16
    widened exactly, float64 rounded, float32 without a copy); otherwise as stored (bfloat16
    as its raw uint16)."""
    path = Path(path)
    header, start = read_header(path)
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot map {path}: {err}") from None
    out = {}
    for name, info in header.items():
        if not keep(name):
            continue
        try:
            kind, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            dtype = np.dtype(DTYPES[kind])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: tensor {name!r} has an unreadable entry {info!r}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or start + end > len(data) or begin < 0:
            raise InputError(f"{path}: tensor {name!r} {shape} {kind} does not fit its bytes")
        x = data[start + begin : start + end].view(dtype).reshape(shape)
        if float32 and kind == "BF16":
            x = (x.astype(np.uint32) << 16).view(np.float32)
        elif float32 and kind in ("F16", "F64"):
            x = x.astype(np.float32)
        out[name] = x
    return out
