"""Hybrid vectors: an encoder's audio vectors side by side with standardised track metadata (pure numpy/pandas).

``hybrid_<encoder>`` is ``[audio_weight · A, metadata_weight · M]``, each block first divided by its mean row norm;
how each metadata column becomes features (from the metadata alone, never the listening data): docs/encoders.md,
"Hybrid vectors". Missing = a blank cell or one of :data:`MISSING_TOKENS` (any case); in a numeric or date column
also :data:`NUMERIC_MISSING_TOKENS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

# audiorec.tracks columns that are the catalogue's own, not metadata (track_id + what the ingest adds)
RESERVED_COLUMNS: tuple[str, ...] = ("track_id", "item_idx", "audio_path", "duration_s")
MISSING_TOKENS = frozenset({"", "nan", "n/a", "null", "<na>", "#n/a"})
NUMERIC_MISSING_TOKENS = frozenset({"na", "none"})  # missing in a column of numbers, a value in a text column
OTHER, MISSING = "(other)", "(missing)"
MIN_CATEGORY_TRACKS = 2  # a value held by one track only cannot make two tracks alike: pooled into (other)
ID_LIKE_SHARE = 0.9  # a text column with this share of distinct values is an identifier or free text
PATH_LIKE_SHARE = 0.5
DEFAULT_MAX_CATEGORIES = 50
_ID_NAME = re.compile(r"^(id|uuid|isrc|index)$|[\s_.-](id|idx|uuid|code)$|[a-z]Id$", re.IGNORECASE)
_PATH_NAME = re.compile(r"(^|[\s_.-])(path|file|filename|url|uri|link)$", re.IGNORECASE)
_PATH_VALUE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|/|\.\.?/|~/|[a-z]:[\\/])|\.(?:wav|flac|mp3|ogg|m4a|"
                         r"aac|opus|jpe?g|png|gif|webp|json|csv|txt|pdf|html?)$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")

Kind = Literal["numeric", "date", "categorical"]


class HybridError(ValueError):
    """Hybrid vectors cannot be built; the message names the setting or column at fault."""


@dataclass(frozen=True)
class ColumnFeatures:
    """One metadata column as it entered the vectors."""

    name: str
    kind: Kind
    dims: int
    missing: int  # tracks without a value
    detail: str


@dataclass(frozen=True)
class HybridReport:
    """What :func:`hybrid_vectors` built: the columns used (in vector order), the ones left out and why."""

    audio_dim: int
    columns: tuple[ColumnFeatures, ...]
    excluded: dict[str, str] = field(default_factory=dict)
    audio_weight: float = 1.0
    metadata_weight: float = 1.0
    audio_mean_norm: float = float("nan")  # of each block before scaling
    metadata_mean_norm: float = float("nan")

    @property
    def metadata_dim(self) -> int:
        return sum(c.dims for c in self.columns)

    @property
    def missing(self) -> dict[str, int]:
        return {c.name: c.missing for c in self.columns}

    def markdown(self, audio_label: str = "audio") -> str:
        """The report as one markdown table: the audio block, each metadata column, each excluded column."""
        rows = [(f"(audio: {audio_label})", "audio", self.audio_dim, 0,
                 f"weight {self.audio_weight:g}; mean row norm {self.audio_mean_norm:.4g} before scaling to 1")]
        rows += [(c.name, c.kind, c.dims, c.missing, c.detail) for c in self.columns]
        rows += [(name, "excluded", 0, "", why) for name, why in self.excluded.items()]
        lines = [f"metadata block: {self.metadata_dim} dims, weight {self.metadata_weight:g}; mean row norm "
                 f"{self.metadata_mean_norm:.4g} before scaling to 1", "",
                 "| column | kind | dims | missing | detail |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        return "\n".join(lines)


def metadata_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` (``audiorec.tracks`` or ``tracks.csv``) that may be metadata features."""
    return [str(c) for c in frame.columns if c not in RESERVED_COLUMNS]


