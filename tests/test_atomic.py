"""Atomic outputs: a failed write leaves the old output and no temporary behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsimg.store.commit import atomic_path, write_text


def killed_while_writing(target: Path, folder: bool) -> None:
    with atomic_path(target) as tmp:
        if folder:
            tmp.mkdir()
            (tmp / "partial.bin").write_text("x")
        else:
            tmp.write_text("half")
        raise RuntimeError("killed")


def test_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failed_write_keeps_old_output(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        killed_while_writing(target, folder=False)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_folder_is_swapped_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("old weights")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("new weights")
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    with pytest.raises(RuntimeError, match="killed"):
        killed_while_writing(target, folder=True)
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
