"""What autofaiss 2.9.3 needs to run on current pyarrow, faiss and numpy (the peers' venv).

Imported by ``autofaiss_run.py`` before autofaiss; each shim fixes one break, none changes what
autofaiss computes:

1. ``pyarrow.hdfs``: autofaiss pins fsspec==2021.11.0, whose ``fsspec.implementations.hdfs``
   does ``from pyarrow.hdfs import HadoopFileSystem`` at import time; pyarrow removed that module
   (its class lives in ``pyarrow.fs``). A module of that name holding ``pyarrow.fs``'s class lets
   the import succeed; HDFS itself is never used here.
2. ``faiss.OPQMatrix(d, M=..., d2=...)``: faiss renamed the keyword ``M`` to ``M_in`` (SWIG
   keyword arguments follow the C++ parameter names), so autofaiss's OPQ indexes fail to build.
   The wrapper renames the keyword and passes everything else through.
3. ``json.dump`` of the index infos: autofaiss puts numpy floats (``np.float64``, etc.) into the
   dict it writes after the index is built, and numpy 2 scalars are not JSON serialisable. The
   shim gives autofaiss's ``quantize`` module a ``json`` whose ``dump``/``dumps`` turn numpy
   scalars into Python numbers.

This file imports nothing of newsimg: it runs under the peers' interpreter only.
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any


def _numpy_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_module() -> types.ModuleType:
    module = types.ModuleType("json")
    module.__dict__.update(json.__dict__)
    module.dump = lambda obj, fp, **kw: json.dump(obj, fp, default=_numpy_default, **kw)
    module.dumps = lambda obj, **kw: json.dumps(obj, default=_numpy_default, **kw)
    return module


def apply() -> None:
    """Install the three shims; call before importing autofaiss."""
    import faiss
    import pyarrow.fs

    if "pyarrow.hdfs" not in sys.modules:
        hdfs = types.ModuleType("pyarrow.hdfs")
        hdfs.HadoopFileSystem = pyarrow.fs.HadoopFileSystem
        sys.modules["pyarrow.hdfs"] = hdfs

    original = faiss.OPQMatrix
    if not getattr(original, "_newsimg_shim", False):

        def opq_matrix(*args: Any, **kwargs: Any) -> Any:
            if "M" in kwargs:
                kwargs["M_in"] = kwargs.pop("M")
            return original(*args, **kwargs)

        opq_matrix._newsimg_shim = True  # type: ignore[attr-defined]
        faiss.OPQMatrix = opq_matrix

    from autofaiss.external import quantize

    quantize.json = _json_module()
