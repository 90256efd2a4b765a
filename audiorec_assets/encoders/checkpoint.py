"""Reading a pretrained encoder's local torch checkpoint (EnCodecMAE, MusicFM)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def torch_load_checkpoint(path: Path) -> Any:
    """``torch.load`` on CPU; a local checkpoint that is not weights-only is loaded fully (trusted local file)."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickled non-tensor objects (Lightning hyper-parameters, ...)
        log.info("%s is not a weights-only checkpoint (%s); loading it fully", path, type(err).__name__)
        return torch.load(str(path), map_location="cpu", weights_only=False)
