"""The storage layer: every on-disk artifact's format, and the one atomic commit they share.

Compute modules (fetch, embed, index, lam, retrieve, ...) read and write artifacts through these
modules and depend on them, not on each other:

- :mod:`~newsimg.store.commit`: temporary name, fsync, ``os.replace``, temporary cleanup;
- :mod:`~newsimg.store.names`: the image sources' names;
- :mod:`~newsimg.store.shards`: fetch's Parquet image shards;
- :mod:`~newsimg.store.units`: embed's units (float16 vectors + keys) and the pool's vectors;
- :mod:`~newsimg.store.index_files`: the index folder;
- :mod:`~newsimg.store.lam_files`: the trained LAM folder;
- :mod:`~newsimg.store.results`: retrieval results and the per-article table.

Nothing here imports Lightning, DVC, or a model library at import time.
"""
