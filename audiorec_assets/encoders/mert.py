"""MERT-v1-330M (``m-a-p/MERT-v1-330M``): last hidden state, mean over time → 1024-d.

As in the study: 24 kHz mono, the first 30 s, the snapshot's ``Wav2Vec2FeatureExtractor``
(zero mean / unit variance per track), the last layer's hidden states averaged over the
valid frames (75 Hz).

MERT's modelling code is not part of transformers: it lives in the model's hub repository
(``configuration_MERT.py`` → ``MERTConfig``, ``modeling_MERT.py`` → ``MERTModel``, a HuBERT
subclass whose forward returns ``last_hidden_state``), named by config.json's ``auto_map``.
It is loaded from the local snapshot with ``AutoModel.from_pretrained(dir,
trust_remote_code=True, local_files_only=True)``, so only files already on disk run.
The hub code predates transformers 4.48 and lacks config attributes newer HuBERT modules
read (``conv_pos_batch_norm``); they are filled with ``HubertConfig``'s defaults.

Weights: ``<models_dir>/mert/`` (a full snapshot: config.json, configuration_MERT.py,
modeling_MERT.py, the weights, preprocessor_config.json), else the Hugging Face cache.
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
