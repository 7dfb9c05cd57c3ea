"""The licence policy: which of the pool's photos may be returned.

``retrieve.licences`` lists the codes a newsroom may print (a commercial publisher: no ``by-nc*``;
one that crops to 460x260: no ``*-nd``); None allows everything, the paper's setting. The
articles' own images (source ``newsimages``) are always allowed: they are the publisher's, and
the recall of the original is measured on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsimg.errors import InputError
from newsimg.metadata.licences import OWN
from newsimg.metadata.lookup import Metadata
from newsimg.store.names import NEWSIMAGES


def allowed_codes(licences: Sequence[str] | None) -> frozenset[str] | None:
    """The codes a policy allows, the articles' own images included; None: everything."""
    return None if licences is None else frozenset({*licences, OWN})


def pool_codes(keys: pa.Table, metadata: Metadata) -> list[str]:
    """The licence code of each row of a (key, source) table: ``own`` for NewsImages rows."""
    own = keys["key"].filter(pc.equal(keys["source"], NEWSIMAGES)).to_pylist()
    return metadata.licences(keys["key"].to_pylist(), own=own)


def allowed_mask(
    keys: pa.Table, metadata: Metadata, licences: Sequence[str] | None
) -> np.ndarray | None:
    """Per row of ``keys`` (key, source), whether the policy lets it be returned; None: all."""
    codes = allowed_codes(licences)
    if codes is None:
        return None
    return np.fromiter((c in codes for c in pool_codes(keys, metadata)), bool, keys.num_rows)


def check_results(
    paths: Sequence[Path], metadata: Metadata, licences: Sequence[str] | None
) -> None:
    """Fail, naming one, when a results file holds a photo the policy forbids (results made
    under another policy, or with other metadata): nothing is shown or exported from them."""
    codes = allowed_codes(licences)
    if codes is None:
        return
    for path in paths:
        table = pq.read_table(path, columns=["key", "source"])
        for key, code in zip(table["key"].to_pylist(), pool_codes(table, metadata), strict=True):
            if code not in codes:
                raise InputError(
                    f"{path.name} holds {key} (licence {code}), which retrieve.licences "
                    f"{', '.join(licences or [])} forbids: run retrieve again under the policy"
                )
