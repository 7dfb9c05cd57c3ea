"""params.yaml validation: bad values stop a stage before any work, naming key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from newsimg.errors import ParamsError
from newsimg.params import SECTIONS, TrainParams, load_section, parse_section
from tests.conftest import ROOT, load_stage


def test_repository_params_are_valid() -> None:
    for name in SECTIONS:
        load_section(name, ROOT / "params.yaml")
    train = load_section("train", ROOT / "params.yaml")
    assert isinstance(train, TrainParams)
    assert train.loss_weights.kl == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("section", "raw", "message"),
    [
        ("fetch", {"source": "x", "bogus": 1}, "fetch.bogus = 1: Extra inputs are not permitted"),
        ("embed", {"batch_size": -8}, "embed.batch_size = -8: Input should be greater than 0"),
        ("retrieve", {"k": 0}, "retrieve.k = 0: Input should be greater than 0"),
        ("train", {"lr": "fast"}, "train.lr = 'fast'"),
        ("train", {"epochs": "6"}, "train.epochs = '6': Input should be a valid integer"),
        ("train", {"loss_weights": {"kl": -1}}, "train.loss_weights.kl = -1"),
        ("train", {"loss_weights": {"contrastive": 0, "kl": 0, "ce": 0}}, "all loss weights are 0"),
        ("score", {"ks": []}, "score.ks = []"),
        ("fetch", {"source": "x", "max_failure_rate": 1.5}, "fetch.max_failure_rate = 1.5"),
        ("leads", {"extractor": "regex"}, "leads.extractor = 'regex'"),
    ],
)
def test_bad_values_name_key_and_value(section: str, raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_section(section, raw)
    assert message in str(err.value)


def test_missing_params_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="does not exist"):
        load_section("model", tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section("model", bad)


def _params_with(tmp_path: Path, section: str, **changes: object) -> Path:
    doc = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc[section].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_stage_exits_2_and_touches_nothing_on_bad_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "base"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("old output")
    params = _params_with(tmp_path, "model", dtype="float64")
    code = load_stage("model").main(["--params", str(params), "--out", str(out)])
    assert code == 2
    assert "model.dtype = 'float64'" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old output"


def test_stage_exits_2_on_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "index"
    code = load_stage("index").main(
        [
            "--params",
            str(ROOT / "params.yaml"),
            "--embeddings",
            str(tmp_path / "nope"),
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "--embeddings" in capsys.readouterr().err
    assert not out.exists()
