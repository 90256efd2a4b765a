"""Atomic writes into the lake: a killed or failed run never leaves a half-written or stray file where a
reader looks.

Temporaries live in the staging area ``<lake>/tmp/staging/`` (same filesystem as the lake, outside every
folder a view or a glob reads), never beside their target:

- ``proc-<pid>-<start>/`` — one process's temporaries (:func:`process_staging`); swept once that process is
  gone (``<start>`` = its start time, so a reused pid does not keep a dead process's folder alive).
- ``set-<key>/`` — files staged together and published together (:class:`StagedSet`: the ingest's tables).
- ``publish.lock`` — held while a set is published, so publishes never interleave.

A rename (``os.replace``) within one filesystem is atomic: a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

PROC_PREFIX = "proc-"
SET_PREFIX = "set-"
JOURNAL = "journal.json"  # present only while a set is being published: the renames to make
PUBLISHED = "published"  # marker: the set's files are in place
OWNERS = "owners.json"
# a set whose writer cannot be proven dead (a multi-process run between steps, its instance unknown here)
# is kept this long after its last change
SET_STALE_AFTER_S = 24 * 3600


# --- who owns a temporary ---------------------------------------------------------------------------------

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
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to another user
        pass
    except (ValueError, OSError):
        return False
    current = _start_token(pid)
    return current is None or token in ("0", current)


# --- the staging area -------------------------------------------------------------------------------------

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
    removed = []
    for entry in _entries(staging_root, PROC_PREFIX):
        if not owner_alive(entry.name[len(PROC_PREFIX):]):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _entries(staging_root: Path, prefix: str) -> list[Path]:
    try:
        return sorted(p for p in staging_root.iterdir() if p.name.startswith(prefix) and p.is_dir())
    except FileNotFoundError:
        return []


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


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (``os.umask`` can only
    set it, which would briefly change it for every other thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(path: Path, directory: bool = False) -> None:
    """Give a temporary the mode a plain ``open``/``mkdir`` would (``mkstemp``/``mkdtemp`` make 0600/0700,
    so tables written through pandas would be private while DuckDB's are not)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = "", staging: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it onto ``target`` on success.

    The temporary lives in ``staging`` (a :func:`process_staging` folder, for anything inside a folder that
    readers glob), else beside ``target`` as a hidden file. On an exception it is removed and ``target`` is
    untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    where = staging if staging is not None else target.parent
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=where)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        _plain_mode(tmp)
        _replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: Path, staging: Path | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory; swap it in for ``target`` on success.

    Where the system can exchange two paths in one step (Linux ``renameat2``, macOS ``renamex_np``),
    ``target`` is never missing: a reader sees the whole old folder or the whole new one. Elsewhere the
    old folder is moved aside and the new one renamed in: two renames, a window of microseconds without
    ``target``. The temporary (and, after the swap, the old folder) lives in ``staging`` when given, so a
    kill leaves nothing beside ``target``; a sweep removes it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=staging if staging is not None else target.parent))
    try:
        yield tmp
        _plain_mode(tmp, directory=True)
        if not target.exists():
            _replace(tmp, target)
        elif not exchange(tmp, target):
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=tmp.parent))
            _replace(target, old / "dir")
            _replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():  # the new folder after a failure, or the old one after the exchange
            shutil.rmtree(tmp, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when this system or filesystem cannot (nothing changed then)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if sys.platform.startswith("linux"):
            func, args = libc.renameat2, (-100, os.fsencode(a), -100, os.fsencode(b), 2)  # AT_FDCWD, EXCHANGE
        elif sys.platform == "darwin":
            func, args = libc.renamex_np, (os.fsencode(a), os.fsencode(b), 2)  # RENAME_SWAP
        else:
            return False
    except (AttributeError, OSError):
        return False
    if func(*args) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot exchange {a} and {b}: {os.strerror(code)}")


def save_npy_atomic(target: Path, array: np.ndarray, staging: Path | None = None) -> None:
    with atomic_path(target, suffix=".npy", staging=staging) as tmp:
        np.save(tmp, array)


# --- sets of files published together ---------------------------------------------------------------------

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


class StagedSet:
    """Files written into ``<staging>/set-<key>/`` and published onto their targets together.

    :meth:`publish` writes a journal of the renames, makes them, then removes the journal, all under
    :func:`publish_lock`. A journal found by a later holder of the lock therefore belongs to a publisher
    that died between renames, and :func:`recover_sets` completes its renames (roll forward): every
    staged file was complete and flushed before the journal was written.
    """

    def __init__(self, staging_root: Path, key: str, single_process: bool = True):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ValueError(f"staging set key {key!r}: letters, digits, _ . - only")
        self.root = staging_root
        self.dir = staging_root / f"{SET_PREFIX}{key}"
        self.single_process = single_process
        self._claimed = False

    def _claim(self) -> None:
        """Create the folder and record this process among its writers (what a sweep asks about)."""
        if self._claimed:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        owners_file = self.dir / OWNERS
        owners = json.loads(owners_file.read_text()) if owners_file.exists() else {"owners": []}
        if owner_id() not in owners["owners"]:
            owners["owners"].append(owner_id())
        # a run split over processes (one per step) has no live owner between its steps
        owners["single_process"] = owners.get("single_process", True) and self.single_process
        with atomic_path(owners_file, staging=self.dir) as tmp:
            tmp.write_text(json.dumps(owners))
        self._claimed = True

    def path(self, name: str) -> Path:
        """Where the staged file ``name`` (a relative path) is written."""
        self._claim()
        path = self.dir / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def has(self, name: str) -> bool:
        return (self.dir / "files" / name).exists()

    @property
    def published(self) -> bool:
        return (self.dir / PUBLISHED).exists()

    def publish(self, targets: dict[str, Path]) -> list[str]:
        """Rename every staged file ``name`` of ``targets`` onto ``targets[name]``; return the names moved."""
        self._claim()
        names = [name for name in targets if self.has(name)]
        moves = [(str(self.dir / "files" / name), str(targets[name])) for name in names]
        for src, dst in moves:
            _fsync(Path(src))
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
        with publish_lock(self.root):
            recover_sets(self.root)
            journal = self.dir / JOURNAL
            with atomic_path(journal, staging=self.dir) as tmp:
                tmp.write_text(json.dumps({"publisher": owner_id(), "moves": moves}))
            _roll_forward(self.dir)
        return names


def _roll_forward(set_dir: Path) -> list[tuple[str, str]]:
    """Make the renames of ``set_dir``'s journal that are not made yet, then mark the set published."""
    journal = set_dir / JOURNAL
    moves = [tuple(m) for m in json.loads(journal.read_text())["moves"]]
    for src, dst in moves:
        if Path(src).exists():  # a missing source: renamed before the publisher died
            _replace(Path(src), Path(dst))
    (set_dir / PUBLISHED).touch()
    journal.unlink()
    return moves


def recover_sets(staging_root: Path) -> list[tuple[str, str]]:
    """Complete the publishes that were interrupted; return their renames. Call under :func:`publish_lock`."""
    done: list[tuple[str, str]] = []
    for entry in _entries(staging_root, SET_PREFIX):
        if (entry / JOURNAL).exists():
            done.extend(_roll_forward(entry))
    return done


def sweep_sets(staging_root: Path, run_alive: Callable[[str], bool | None] | None = None,
               keep: set[str] | None = None) -> list[Path]:
    """Remove staged sets whose writer is over; return them.

    ``run_alive(key)`` says what the caller knows (True: still running, False: over, None: unknown).
    Unknown: over when no owner process is alive and the set was written by one process, else kept until
    untouched for :data:`SET_STALE_AFTER_S`. A set with a journal is completed first, never dropped.
    """
    journals = [e for e in _entries(staging_root, SET_PREFIX) if (e / JOURNAL).exists()]
    if journals:
        with publish_lock(staging_root):
            recover_sets(staging_root)
    removed = []
    for entry in _entries(staging_root, SET_PREFIX):
        key = entry.name[len(SET_PREFIX):]
        if keep and key in keep:
            continue
        if not _set_over(entry, run_alive(key) if run_alive else None):
            continue
        with publish_lock(staging_root):  # never between a publisher's journal and its renames
            if not (entry / JOURNAL).exists():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _set_over(entry: Path, alive: bool | None) -> bool:
    if alive is not None:
        return not alive
    try:
        owners = json.loads((entry / OWNERS).read_text())
    except (OSError, ValueError):
        owners = {"owners": [], "single_process": False}
    if any(owner_alive(o) for o in owners.get("owners", [])):
        return False
    if owners.get("single_process", False):
        return True
    try:
        newest = max((p.stat().st_mtime for p in entry.rglob("*")), default=entry.stat().st_mtime)
    except FileNotFoundError:  # another sweep is removing it
        return False
    return time.time() - newest > SET_STALE_AFTER_S


# --- leftovers of earlier versions ------------------------------------------------------------------------

# tempfile names of earlier versions, written beside their targets: `.<name>.<8 random chars>[<suffix>]`
# and `.<name>.old` (atomic_dir)
_LEGACY_TEMP = re.compile(r"\..+\.([a-z0-9_]{8}(\.[A-Za-z0-9]+)?|old)")
LEGACY_STALE_AFTER_S = 3600  # a process of an earlier version may still be writing during an upgrade


def sweep_legacy(folders: list[Path]) -> list[Path]:
    """Remove hidden temporaries that earlier versions left beside their targets in ``folders``."""
    removed = []
    cutoff = time.time() - LEGACY_STALE_AFTER_S
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not _LEGACY_TEMP.fullmatch(entry.name):
                continue
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
