"""The LAM folder's format, saved and loaded without Lightning (built by newsimg.alignment).

- ``lam.json``: the :class:`LamConfig` fields (width, dim, classes, renormalize);
- ``lam.safetensors``: the module's state dict.

Read as torch tensors (:func:`read_lam`, for :func:`newsimg.alignment.load_lam`) or as NumPy
arrays without torch (:func:`read_lam_arrays`, for :class:`newsimg.numpy_clip.NumpyLam`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from newsimg.errors import InputError
from newsimg.sources import N24NEWS_SECTIONS
from newsimg.store.commit import atomic_path
from newsimg.store.tensors import read_tensors

CONFIG, WEIGHTS = "lam.json", "lam.safetensors"
CONFIG_KEYS = {"width", "dim", "classes", "renormalize"}


@dataclass(frozen=True)
class LamConfig:
    """``lam.json``: the LAM's shape and options."""

    width: int  # text encoder width (input of the projection)
    dim: int  # joint embedding size
    classes: tuple[str, ...] = N24NEWS_SECTIONS
    renormalize: bool = False


def write_lam(out: Path, config: dict[str, Any], weights: dict[str, Any]) -> None:
    """Commit ``lam.safetensors`` + ``lam.json`` as one folder, swapped in whole."""
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(weights, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))


def read_lam(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, state dict) of a LAM folder; a missing or invalid one is an error naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config, weights_path = _read_config(Path(folder))
    try:
        weights = load_file(weights_path)
    except (SafetensorError, OSError) as err:
        raise InputError(f"{weights_path} is not a readable safetensors file: {err}") from None
    return config, weights


def read_lam_arrays(folder: Path) -> tuple[LamConfig, dict[str, np.ndarray]]:
    """(config, weights as float32 arrays) of a LAM folder, without torch; a missing or invalid
    one is an error naming it, as with :func:`read_lam`."""
    config, weights_path = _read_config(Path(folder))
    weights = read_tensors(weights_path)
    return LamConfig(**{**config, "classes": tuple(config["classes"])}), weights


def _read_config(folder: Path) -> tuple[dict[str, Any], Path]:
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    if not config_path.is_file():
        raise InputError(f"{folder} is not a LAM folder: {config_path} is missing")
    if not weights_path.is_file():
        raise InputError(f"{folder} is not a LAM folder: {weights_path} is missing")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{config_path} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or set(config) != CONFIG_KEYS:
        raise InputError(f"{config_path}: expected the keys {sorted(CONFIG_KEYS)}, got {config!r}")
    return config, weights_path
