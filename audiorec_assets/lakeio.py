"""Atomic writes into the lake: a killed or failed run never leaves a half-written or stray file where a
reader looks (docs/lake.md, "Atomic writes and killed runs"). Temporaries live in ``<lake>/tmp/staging/`` (the
lake's filesystem, so a rename is atomic): ``proc-<pid>-<start>/`` per process, swept once it is gone (``<start>``:
its start time, so a reused pid does not keep a dead process's folder alive). ``publish.lock`` serialises
publishers; files that change together are published by pointing one symlink at their folder (POSIX only)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PROC_PREFIX = "proc-"


def _start_token(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name (which may hold spaces)


def owner_id(pid: int | None = None) -> str:
    """``<pid>-<start>`` of this process (or ``pid``): unique over the machine's uptime."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_token(pid) or '0'}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by :func:`owner_id` still runs."""
    pid_text, _, token = owner.partition("-")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except PermissionError:  # exists, belongs to another user
        pass
    except (ValueError, OSError):  # no such process (ProcessLookupError), or not a pid
        return False
    current = _start_token(pid)
    return current is None or token in ("0", current)


_own_dirs: dict[tuple[str, int], Path] = {}


def process_staging(staging_root: Path) -> Path:
    """This process's folder in ``staging_root``; on first use in a process, stale siblings are swept."""
    key = (str(staging_root), os.getpid())  # keyed by pid: a forked child gets its own folder
    own = _own_dirs.get(key)
    if own is None or not own.exists():
        sweep_processes(staging_root)
        own = staging_root / f"{PROC_PREFIX}{owner_id()}"
        own.mkdir(parents=True, exist_ok=True)
        _own_dirs[key] = own
    return own


def sweep_processes(staging_root: Path) -> list[Path]:
    """Remove the folders of processes that are gone; return them."""
    try:
        entries = sorted(p for p in staging_root.iterdir() if p.name.startswith(PROC_PREFIX) and p.is_dir())
    except FileNotFoundError:
        return []
    removed = [entry for entry in entries if not owner_alive(entry.name[len(PROC_PREFIX):])]
    for entry in removed:
        shutil.rmtree(entry, ignore_errors=True)
    return removed


def _fsync(path: Path) -> None:
    """Flush a file's bytes to disk before it is renamed into place (a crash then never publishes a hole)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno == errno.EXDEV:
            raise OSError(err.errno, f"cannot rename {src} onto {dst}: they are on different filesystems. "
                                     f"The lake's tmp/ folder must be on the lake's filesystem (a rename "
                                     f"across filesystems is not atomic): make it a plain folder.") from None
        raise


def _temporary(where: Path, name: str, suffix: str = "") -> Path:
    """A new hidden name in ``where``. Files and folders are created with the mode a plain ``open``/``mkdir``
    gives (the umask decides), not ``mkstemp``'s private 0600."""
    return where / f".{name}.{secrets.token_hex(4)}{suffix}"


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "", staging: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it onto ``target`` on success. The temporary lives in ``staging`` (a
    :func:`process_staging` folder, for anything inside a folder that readers glob), else beside ``target`` as a
    hidden file. On an exception it is removed and ``target`` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    where = staging if staging is not None else target.parent
    where.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(where, target.name, suffix or target.suffix)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        _fsync(tmp)
        _replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: Path, staging: Path | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory; swap it in for ``target`` on success: two renames, so for microseconds
    ``target`` is missing (a reader then finds no folder, never a half-written one). The temporary (and, after the
    swap, the old folder) lives in ``staging`` when given, so a kill leaves nothing beside ``target``; a sweep
    removes it. On an exception the temporary is removed and ``target`` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    where = staging if staging is not None else target.parent
    where.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(where, target.name)
    tmp.mkdir(0o777)
    try:
        yield tmp
        old = _temporary(where, f"{target.name}.old")
        if target.exists():
            _replace(target, old)
        _replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_npy_atomic(target: Path, array: np.ndarray, staging: Path | None = None) -> None:
    with atomic_path(target, suffix=".npy", staging=staging) as tmp:
        np.save(tmp, array)


@contextlib.contextmanager
def publish_lock(staging_root: Path) -> Iterator[None]:
    """Exclusive over every process using this staging area (released by the system if the holder dies)."""
    staging_root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: publishes are not serialised
        yield
        return
    with open(staging_root / "publish.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staged_dir(staging: Path, name: str) -> Iterator[Path]:
    """A fresh folder in ``staging`` (a :func:`process_staging` folder) for files that are published together;
    removed on exit unless :func:`publish_folder` moved it away."""
    folder = _temporary(staging, name)
    folder.mkdir(0o777, parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def point_link(link: Path, version: Path) -> None:
    """Make ``link`` a symlink to ``version`` (a relative path, so a copied lake follows its own) in one rename."""
    pointer = _temporary(version.parent, "link")  # beside the versions: never read, swept if a kill leaves it
    pointer.symlink_to(os.path.relpath(version, link.parent))
    _replace(pointer, link)


def publish_folder(folder: Path, link: Path, versions: Path, name: str, staging_root: Path) -> Path:
    """Move the complete ``folder`` to ``versions/<name>`` and point ``link`` (e.g. ``tables/ingest``) at it in one
    rename (:func:`point_link`); return the version. A reader that follows ``link`` sees the whole previous version
    or the whole new one, never a mix, never nothing. A version already present under ``name`` (the same content
    published again) is kept and ``folder`` dropped. Afterwards every version but the new one and the one ``link``
    pointed at before is removed: a reader that resolved the link just before the switch can finish. All under
    :func:`publish_lock`, so publishers never remove each other's new version."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"version name {name!r}: letters, digits, _ . - only")
    versions.mkdir(parents=True, exist_ok=True)
    version = versions / name
    with publish_lock(staging_root):
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} is a folder, not the symlink audiorec publishes through: move it away "
                                  f"(its files are not read) and run again.")
        previous = versions / Path(os.readlink(link)).name if link.is_symlink() else None
        for path in folder.rglob("*"):
            if path.is_file():
                _fsync(path)
        if version.exists():
            shutil.rmtree(folder)
        else:
            _replace(folder, version)
        point_link(link, version)
        for entry in versions.iterdir():
            if entry not in (version, previous):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    return version


# hidden temporaries written beside their targets: `.<name>.<8 random chars>[<suffix>]` and `.<name>.old`
_LEGACY_TEMP = re.compile(r"\..+\.([a-z0-9_]{8}(\.[A-Za-z0-9]+)?|old)")
LEGACY_STALE_AFTER_S = 3600  # a process of an earlier version may still be writing during an upgrade


def sweep_legacy(folders: list[Path]) -> list[Path]:
    """Remove hidden temporaries that earlier versions left beside their targets in ``folders``."""
    removed = []
    cutoff = time.time() - LEGACY_STALE_AFTER_S
    for folder in folders:
        try:
            entries = [entry for entry in folder.iterdir() if _LEGACY_TEMP.fullmatch(entry.name)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.lstat().st_mtime > cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
            except FileNotFoundError:
                continue
            removed.append(entry)
    return removed
