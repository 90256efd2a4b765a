"""Experiment settings (``<lake>/experiment.yaml``) and lake paths: plain pydantic, no Dagster import (the
Dagster layer builds them through :class:`audiorec_assets.defs.resources.LakeResource`)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
import hashlib
import json
import re

from pydantic import (
    BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, field_validator, model_serializer,
    model_validator,
)

from audiorec_assets.recommenders.registry import RECOMMENDERS
from audiorec_assets.settings_sasrec import SasRecSettings, SequenceSettings

LAKE_ENV = "AUDIOREC_LAKE"
SETTINGS_FILE = "experiment.yaml"

Preset = Literal["guide", "paper_code"]
# encoder keys become Dagster partition keys and file names
ENCODER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SettingsError(ValueError):
    """A setting in experiment.yaml (or a run override) is invalid; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSettings(_Section):
    """Time windows of the split (docs/split.md), half-open: train ``[train_start, test_start)``, evaluation
    ``[test_start, test_end)``; ``None``: the study's dates (Onion layout), else dates derived from the data."""

    train_start: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None
    val_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    seed: int = 42  # paper_code's user split (docs/split.md): apart from `seed`, it keeps the authors' users

    @field_validator("train_start", "test_start", "test_end")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        """Listens are stored as naive UTC; a date with an offset (``...Z``, ``+02:00``) is converted to that."""
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc).replace(tzinfo=None)


