"""Content fingerprints: the Dagster data versions of the assets and of the observable sources' files and settings.
Equal content gives an equal fingerprint (a table's row order and file bytes do not matter), so re-ingesting
identical data changes no data version and makes nothing downstream stale."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def combine(*parts: object) -> str:
    """One short hash of ``parts`` (their ``str``)."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def table_fingerprint(path: Path) -> str:
    """Content hash of a Parquet table: its columns and the multiset of its rows."""
    import duckdb

    with duckdb.connect() as con:
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()]
        hashed = ", ".join(f'"{c}"' for c in columns)
        count, total = con.execute(
            f"SELECT count(*), sum(hash({hashed})::HUGEINT) FROM read_parquet($p)", {"p": str(path)}).fetchone()
    return combine(count, total, columns)


def digest(payload: bytes) -> str:
    """SHA-1 of ``payload`` (hex): the one hash behind every fingerprint here."""
    return hashlib.sha1(payload).hexdigest()


def array_digest(array: np.ndarray) -> str:
    """SHA-1 of an array's bytes in C order."""
    return digest(np.ascontiguousarray(array).tobytes())


def array_fingerprint(array: np.ndarray) -> str:
    return combine(array.shape, array.dtype, array_digest(array))


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes (hex), read in chunks."""
    sha = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            sha.update(block)
    return sha.hexdigest()


class ContentHashes:
    """Content hashes of files, cached by (size, mtime) in a JSON file: only files that changed are read again (a
    lost or corrupt cache means hashing everything once more)."""

    SAVE_EVERY_S = 20.0  # a first look at a large catalogue keeps its progress if it is cut off

    def __init__(self, cache_file: Path):
        self.cache_file = cache_file
        self._saved_at = time.monotonic()
        try:
            self._cache: dict[str, list] = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            self._cache = {}
        self._dirty = False

    def of(self, path: Path | str) -> str:
        stat = os.stat(path)
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        cached = self._cache.get(key)
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        digest = file_hash(path)
        self._cache[key] = [*stamp, digest]
        self._dirty = True
        if time.monotonic() - self._saved_at > self.SAVE_EVERY_S:
            self.save()
        return digest

    def folder(self, root: Path, files: Iterable[str]) -> str:
        """One fingerprint of ``files`` (POSIX paths relative to ``root``, as :func:`visible_files` gives them) and
        their contents. Strings, not ``Path`` objects: a catalogue has tens of thousands of files."""
        digest, base = hashlib.sha1(), str(root)
        for name in sorted(files):
            digest.update(f"{name}|{self.of(os.path.join(base, name))}\n".encode())
        return digest.hexdigest()[:16]

    def save(self) -> None:
        if not self._dirty:
            return
        from audiorec_assets.lakeio import atomic_path

        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.cache_file, staging=self.cache_file.parent) as tmp:
            tmp.write_text(json.dumps(self._cache))
        self._dirty = False
        self._saved_at = time.monotonic()


def visible_files(folder: Path, skip: Iterable[str] = ()) -> list[str]:
    """Every file under ``folder`` whose path has no hidden part (``.DS_Store``, editors' temporaries), as POSIX
    paths relative to ``folder``; the top-level folders named in ``skip`` are not entered."""
    if not folder.is_dir():
        return []
    found, skip = [], set(skip)
    for dirpath, dirnames, filenames in os.walk(folder):
        relative = os.path.relpath(dirpath, folder)
        top = relative == "."
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (top and d in skip)]
        prefix = "" if top else relative.replace(os.sep, "/") + "/"
        found += [prefix + f for f in filenames if not f.startswith(".")]
    return found


def folder_fingerprint(folder: Path) -> str:
    """Content hash of every file under ``folder`` (relative names and bytes): a saved model's version."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}|{file_hash(path)}\n".encode())
    return digest.hexdigest()[:16]
