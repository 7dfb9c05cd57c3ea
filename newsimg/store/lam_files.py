"""The LAM folder's format, saved and loaded without Lightning (built by newsimg.alignment).

- ``lam.json``: the :class:`newsimg.alignment.LamConfig` fields (width, dim, classes, renormalize);
- ``lam.safetensors``: the module's state dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from newsimg.errors import InputError
from newsimg.store.commit import atomic_path

CONFIG, WEIGHTS = "lam.json", "lam.safetensors"
CONFIG_KEYS = {"width", "dim", "classes", "renormalize"}


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

    folder = Path(folder)
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
    try:
        weights = load_file(weights_path)
    except (SafetensorError, OSError) as err:
        raise InputError(f"{weights_path} is not a readable safetensors file: {err}") from None
    return config, weights
