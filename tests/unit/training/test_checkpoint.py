"""Checkpoints are atomic: a complete one is read, a half-written one never is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from longhaul_training.training.checkpoint import find_checkpoint, write_checkpoint


def _write(workdir: Path, text: str) -> Path:
    def fill(tmp: Path) -> None:
        (tmp / "state.txt").write_text(text)

    return write_checkpoint(workdir, fill)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    _write(tmp_path, "one")

    def crash(tmp: Path) -> None:
        (tmp / "state.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, crash)
    found = find_checkpoint(tmp_path)
    assert found is not None
    assert (found / "state.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_torn_directory_is_never_read(tmp_path: Path) -> None:
    _write(tmp_path, "one")
    (tmp_path / "checkpoint" / "state.txt").write_text("changed after the manifest")
    assert find_checkpoint(tmp_path) is None
    _write(tmp_path, "two")
    (tmp_path / "checkpoint" / "extra.bin").write_bytes(b"x")
    assert find_checkpoint(tmp_path) is None


def test_a_kill_between_the_renames_falls_back_to_the_old_one(tmp_path: Path) -> None:
    _write(tmp_path, "one")
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # as the first rename does
    (tmp_path / ".checkpoint-abc").mkdir()  # the new one, not yet renamed
    found = find_checkpoint(tmp_path)
    assert found is not None
    assert (found / "state.txt").read_text() == "one"
    assert not (tmp_path / ".checkpoint-abc").exists(), "stale temporaries are removed"
    _write(tmp_path, "two")
    found = find_checkpoint(tmp_path)
    assert found == tmp_path / "checkpoint"
    assert (found / "state.txt").read_text() == "two"


def test_a_checkpoint_copied_elsewhere_is_complete(tmp_path: Path) -> None:
    _write(tmp_path / "a", "one")
    shutil.copytree(tmp_path / "a" / "checkpoint", tmp_path / "b" / "checkpoint")
    assert find_checkpoint(tmp_path / "b") == tmp_path / "b" / "checkpoint"
