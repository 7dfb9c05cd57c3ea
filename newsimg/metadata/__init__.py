"""YFCC100M metadata: licences, credits and descriptions of the pool's photos.

- :mod:`~newsimg.metadata.licences`: licence URL -> code and version, credit lines;
- :mod:`~newsimg.metadata.readers`: the TSV (one stream) and SQLite (primary-key batches) forms;
- :mod:`~newsimg.metadata.build`: the metadata stage, one file per fetch shard;
- :mod:`~newsimg.metadata.lookup`: key -> licence, credit, title, tags for whoever shows photos;
- :mod:`~newsimg.metadata.policy`: ``retrieve.licences``, the rows a search may return.
"""

from newsimg.metadata.licences import (
    CC_CODES,
    CODES,
    OWN,
    UNKNOWN,
    credit_line,
    licence_label,
    licence_url,
    parse_licence_url,
)
from newsimg.metadata.lookup import Credit, Metadata
from newsimg.metadata.readers import PhotoMeta, SqliteMetadata, iter_tsv, tsv_to_sqlite

__all__ = [
    "CC_CODES",
    "CODES",
    "OWN",
    "UNKNOWN",
    "Credit",
    "Metadata",
    "PhotoMeta",
    "SqliteMetadata",
    "credit_line",
    "iter_tsv",
    "licence_label",
    "licence_url",
    "parse_licence_url",
    "tsv_to_sqlite",
]