class EncodeSettings(_Section):
    batch_size: int = Field(8, ge=1)
    on_error: Literal["fail", "skip"] = "fail"
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (cuda when torch sees a GPU, else cpu)
    # training arithmetic (docs/recommenders.md, "Seeds, device and precision"); like `device`, recorded with each
    # model, not part of its version
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    shuffled_base: str = "musicnn"
    models_dir: str | None = None  # where pretrained weights live; default: AUDIOREC_MODELS or the user cache
    # z-score every feature of the vectors over the catalogue (docs/encoders.md); off: the study's raw vectors
    standardize: bool = False

    @field_validator("standardize", mode="before")
    @classmethod
    def _strict_bool(cls, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


class ShallowSettings(_Section):
    negatives: int = Field(20, ge=1)
    batch_size: int = Field(10_000, ge=1)
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    # guide: >0 adds a Linear projection on the item side; paper_code: the width of the shared
    # Linear+ReLU applied to users and items (0 = the audio dimension, the paper's runs)
    hidden_dim: int = Field(0, ge=0)
    margin: float | None = None  # None: the preset's (guide 1.0, paper_code 0.2)
    id_dim: int = Field(128, ge=2)  # encoder `none`: width of the learned item-id embeddings


class Bert4RecSettings(SequenceSettings):
    """BERT4Rec: the shared sequence settings (``settings_sasrec.py``; ``hidden_dim`` is the guide's only,
    paper_code uses the audio dimension) and its masking."""

    max_len: int = Field(300, ge=2)
    infer_len: int = Field(50, ge=2)
    mask_prob: float | None = None  # None: the preset's (guide 0.15, paper_code 0.2)
    # batches of users of similar sequence length (less padding, the same sequences each epoch); off: random batches
    length_batches: bool = Field(False, strict=True)

    @model_serializer(mode="wrap")
    def _omit_default_loss(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave the loss settings and ``length_batches`` out of the dump while they hold their defaults, so that
        the settings fingerprint of a cell (``defs/sources.py``) is the one it had before they existed: adding them
        does not make every trained BERT4Rec stale, and changing any of them does."""
        dump = handler(self)
        for name in _LOSS_DEFAULTS.keys() & dump.keys():
            if dump[name] == _LOSS_DEFAULTS[name]:
                del dump[name]
        return dump


_LOSS_DEFAULTS = {name: Bert4RecSettings.model_fields[name].default
                  for name in ("loss", "negatives", "gbce_t", "length_batches")}


class AlsSettings(_Section):
    """Implicit-feedback ALS (the ``implicit`` library), the collaborative reference ``als``."""

    factors: int = Field(64, ge=1)
    regularization: float = Field(0.05, ge=0.0)
    iterations: int = Field(15, ge=1)
    alpha: float = Field(1.0, gt=0.0)  # confidence = 1 + alpha * plays


class AudioCheckSettings(_Section):
    """What the tracks check does with each audio oddity: fail (blocks the ingest) or warn (reported on the check);
    a file that does not decode at all always fails."""

    truncated: Literal["fail", "warn"] = "fail"  # fewer samples than the header promises
    nan_samples: Literal["fail", "warn"] = "fail"  # NaN/inf samples (they make NaN embeddings)
    short: Literal["fail", "warn"] = "warn"  # under 1 s of audio
    silent: Literal["fail", "warn"] = "warn"  # peak under -80 dBFS


class HybridSettings(_Section):
    """``hybrid_<encoder>``: that encoder's vectors beside standardised ``tracks.csv`` metadata
    (``encoders/hybrid.py``). Each block is scaled to mean row norm 1 before its weight applies."""

    audio_weight: float = Field(1.0, ge=0.0, allow_inf_nan=False, strict=True)  # strict: no true/false, no text
    metadata_weight: float = Field(1.0, ge=0.0, allow_inf_nan=False, strict=True)
    # the tracks.csv columns to use, in this order; None: every usable one (ids, paths, constants left out)
    columns: list[str] | None = None
    max_categories: int = Field(50, ge=1, strict=True)  # per categorical column; rarer ones pooled into "(other)"

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        from audiorec_assets.encoders.hybrid import RESERVED_COLUMNS  # pure numpy/pandas: no cycle

        repeated = sorted({c for c in value or [] if value.count(c) > 1})
        reserved = [c for c in value or [] if c in RESERVED_COLUMNS]
        if value is not None and (not value or repeated or reserved):
            raise ValueError(f"lists {repeated} more than once" if repeated else
                             f"{reserved} are the catalogue's own columns, not tracks.csv metadata" if reserved else
                             "lists no column; leave it out to use every usable metadata column")
        return value

    @model_validator(mode="after")
    def _some_weight(self) -> HybridSettings:
        if self.audio_weight == 0 and self.metadata_weight == 0:
            raise ValueError("hybrid.audio_weight and hybrid.metadata_weight are both 0: give one a weight > 0")
        return self


class ExperimentSettings(_Section):
    """Everything a run of the study depends on. Defaults reproduce the guide preset."""

    preset: Preset = "guide"
    seed: int = 42
    # trained recommenders run once per seed (mean and spread reported); None = [seed]
    seeds: list[int] | None = None
    split: SplitSettings = SplitSettings()
    missing_audio: Literal["fail", "drop"] = "fail"
    # log rows repeating an earlier (user_id, track_id, timestamp): keep counts each as a play, drop keeps the first
    duplicates: Literal["keep", "drop"] = "keep"
    audio_checks: AudioCheckSettings = AudioCheckSettings()
    encoders: list[str] = ["mfcc", "musicnn", "shuffled", "random", "none"]
    recommenders: list[str] = ["knn", "shallow", "bert4rec", "popularity", "als"]
    ks: list[int] = [10, 20, 50]
    # the K of the tables for people, one of ks; fit it to the catalogue (50 of a few hundred tracks is no short
    # list). None: 50 when ks has it, else the largest K
    headline_k: int | None = None
    top_n: int = Field(100, ge=1)
    encode: EncodeSettings = EncodeSettings()
    shallow: ShallowSettings = ShallowSettings()
    bert4rec: Bert4RecSettings = Bert4RecSettings()
    sasrec: SasRecSettings = SasRecSettings()  # settings_sasrec.py; paper_code runs these too
    als: AlsSettings = AlsSettings()
    hybrid: HybridSettings = HybridSettings()

    @property
    def run_seeds(self) -> list[int]:
        """The seeds a trained recommender runs under (``seeds``, else ``[seed]``)."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSettings:
        from audiorec_assets.encoders import bad_hybrid

        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError(f"seeds must list at least one seed, each once (got {self.seeds}); "
                             "leave it out to use `seed` alone")
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must list at least one cutoff K >= 1")
        if self.headline_k is None:  # derived, not set: not in fields_set, so overrides of ks derive it again
            self.__dict__["headline_k"] = 50 if 50 in self.ks else max(self.ks)
        if self.headline_k not in self.ks:
            raise ValueError(f"headline_k ({self.headline_k}) must be one of ks {self.ks}")
        if max(self.ks) > self.top_n:
            raise ValueError(f"top_n ({self.top_n}) must be at least the largest K in ks ({max(self.ks)})")
        if unknown := [r for r in self.recommenders if r not in RECOMMENDERS]:
            raise ValueError(f"recommenders {unknown} are unknown; known: {sorted(RECOMMENDERS)}")
        if bad := [e for e in [*self.encoders, self.encode.shuffled_base] if not ENCODER_NAME.fullmatch(e)]:
            raise ValueError(f"encoder names {bad} must match {ENCODER_NAME.pattern}")
        no_audio_twins = [e for e in self.encoders if e == "shuffled_none"] + (
            ["encode.shuffled_base: none"] if self.encode.shuffled_base == "none" else [])
        if no_audio_twins:
            raise ValueError(f"{no_audio_twins}: encoder 'none' has no vectors to shuffle; shuffle an audio encoder")
        shuffled_base = self.encode.shuffled_base
        if bad_hybrids := [e for e in [*self.encoders, shuffled_base] if bad_hybrid(e, shuffled_base)]:
            raise ValueError(f"encoders {bad_hybrids}: hybrid_<encoder> puts tracks.csv metadata beside that "
                             "encoder's vectors; 'none' has no vectors, and a hybrid already holds the metadata "
                             "(use hybrid_<an audio encoder>)")
        audio_encoders = [e for e in self.encoders if e != "none"]
        needs_audio = [r for r in self.recommenders if RECOMMENDERS[r].audio == "required"]
        if needs_audio and not audio_encoders:
            raise ValueError(f"recommenders {needs_audio} rank tracks by their audio vectors, but encoders lists "
                             f"no audio encoder ({self.encoders}; 'none' = no audio): add one to encoders, or drop "
                             f"them from recommenders")
        return self

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the named settings (all when none): what a stored result was computed with."""
        dump = self.model_dump(mode="json")
        chosen = {k: dump[k] for k in sections} if sections else dump
        return hashlib.sha1(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:12]

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentSettings:
        """Return a copy with (nested) keys replaced, validated again."""
        merged = _deep_merge(self.model_dump(exclude_unset=True), overrides)
        return parse_settings(merged, source="run overrides")


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_settings(raw: dict[str, Any], source: str) -> ExperimentSettings:
    try:
        return ExperimentSettings.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise SettingsError(f"Invalid settings in {source}: {problems}") from None


def load_settings(lake: Path) -> ExperimentSettings:
    """Read ``<lake>/experiment.yaml``; defaults when the file is absent."""
    path = lake / SETTINGS_FILE
    if not path.exists():
        return ExperimentSettings()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SettingsError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path} must hold a mapping of settings, got {type(raw).__name__}")
    return parse_settings(raw, source=str(path))


def effective_device(requested: str) -> str:
    """The device a run uses for setting ``encode.device``: ``auto`` becomes ``cuda`` when torch sees a GPU."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_lake() -> Path:
    """``$AUDIOREC_LAKE`` or ``data_lake/`` in the current directory."""
    return Path(os.environ.get(LAKE_ENV) or "data_lake").resolve()


# the ingest's tables, published together: ``tables/ingest`` is a symlink to one complete set in
# ``tables/.ingest/<id>/`` (:func:`audiorec_assets.lakeio.publish_folder`)
INGEST_TABLES = ("listens", "tracks", "interactions", "split_info")


def table_folder(table: str) -> str:
    """Where the files of ``audiorec.<table>`` lie, relative to the lake (the same in every lake)."""
    return f"tables/ingest/{table}" if table in INGEST_TABLES else f"tables/{table}"


class LakePaths:
    """Where every file of the lake lives (docs/lake.md, "Layout")."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.raw = self.root / "raw"
        self.embeddings = self.root / "embeddings"
        self.models = self.root / "models"
        self.tables = self.root / "tables"  # Parquet files behind the warehouse views (one folder per table)
        self.warehouse = self.root / "warehouse.duckdb"
        self.tmp = self.root / "tmp"
        # temporaries of atomic writes (:mod:`audiorec_assets.lakeio`): outside every folder a view or a glob
        # reads, on the lake's filesystem so that renames into place are atomic
        self.staging = self.tmp / "staging"
        # the tracks check's probe verdicts and header durations by file (path, size, mtime_ns)
        # (:mod:`audiorec_assets.data.audio_verdicts`); the tracks table reads the durations back
        self.audio_verdicts = self.tmp / "audio_verdicts.parquet"
        # the symlink to the published set of INGEST_TABLES (resolve it once to read them as one set)
        self.ingest = self.tables / "ingest"

    def embedding_file(self, encoder: str) -> Path:
        return self.embeddings / f"{encoder}.npy"

    def model_dir(self, encoder: str, recommender: str) -> Path:
        return self.models / encoder / recommender

    def table_dir(self, table: str) -> Path:
        return self.root / table_folder(table)

    def relative(self, path: Path | str) -> str:
        """``path`` as stored in the lake's tables: relative to the lake (POSIX) when inside it, else absolute,
        so that a moved or copied lake reads its own files."""
        path = Path(path)
        absolute = path if path.is_absolute() else Path.cwd() / path
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return str(absolute)

    def resolve(self, stored: Path | str) -> Path:
        """The file a stored path names: relative paths are taken from the lake's root."""
        stored = Path(stored)
        return stored if stored.is_absolute() else self.root / stored
