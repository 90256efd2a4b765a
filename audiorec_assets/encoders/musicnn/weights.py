"""Find the pretrained checkpoints of the ``musicnn`` package, fetching them on first use (``pip download`` of that
exact version, like spaCy's model download, copying only the checkpoint files into
``<models_dir>/musicnn/<MODEL>/``); why and the offline setup: docs/encoders.md, "MusiCNN and VGG weights".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from audiorec_assets.encoders.base import MODELS_ENV, WeightsNotFoundError

PACKAGE_SPEC = "musicnn==0.1.0"
OFFLINE_ENV = "AUDIOREC_OFFLINE"
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".index", ".data-00000-of-00001")
# Every pretrained model the wheel ships (MSD_musicnn_big is only in the source repository).
AVAILABLE_CHECKPOINTS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
PIP_TIMEOUT_S = 900


class WeightsDownloadError(WeightsNotFoundError):
    """``pip download`` of the musicnn package failed (no network, no pip, no such version)."""


def checkpoint_dir(models_dir: Path, model: str) -> Path:
    """Where the checkpoint files of ``model`` are installed (and looked for first)."""
    return Path(models_dir) / "musicnn" / model


def candidate_dirs(models_dir: Path, model: str) -> list[Path]:
    """Folders searched for ``model``'s checkpoint, in order: the canonical layout, ``<models_dir>/<MODEL>`` and an
    unzipped wheel (``<models_dir>/musicnn/musicnn/<MODEL>``), so that a hand-made copy just works."""
    root = Path(models_dir)
    return [checkpoint_dir(root, model), root / model, root / "musicnn" / "musicnn" / model]


def checkpoint_prefix_in(folder: Path) -> str | None:
    """The checkpoint prefix in ``folder`` (``folder/`` for upstream's dot-files), or None if incomplete: a checkpoint
    is exactly one ``*.index`` file and the matching single-shard ``.data-00000-of-00001`` file."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    indexes = [n for n in names if n.endswith(".index")]
    if len(indexes) != 1:
        return None
    prefix = os.path.join(str(folder), indexes[0][: -len(".index")])
    return prefix if os.path.isfile(prefix + CHECKPOINT_SUFFIXES[1]) else None


def find_checkpoint(models_dir: Path, model: str) -> str | None:
    """The checkpoint prefix of ``model`` under ``models_dir``, or None; never downloads."""
    prefixes = (checkpoint_prefix_in(folder) for folder in candidate_dirs(models_dir, model))
    return next((prefix for prefix in prefixes if prefix is not None), None)


def downloads_allowed() -> bool:
    """False when ``$AUDIOREC_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}


def missing_weights_message(models_dir: Path, model: str, reason: str) -> str:
    """What is missing, where it was looked for, and the three ways to fix it."""
    folder = checkpoint_dir(models_dir, model)
    return (
        f"musicnn-package weights {model!r} not found ({reason}).\n"
        f"Looked in: {', '.join(str(d) for d in candidate_dirs(models_dir, model))}.\n"
        f"Expected the TensorFlow checkpoint files of the {PACKAGE_SPEC} package at\n"
        f"  {folder / CHECKPOINT_SUFFIXES[0]}\n"
        f"  {folder / CHECKPOINT_SUFFIXES[1]}\n"
        "To fix: (1) allow the automatic download on first use (unset "
        f"{OFFLINE_ENV}; needs pip and access to the package index), or (2) run\n"
        f"  python -m pip download --no-deps {PACKAGE_SPEC} -d <tmp>\n"
        f"unzip the wheel (a zip file) and copy its folder musicnn/{model}/ to {folder}\n"
        "(the file names start with a dot: copy the folder, not `*`), or (3) point the "
        f"setting encode.models_dir (or env {MODELS_ENV}) at a folder laid out as "
        f"<models_dir>/musicnn/{model}/ that already holds those files."
    )


def locate_checkpoint(model: str, models_dir: Path, allow_download: bool | None = None) -> str:
    """The checkpoint prefix of ``model`` (one of :data:`AVAILABLE_CHECKPOINTS`) under ``models_dir``
    (:func:`candidate_dirs`), installed there first if absent and downloads are allowed (``allow_download``, default:
    unless ``$AUDIOREC_OFFLINE``). Raises :class:`WeightsNotFoundError` (:class:`WeightsDownloadError`: pip failed).
    """
    if model not in AVAILABLE_CHECKPOINTS:
        raise ValueError(f"Unknown musicnn-package checkpoint {model!r}; known: {list(AVAILABLE_CHECKPOINTS)}")
    models_dir = Path(models_dir).expanduser()
    if (prefix := find_checkpoint(models_dir, model)) is not None:
        return prefix
    if allow_download is None:
        allow_download = downloads_allowed()
    if not allow_download:
        why = f"downloads disabled by {OFFLINE_ENV}" if not downloads_allowed() else "downloads disabled by the caller"
        raise WeightsNotFoundError(missing_weights_message(models_dir, model, why))
    install_checkpoints(models_dir)
    prefix = find_checkpoint(models_dir, model)
    if prefix is None:
        raise WeightsNotFoundError(missing_weights_message(models_dir, model, "the download did not provide them"))
    return prefix


def install_checkpoints(models_dir: Path) -> list[Path]:
    """Download the ``musicnn`` package and install its checkpoints under ``models_dir/musicnn/``.

    Each checkpoint folder appears atomically (extracted to a temporary sibling, then renamed), so a crash or a
    concurrent run never leaves a half-written checkpoint. Folders already complete are kept. Returns the checkpoint
    folders now present.
    """
    root = Path(models_dir) / "musicnn"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsNotFoundError(
            missing_weights_message(Path(models_dir), AVAILABLE_CHECKPOINTS[0], f"cannot create {root}: {err}")
        ) from err
    # The temporary folder lives in ``root`` so that the final rename stays on one filesystem.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
        archive = _pip_download(Path(tmp) / "pip", Path(models_dir))
        staged = _extract_checkpoints(archive, Path(tmp) / "extract")
        for model, folder in staged.items():
            _move_into_place(folder, root / model)
    return [root / m for m in AVAILABLE_CHECKPOINTS if checkpoint_prefix_in(root / m) is not None]


def _pip_download(dest: Path, models_dir: Path) -> Path:
    """Run ``pip download --no-deps musicnn==0.1.0`` into ``dest``; return the archive's path."""
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += [PACKAGE_SPEC, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        reason = f"pip download failed: {err}"
        raise WeightsDownloadError(missing_weights_message(models_dir, "MSD_musicnn", reason)) from err
    archives = [p for p in dest.iterdir() if p.name.endswith((".whl", ".zip", ".tar.gz"))]
    if proc.returncode != 0 or len(archives) != 1:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        reason = f"`python {' '.join(cmd[1:])}` exited with {proc.returncode}: " + " | ".join(tail)
        raise WeightsDownloadError(missing_weights_message(models_dir, "MSD_musicnn", reason))
    return archives[0]


def _archive_members(archive: Path) -> dict[str, tuple[str, str]]:
    """Member name → (model, file name) for the checkpoint files inside a wheel or sdist."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
    else:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    # wheel: musicnn/<MODEL>/<file>; sdist: musicnn-0.1.0/musicnn/<MODEL>/<file>
    split = {name: name.split("/") for name in names}
    return {name: (p[-2], p[-1]) for name, p in split.items()
            if len(p) >= 3 and p[-3] == "musicnn" and p[-2] in AVAILABLE_CHECKPOINTS and p[-1] in CHECKPOINT_SUFFIXES}


def _extract_checkpoints(archive: Path, dest: Path) -> dict[str, Path]:
    """Copy only the checkpoint files out of ``archive`` into ``dest/<MODEL>/``; returns model → folder. Output paths
    are built from the known model and file names, never from member paths, so the archive cannot write elsewhere."""
    members = _archive_members(archive)
    try:
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                for name, (model, filename) in members.items():
                    source = tar.extractfile(name)
                    assert source is not None  # members are regular files
                    _write(source, dest / model / filename)
        else:
            with zipfile.ZipFile(archive) as zf:
                for name, (model, filename) in members.items():
                    with zf.open(name) as source:
                        _write(source, dest / model / filename)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise WeightsNotFoundError(f"{archive}: cannot extract the MusiCNN checkpoints ({err})") from err
    staged = {m: dest / m for m in AVAILABLE_CHECKPOINTS if checkpoint_prefix_in(dest / m) is not None}
    if not staged:
        raise WeightsNotFoundError(f"{archive}: holds no musicnn/<MODEL>/.index checkpoint files")
    return staged


def _write(source: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out)


def _move_into_place(staged: Path, target: Path) -> None:
    """Rename ``staged`` to ``target`` unless a complete checkpoint is already there."""
    if checkpoint_prefix_in(target) is not None:
        return  # installed meanwhile (another process) or by hand: keep it
    try:
        os.rename(staged, target)
    except OSError as err:
        # Either a concurrent install won the race (fine) or an incomplete folder is in the way.
        if checkpoint_prefix_in(target) is None:
            raise WeightsNotFoundError(
                f"{target}: cannot install the MusiCNN checkpoint here ({err}); "
                "if the folder is incomplete, delete it and retry"
            ) from err
