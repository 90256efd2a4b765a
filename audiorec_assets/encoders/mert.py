"""MERT-v1-330M (``m-a-p/MERT-v1-330M``): as in the study, 24 kHz, the first 30 s, the snapshot's feature extractor,
last hidden state (75 Hz) averaged over the valid frames → 1024-d. Install: docs/encoders.md.

MERT's modelling code (``MERTModel``, a HuBERT subclass) is not part of transformers but ships in the snapshot
(config.json's ``auto_map``): ``trust_remote_code`` with ``local_files_only``, so only files already on disk run.
It predates transformers 4.48 and lacks config attributes newer HuBERT modules read (``conv_pos_batch_norm``);
they are filled with ``HubertConfig``'s defaults.
"""

from __future__ import annotations

from typing import ClassVar

from audiorec_assets.encoders.hf import HfMeanPoolEncoder


class MertEncoder(HfMeanPoolEncoder):
    name: ClassVar[str] = "mert"
    dim: ClassVar[int] = 1024
    sample_rate: ClassVar[int] = 24000
    clip_seconds: ClassVar[float | None] = 30.0
    pooling: ClassVar[str] = "last hidden state, mean over time"
    model_id: ClassVar[str] = "m-a-p/MERT-v1-330M"

    repo_id: ClassVar[str] = "m-a-p/MERT-v1-330M"
    model_class: ClassVar[str | None] = None  # AutoModel → the snapshot's MERTModel
    trust_remote_code: ClassVar[bool] = True
    config_defaults: ClassVar[str | None] = "HubertConfig"
    batching: ClassVar[str] = "auto"  # layer-norm HuBERT: padded + masked batches are exact