def metadata_features(metadata: pd.DataFrame, columns: Sequence[str] | None = None,
                      max_categories: int = DEFAULT_MAX_CATEGORIES,
                      ) -> tuple[np.ndarray, list[ColumnFeatures], dict[str, str]]:
    """``(n_tracks, dims)`` float64 features of ``metadata`` (row i = track i), the columns used, and the
    columns left out with the reason. ``columns`` (setting ``hybrid.columns``) restricts and orders them;
    a name ``metadata`` lacks raises :class:`HybridError`."""
    if max_categories < 1:
        raise HybridError(f"hybrid.max_categories must be at least 1, got {max_categories}")
    metadata = metadata.reset_index(drop=True)  # row i = track i, whatever the index
    available = metadata_columns(metadata)
    if columns is not None:
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise HybridError(f"hybrid.columns names {unknown}, which the track metadata does not have; its "
                              f"metadata columns: {available or 'none'} (tracks.csv, as in audiorec.tracks)")
    blocks: list[np.ndarray] = []
    used: list[ColumnFeatures] = []
    excluded: dict[str, str] = {}
    for name in (list(columns) if columns is not None else available):
        built = _column_features(name, metadata[name], max_categories)
        if isinstance(built, str):
            excluded[name] = built
        else:
            blocks.append(built[0])
            used.append(built[1])
    matrix = np.hstack(blocks) if blocks else np.zeros((len(metadata), 0))
    return matrix, used, excluded


