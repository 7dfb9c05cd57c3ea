"""newsimg.dedup: near-duplicate folding of ranked lists (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest

from newsimg import dedup


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_bursts_fold_into_their_best_shot() -> None:
    rng = np.random.default_rng(0)
    shots = unit(rng.standard_normal((3, 64)))
    # ranked: A, A', B, A'', C, B'  (primes: tiny perturbations of the same shot)
    order = [0, 0, 1, 0, 2, 1]
    vectors = unit(shots[order] + 0.01 * rng.standard_normal((6, 64)))
    groups = dedup.fold(vectors, 0.95)
    assert groups == [
        dedup.Group(0, (1, 3)),
        dedup.Group(2, (5,)),
        dedup.Group(4, ()),
    ]
    assert [g.size for g in groups] == [3, 2, 1]
    assert sorted(dedup.unfold(groups)) == list(range(6))


def test_threshold_one_folds_only_exact_copies_and_zero_items() -> None:
    rng = np.random.default_rng(1)
    v = unit(rng.standard_normal((4, 16)))
    assert [g.lead for g in dedup.fold(v, 1.0)] == [0, 1, 2, 3]
    assert dedup.fold(np.zeros((0, 16)), 0.9) == []
    with pytest.raises(ValueError, match="threshold"):
        dedup.fold(v, 0.0)


def test_a_chain_does_not_fold_far_ends() -> None:
    """Kept results are compared only with kept ones: a slow pan keeps its far end."""
    angles = np.radians([0, 10, 20, 30])
    v = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # neighbours at cos 10 deg = 0.985; 0 and 20 deg at 0.940
    groups = dedup.fold(v, 0.95)
    assert groups == [dedup.Group(0, (1,)), dedup.Group(2, (3,))]
