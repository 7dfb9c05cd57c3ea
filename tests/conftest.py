"""Shared fixtures: the repository root, stage scripts as modules, a tiny model folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_stage(name: str) -> ModuleType:
    """Import stages/NAME.py (the stage scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` model written as a self-contained folder, once per test session."""
    from newsimg import clip

    out = tmp_path_factory.mktemp("models") / "base"
    clip.save_model(clip.make_tiny(0), out)
    return out
