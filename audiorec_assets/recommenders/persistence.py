"""How every recommender writes a fitted model: data files without pickles plus one JSON manifest.

The manifest (``model.json``, :func:`write_manifest` / :func:`read_manifest`) has the same shape for
every recommender::

    {"recommender": "<name>", "format": 1,
     "fitted_on": {"n_users": ..., "n_items": ..., "user_ids": "<hash>"[, "item_vectors": "<shape:hash>"]},
     "config": {...what the recommender needs to rebuild itself...}}

``fitted_on`` is :func:`data_fingerprint` of the data the model was fitted on; loading recomputes it for
the data at hand and refuses a model fitted on other users (or, where the fingerprint holds them, other
item vectors). The torch models keep their weights beside it as safetensors (:func:`save_state`,
:func:`load_state`); the others write ``.npy`` files (``allow_pickle=False``) or a FAISS index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audiorec_assets.fingerprints import digest
from audiorec_assets.lakeio import atomic_path
from audiorec_assets.recommenders.data import InteractionData

if TYPE_CHECKING:
    import torch
    from torch import nn

MANIFEST_FILE = "model.json"
MANIFEST_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"


class ModelFileError(ValueError):
    """A saved model does not match the data or item vectors it is loaded with; the message says which."""


def data_fingerprint(data: InteractionData, item_vectors: np.ndarray | None = None) -> dict[str, Any]:
    """What a model was fitted on: users and items (counts, a short hash of the user ids) and, when
    given, the item vectors (shape and short hash)."""
    fingerprint: dict[str, Any] = {
        "n_users": int(data.n_users),
        "n_items": int(data.n_items),
        "user_ids": digest("\n".join(map(str, data.user_ids)).encode()),
    }
    if item_vectors is not None:
        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        fingerprint["item_vectors"] = f"{vectors.shape[0]}x{vectors.shape[1]}:{digest(vectors.tobytes())}"
    return fingerprint


def write_manifest(directory: Path, recommender: str, fitted_on: dict[str, Any], config: dict[str, Any]) -> None:
    """Write ``directory/model.json`` (the format of the module docstring) atomically."""
    manifest = {"recommender": recommender, "format": MANIFEST_FORMAT, "fitted_on": fitted_on, "config": config}
    with atomic_path(Path(directory) / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(
    directory: Path, recommender: str, data: InteractionData, item_vectors: np.ndarray | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, fitted_on)`` of the manifest :func:`write_manifest` wrote, ``fitted_on`` being the fingerprint of
    ``data`` (and ``item_vectors``, if given). Raises ``FileNotFoundError`` without a manifest, and
    :class:`ModelFileError` for another recommender or format, or a model fitted on other data."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: not a saved {recommender} model (re-materialize the model)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelFileError(f"{path}: unsupported format {manifest.get('format')!r}; re-materialize the model")
    if manifest.get("recommender") != recommender:
        raise ModelFileError(f"{path} holds a {manifest.get('recommender')!r} model, not {recommender!r}")
    fingerprint = data_fingerprint(data, item_vectors)
    for key, value in fingerprint.items():
        saved = manifest["fitted_on"].get(key)
        if saved != value:
            raise ModelFileError(
                f"Model in {directory} was fitted on {key}={saved!r} but is loaded with {value!r}; "
                "re-materialize the model for the current interactions and embeddings"
            )
    return manifest["config"], fingerprint


def save_state(directory: Path, net: nn.Module) -> None:
    """Write ``net``'s state dict as safetensors, atomically.

    Non-persistent buffers (the frozen audio vectors) are not written: load takes them from the lake.
    """
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to("cpu").contiguous() for key, value in net.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))


def load_state(directory: Path) -> dict[str, torch.Tensor]:
    """The state dict :func:`save_state` wrote, as CPU tensors (no pickle involved)."""
    from safetensors.torch import load_file

    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; re-materialize the model to write it")
    return load_file(str(path), device="cpu")
