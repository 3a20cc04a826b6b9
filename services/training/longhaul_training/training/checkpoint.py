"""Checkpoints written atomically: a directory is complete or it is never read.

`write_checkpoint(workdir, fill)` makes a fresh temporary directory beside
`<workdir>/checkpoint`, lets `fill(tmp)` write the files, adds `manifest.json` (the sha256
and size of every file) last, fsyncs, then swaps it in by renames: the old checkpoint moves
to `checkpoint.old`, the new one to `checkpoint`, and the old one is removed.
`find_checkpoint(workdir)` answers the first of `checkpoint`, `checkpoint.old` whose manifest
matches its files (a SIGKILL between the two renames leaves only `checkpoint.old`), or None.
A checkpoint directory holds no pickle: JSON, `np.save(allow_pickle=False)` arrays,
LightGBM model text, safetensors, and skops files loaded with the service's allowlist; it
can be copied as is to another worker's workdir and resumed there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["CHECKPOINT", "MANIFEST", "find_checkpoint", "write_checkpoint"]

CHECKPOINT = "checkpoint"
MANIFEST = "manifest.json"
_OLD = "checkpoint.old"
_TMP_PREFIX = ".checkpoint-"


def write_checkpoint(workdir: Path, fill: Callable[[Path], None]) -> Path:
    """Writes a complete checkpoint through `fill(tmp_dir)` and swaps it in atomically."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=workdir))
    try:
        fill(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): _digest(p) for p in files}
        (tmp / MANIFEST).write_text(json.dumps({"files": manifest}, sort_keys=True))
        for path in [*files, tmp / MANIFEST]:
            _fsync(path)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    current, old = workdir / CHECKPOINT, workdir / _OLD
    if current.exists():
        if old.exists():
            shutil.rmtree(old)
        current.rename(old)
    tmp.rename(current)
    _fsync(workdir)
    shutil.rmtree(old, ignore_errors=True)
    return current


def find_checkpoint(workdir: Path) -> Path | None:
    """The newest complete checkpoint in the workdir, or None; removes stale temporaries."""
    for stale in workdir.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    for name in (CHECKPOINT, _OLD):
        candidate = workdir / name
        if is_complete(candidate):
            return candidate
    return None


def is_complete(directory: Path) -> bool:
    """Whether the directory's manifest names exactly its files, with their digests."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    present = {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    if present != set(manifest):
        return False
    return all(_digest(directory / name) == manifest[name] for name in manifest)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
