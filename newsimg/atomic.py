"""Kept for imports: the atomic commit lives in :mod:`newsimg.store.commit`."""

from newsimg.store.commit import atomic_path, write_text

__all__ = ["atomic_path", "write_text"]
