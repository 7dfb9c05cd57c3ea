"""The storage layer: one atomic commit for every artifact kind, crash-safe.

Each artifact kind is written in a child process whose commit dies (``os._exit``) between
writing and renaming: the target is then absent (or still the old version), what is left is a
hidden temporary that no reader lists, and :func:`commit.remove_temps` clears it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from newsimg.errors import InputError
from newsimg.store import commit, index_files, lam_files, shards, units
from tests.conftest import ROOT

CRASH = 17

# the writer of each artifact kind, as code run in the child (``out`` is its folder)
WRITERS = {
    "shard": """
        from newsimg.store.shards import ImageRow, Failure, write_shard
        write_shard(out, "yfcc", 0, [ImageRow("a", "yfcc", 1, b"jpeg", 2, 3)],
                    [Failure("b", "yfcc", "not_found")])
    """,
    "unit": """
        import numpy as np, pyarrow as pa
        from newsimg.store.units import write_unit
        keys = pa.table({"key": ["a", "b"], "source": ["yfcc", "yfcc"]})
        write_unit(out, "unit-0", keys, np.ones((2, 4), np.float16), ["", ""], b"{}")
    """,
    "index": """
        import pyarrow as pa
        from newsimg.store.index_files import write_index
        plan = {"kind": "exact", "reason": "test", "n": 1, "dim": 4}
        write_index(out / "index", manifest={"plan": plan, "embeddings": "e"},
                    keys=pa.table({"key": ["a"], "source": ["yfcc"]}))
    """,
    "lam": """
        import torch
        from newsimg.alignment import LAM, LamConfig, save_lam
        save_lam(LAM(LamConfig(width=8, dim=4)), out / "lam")
    """,
    "results": """
        import pyarrow as pa
        from newsimg.store.results import RESULTS, write_results
        write_results(out / "r.parquet", RESULTS.empty_table())
    """,
    "model": """
        from newsimg import clip
        clip.save_model(clip.make_tiny(0), out / "base")
    """,
    "metrics": """
        from newsimg.store.commit import write_text
        write_text(out / "m.json", '{"new": 1}')
    """,
}


def crash_while_committing(kind: str, out: Path, at: int) -> None:
    """Run ``kind``'s writer in a child whose ``at``-th rename never happens (the process
    dies first)."""
    code = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from newsimg.store import commit
        calls = []
        def crash(tmp, final):
            calls.append(final)
            if len(calls) == {at}:
                os._exit({CRASH})
            os.replace(tmp, final)
        commit._rename = crash
        out = Path({str(out)!r})
        """
    ) + textwrap.dedent(WRITERS[kind])
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == CRASH, proc.stderr


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if commit.is_temp(p))


@pytest.mark.parametrize("at", [1, 2, 3])
def test_a_shard_is_complete_or_absent(tmp_path: Path, at: int) -> None:
    crash_while_committing("shard", tmp_path, at)
    assert shards.list_shards(tmp_path) == []  # the image parquet is committed last
    assert len(temps(tmp_path)) == 4 - at  # stats, failures, images: renamed in that order
    assert shards.remove_temp_files(tmp_path, "yfcc", 1) == 0
    assert shards.remove_temp_files(tmp_path, "yfcc", 0) == 4 - at
    assert temps(tmp_path) == []


@pytest.mark.parametrize("at", [1, 2])
def test_a_unit_is_done_or_absent(tmp_path: Path, at: int) -> None:
    crash_while_committing("unit", tmp_path, at)
    assert units.done_units(tmp_path) == set()
    assert units.made_from_of(tmp_path, "unit-0") is None
    assert temps(tmp_path)
    assert units.remove_unit_temps(tmp_path, "unit-0") == 1
    assert temps(tmp_path) == []


def test_an_index_is_whole_or_absent(tmp_path: Path) -> None:
    crash_while_committing("index", tmp_path, 1)
    assert not (tmp_path / "index").exists()
    with pytest.raises(InputError, match="is not an index folder"):
        index_files.read_manifest(tmp_path / "index")
    [left] = temps(tmp_path)
    assert left.startswith(".index.")
    assert (tmp_path / left / "index.json").is_file()
    assert commit.remove_temps(tmp_path, "index") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_lam_is_whole_or_absent(tmp_path: Path) -> None:
    crash_while_committing("lam", tmp_path, 1)
    with pytest.raises(InputError, match=r"lam\.json is missing"):
        lam_files.read_lam(tmp_path / "lam")
    assert temps(tmp_path)
    assert commit.remove_temps(tmp_path, "lam") == 1


def test_a_model_folder_is_whole_or_absent(tmp_path: Path) -> None:
    crash_while_committing("model", tmp_path, 1)
    assert not (tmp_path / "base").exists()
    assert commit.remove_temps(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_results_and_metrics_keep_their_old_version(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"old": 1}')
    crash_while_committing("metrics", tmp_path, 1)
    assert json.loads((tmp_path / "m.json").read_text()) == {"old": 1}
    crash_while_committing("results", tmp_path, 1)
    assert not (tmp_path / "r.parquet").exists()
    assert len(temps(tmp_path)) == 2
    assert commit.remove_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_remove_temps_matches_whole_names(tmp_path: Path) -> None:
    for name in (".yfcc-00001.parquet.1-ab.tmp", ".yfcc-000010.parquet.1-ab.tmp", "yfcc.tmp"):
        (tmp_path / name).write_text("x")
    assert commit.remove_temps(tmp_path, "yfcc-00001") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".yfcc-000010.parquet.1-ab.tmp",
        "yfcc.tmp",
    ]


def test_a_results_table_of_another_schema_is_refused(tmp_path: Path) -> None:
    from newsimg.store.results import write_results

    with pytest.raises(ValueError, match="schema"):
        write_results(tmp_path / "r.parquet", pa.table({"article_id": ["1"], "rank": [1]}))
    assert list(tmp_path.iterdir()) == []


def test_units_read_back_as_written(tmp_path: Path) -> None:
    keys = pa.table({"key": ["a", "b", "c"], "source": ["yfcc"] * 3})
    emb = np.arange(12, dtype=np.float16).reshape(3, 4)
    assert units.write_unit(tmp_path, "u", keys, emb, ["", "bad: x", ""], b"made") == 1
    vectors = units.Vectors(tmp_path)
    np.testing.assert_array_equal(vectors.take(np.array([1, 0])), emb[[2, 0]].astype(np.float32))
    assert vectors.keys()["key"].to_pylist() == ["a", "c"]
    assert units.made_from_of(tmp_path, "u") == b"made"
