"""What the last ``dvc repro`` built, located from dvc.yaml: its ``vars`` and the stages' outs.

The serve app reads no path of its own: the model, LAM, index, shards, articles and stored
results are where dvc.yaml's stages write them (``${art}`` and friends resolved from ``vars``),
and the approaches are the ``retrieve`` stage's ``foreach`` items, each with its text column and
its encoder, exactly as retrieve runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsimg.errors import InputError

_VAR = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


@dataclass(frozen=True)
class Approach:
    """One retrieve item: the articles' text column it searches by and its text encoder."""

    name: str
    text: str  # "headline" or "headline_lead"
    encoder: Path  # the base model folder, or a LAM folder
    results: Path  # its stored top-k per article (artifacts/results/NAME.parquet)

    def uses_lam(self, model: Path) -> bool:
        return self.encoder.resolve() != model.resolve()


@dataclass(frozen=True)
class Artifacts:
    root: Path
    model: Path
    index: Path
    shards: Path
    articles: Path
    approaches: dict[str, Approach] = field(default_factory=dict)
    metadata: Path | None = None  # licences and credits (the metadata stage's folder), optional

    def missing(self) -> list[Path]:
        paths = [self.model, self.index, self.shards, self.articles]
        paths += [a.encoder for a in self.approaches.values()]
        return [p for p in paths if not p.exists()]


def _substitute(text: str, scope: dict[str, Any], where: str) -> str:
    def one(m: re.Match[str]) -> str:
        value: Any = scope
        for part in m[1].split("."):
            if not isinstance(value, dict) or part not in value:
                raise InputError(f"dvc.yaml: {where}: ${{{m[1]}}} is not defined")
            value = value[part]
        return str(value)

    for _ in range(8):  # a var may hold another (an item's "${art}/models/base")
        done = _VAR.sub(one, text)
        if done == text:
            return done
        text = done
    raise InputError(f"dvc.yaml: {where}: variables refer to each other in a loop")


def _first_out(stage: dict[str, Any], name: str) -> str:
    outs = stage.get("outs") or []
    if not outs:
        raise InputError(f"dvc.yaml: stage {name} has no outs")
    out = outs[0]
    return next(iter(out)) if isinstance(out, dict) else str(out)


def _cmd_arg(cmd: str, flag: str, where: str) -> str:
    parts = cmd.split()
    if flag not in parts or parts.index(flag) + 1 >= len(parts):
        raise InputError(f"dvc.yaml: {where}: the command has no {flag}")
    return parts[parts.index(flag) + 1]


def from_dvc(root: Path = Path("."), dvc_yaml: str = "dvc.yaml") -> Artifacts:
    """The artifacts of the pipeline at ``root``, paths resolved against ``root``."""
    path = root / dvc_yaml
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: serve runs in the pipeline's folder") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from None
    scope: dict[str, Any] = {}
    for entry in doc.get("vars") or []:
        if isinstance(entry, dict):
            scope.update(entry)
    stages = doc.get("stages") or {}
    for name in ("model", "fetch", "leads", "index", "retrieve"):
        if name not in stages:
            raise InputError(f"{path}: no {name} stage")

    def out(name: str) -> Path:
        return root / _substitute(_first_out(stages[name], name), scope, f"stages.{name}.outs")

    retrieve = stages["retrieve"]
    approaches = {}
    for key, item in (retrieve.get("foreach") or {}).items():
        local = {**scope, "item": item, "key": key}
        where = f"stages.retrieve.foreach.{key}"
        cmd = _substitute(" ".join(str(retrieve["do"]["cmd"]).split()), local, where)
        approaches[key] = Approach(
            name=key,
            text=_cmd_arg(cmd, "--text", where),
            encoder=root / _cmd_arg(cmd, "--encoder", where),
            results=root / _cmd_arg(cmd, "--out", where),
        )
    if not approaches:
        raise InputError(f"{path}: stages.retrieve has no foreach items (the approaches)")
    return Artifacts(
        root=root,
        model=out("model"),
        index=out("index"),
        shards=out("fetch"),
        articles=out("leads"),
        approaches=approaches,
        metadata=out("metadata") if "metadata" in stages else None,
    )