def hybrid_vectors(audio: np.ndarray, metadata: pd.DataFrame, audio_weight: float = 1.0,
                   metadata_weight: float = 1.0, columns: Sequence[str] | None = None,
                   max_categories: int = DEFAULT_MAX_CATEGORIES) -> tuple[np.ndarray, HybridReport]:
    """``audio`` (row i = track i) beside the metadata features of the same tracks: float32
    ``(n_tracks, audio dim + metadata dims)``, each block scaled to mean row norm 1, then weighted."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 2:
        raise HybridError(f"the audio vectors must be a 2-D (tracks, dim) array, got shape {audio.shape}")
    if len(audio) != len(metadata):
        raise HybridError(f"{len(audio)} audio vectors but metadata for {len(metadata)} tracks")
    for setting, weight in (("audio_weight", audio_weight), ("metadata_weight", metadata_weight)):
        if not np.isfinite(weight) or weight < 0:
            raise HybridError(f"hybrid.{setting} must be a finite number >= 0, got {weight}")
    if audio_weight == 0 and metadata_weight == 0:
        raise HybridError("hybrid.audio_weight and hybrid.metadata_weight are both 0: nothing would be left")
    features, used, excluded = metadata_features(metadata, columns, max_categories)
    if not used:
        why = "; ".join(f"{k}: {v}" for k, v in excluded.items()) or "there are no metadata columns"
        raise HybridError(f"no usable metadata column for hybrid vectors ({why}); add metadata columns to "
                          "tracks.csv or fix hybrid.columns")
    audio_norm, metadata_norm = _mean_row_norm(audio), _mean_row_norm(features)
    if not audio_norm > 0:
        raise HybridError("every audio vector is zero: nothing to scale")
    vectors = np.hstack([audio * (audio_weight / audio_norm), features * (metadata_weight / metadata_norm)])
    report = HybridReport(audio.shape[1], tuple(used), excluded, float(audio_weight), float(metadata_weight),
                          audio_norm, metadata_norm)
    return vectors.astype(np.float32), report


def _mean_row_norm(block: np.ndarray) -> float:
    return float(np.linalg.norm(block, axis=1).mean()) if block.size else 0.0


def _column_features(name: str, values: pd.Series, max_categories: int
                     ) -> tuple[np.ndarray, ColumnFeatures] | str:
    """The features of one column, or why it is left out."""
    text = values.astype("string").str.strip()
    missing = (values.isna() | text.isna() | text.str.lower().isin(MISSING_TOKENS)).to_numpy(dtype=bool)
    present = text[~missing].astype(str)
    if present.empty:
        return "no values (every track's is missing)"
    if _PATH_NAME.search(name) or present.str.contains(_PATH_VALUE).mean() >= PATH_LIKE_SHARE:
        return "a path or URL"
    if not _ID_NAME.search(name):
        numbers = _as_numbers(present)
        if numbers is not None:
            return _numeric(name, *numbers, missing)
    return _categorical(name, present, missing, max_categories)


def _as_numbers(present: pd.Series) -> tuple[np.ndarray, Kind] | None:
    """``present`` as floats when every value is a number, or as days when every one is an ISO date, apart
    from ``na``/``none``; those and non-finite numbers as NaN (missing). Else None."""
    soft = present.str.lower().isin(NUMERIC_MISSING_TOKENS).to_numpy()
    if soft.all():
        return None
    numbers = pd.to_numeric(present.where(~soft), errors="coerce")
    if (numbers.notna() | soft).all():
        values = numbers.to_numpy(dtype=float)
        return np.where(np.isfinite(values), values, np.nan), "numeric"
    if present[~soft].str.fullmatch(_ISO_DATE).all():
        dates = pd.to_datetime(present.where(~soft), errors="coerce", utc=True, format="ISO8601")
        if (dates.notna() | soft).all():
            return ((dates - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)).to_numpy(float), "date"
    return None


def _numeric(name: str, numbers: np.ndarray, kind: Kind, missing: np.ndarray
             ) -> tuple[np.ndarray, ColumnFeatures] | str:
    is_date = kind == "date"
    values = np.full(len(missing), np.nan)
    values[~missing] = numbers  # non-finite numbers are NaN: missing too
    missing = np.isnan(values)
    observed = values[~missing]
    if not observed.size:
        return "no values (every track's is missing or not finite)"
    if np.unique(observed).size + bool(missing.any()) <= 1:
        return f"constant ({_shown(observed[0], is_date)} for every track)"
    mean, sd = float(observed.mean()), float(observed.std())
    z = np.where(missing, 0.0, (values - mean) / sd if sd > 0 else 0.0)
    block = np.column_stack([z, missing.astype(float)]) if missing.any() else z[:, None]
    spread = (f"from {_shown(observed.min(), True)} to {_shown(observed.max(), True)}" if is_date
              else f"mean {mean:.4g}, sd {sd:.4g}")
    detail = spread + ("; missing: mean-imputed, plus a missing indicator" if missing.any() else "")
    return block, ColumnFeatures(name, kind, block.shape[1], int(missing.sum()), detail)


def _categorical(name: str, present: pd.Series, missing: np.ndarray, max_categories: int
                 ) -> tuple[np.ndarray, ColumnFeatures] | str:
    counts = present.value_counts()
    if len(counts) == 1 and not missing.any():
        return f"constant ({counts.index[0]!r} for every track)"
    if len(counts) > 1 and len(counts) >= ID_LIKE_SHARE * len(present):
        return f"an identifier or free text ({len(counts)} distinct values in {len(present)} tracks)"
    ranked = sorted(((int(n), str(v)) for v, n in counts.items() if n >= MIN_CATEGORY_TRACKS),
                    key=lambda item: (-item[0], item[1]))
    kept = [v for _, v in ranked[:max_categories]]
    labels = np.full(len(missing), MISSING, dtype=object)
    labels[~missing] = np.where(present.isin(kept), present, OTHER)
    categories = kept + [c for c in (OTHER, MISSING) if (labels == c).any()]
    if len(categories) <= 1:
        return "constant once rare values are pooled (no value is shared by two tracks)"
    block = (labels[:, None] == np.array(categories, dtype=object)[None, :]).astype(float)
    pooled = int((labels == OTHER).sum())
    detail = _count(len(kept), "category", "categories") + (
        f"; {_count(pooled, 'track')} in {OTHER}" if pooled else "") + (
        f"; {_count(int(missing.sum()), 'track')} in {MISSING}" if missing.any() else "")
    return block, ColumnFeatures(name, "categorical", len(categories), int(missing.sum()), detail)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _shown(value: float, is_date: bool) -> str:
    if is_date:
        return str((pd.Timestamp("1970-01-01") + pd.Timedelta(days=float(value))).date())
    return f"{value:g}"


def _cell(value: object) -> str:
    """A markdown table cell: pipes escaped, on one line."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
