"""Near-duplicate suppression for ranked image lists (YFCC holds bursts of near-identical shots).

A result whose cosine similarity to a higher-ranked kept result is above a threshold is folded
into the first such result: the list keeps one representative per burst, best first, and each
representative carries the ranks it stands for. The serve app folds its answers this way; the
gallery and the export can call :func:`fold` on their own top-k lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Group:
    """One kept result (``lead``) and the lower-ranked ones folded into it, as input positions."""

    lead: int
    folded: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return 1 + len(self.folded)


def fold(vectors: np.ndarray, threshold: float) -> list[Group]:
    """Greedy folding of a ranked list: ``vectors`` (n, d), L2-normalised, best first.

    Position i joins the first kept position j < i with ``cos(i, j) > threshold``; otherwise it is
    kept itself. Kept positions are compared only with kept positions, so a chain of small steps
    (a slow pan) does not fold two shots that are far apart. Returns the groups in rank order.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], not {threshold}")
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0:
        return []
    sims = vectors @ vectors.T
    kept: list[int] = []
    folded: dict[int, list[int]] = {}
    for i in range(n):
        if kept:
            close = np.flatnonzero(sims[i, kept] > threshold)
            if len(close):
                folded[kept[close[0]]].append(i)
                continue
        kept.append(i)
        folded[i] = []
    return [Group(j, tuple(folded[j])) for j in kept]


def unfold(groups: list[Group]) -> list[int]:
    """Every position of ``groups`` once, lead first then its folded ones (a check and a helper
    for callers that expand a fold)."""
    return [p for g in groups for p in (g.lead, *g.folded)]
