"""Tastes: each track's value of every taste (metadata columns, audio clusters of item vectors, random
clusters of works / albums) and the values each user prefers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audiorec_assets.datasets.mock_logs.config import MockLogConfig

# taste columns used when MockLogConfig.taste_columns is None (those present with two or more values)
AUTO_TASTE_COLUMNS: tuple[str, ...] = ("composer", "artist", "genre", "style", "instrumentation", "period", "era")
TASTE_BONUS = 3.0  # a taste pick weighs a track this much more for each other taste it matches


@dataclass(frozen=True)
class TrackTastes:
    """Per taste (a column of the catalogue, ``audio_cluster`` or ``random_cluster``), each track's value."""

    names: tuple[str, ...]
    codes: list[np.ndarray]  # per taste: value code of each track, -1 for none
    values: list[np.ndarray]  # per taste: the value of each code

    def value_weights(self) -> list[np.ndarray]:
        """Per taste: how likely a user prefers each value (values with more tracks find more fans)."""
        return [np.bincount(code[code >= 0], minlength=len(vals)) ** 0.5 for code, vals in zip(self.codes, self.values)]


def labels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per track, -1 for an empty value; the value of each code), codes in order of first appearance."""
    text = column.where(column.notna(), "").astype(str).str.strip()
    code, uniques = pd.factorize(text.where(text != "", None), use_na_sentinel=True)
    return code.astype(np.int64), np.asarray(uniques, dtype=object)


def track_tastes(tracks: pd.DataFrame, config: MockLogConfig, vectors: np.ndarray | None, available: list[str],
                 groups: list[np.ndarray], group_of: np.ndarray, rng: np.random.Generator) -> TrackTastes:
    """The tastes of ``tracks``: the taste columns (``config.taste_columns``, else those of
    :data:`AUTO_TASTE_COLUMNS` with two values or more), then k-means clusters of ``vectors`` (checked by
    the caller) or, when there is no other taste, random clusters of the ``groups`` (works / albums).
    ``available``: the metadata columns, named in errors."""
    found: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, code of each track, value of each code)
    if config.taste_columns is None:
        wanted = [c for c in AUTO_TASTE_COLUMNS if c in tracks.columns and labels(tracks[c])[1].size >= 2]
    else:
        wanted = list(dict.fromkeys(config.taste_columns))
        for column in wanted:
            if column == "track_id":
                raise ValueError("taste_columns: track_id names every track apart; pick metadata columns "
                                 f"(available: {available})")
            if column not in tracks.columns:
                raise ValueError(f"taste_columns: no column {column!r} in the tracks table (available: {available})")
    for column in wanted:
        code, value = labels(tracks[column])
        if value.size == 0:
            raise ValueError(f"taste_columns: column {column!r} has no values")
        found.append((str(column), code, value))
    if vectors is not None:
        clusters = _audio_clusters(vectors, config.audio_clusters, int(rng.integers(2**31)))
        if clusters is not None:
            found.append(("audio_cluster", clusters,
                          np.array([f"c{i}" for i in range(int(clusters.max()) + 1)], dtype=object)))
    elif not found and config.audio_clusters >= 1 and len(groups) >= 2:
        k = min(config.audio_clusters, len(groups))
        cluster_of_group = rng.permutation(np.arange(len(groups)) % k)  # every cluster non-empty
        found.append(("random_cluster", cluster_of_group[group_of],
                      np.array([f"c{i}" for i in range(k)], dtype=object)))
    names, codes, values = zip(*found) if found else ((), (), ())
    return TrackTastes(tuple(names), list(codes), list(values))


def _audio_clusters(vectors: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """k-means labels of the L2-normalised vectors (fewer clusters when there are fewer distinct rows)."""
    from sklearn.cluster import KMeans

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    k = min(k, len(np.unique(np.round(unit, 6), axis=0)))
    if k < 2:
        return None
    assigned = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(unit)
    return pd.factorize(assigned)[0].astype(np.int64)  # numbered by first appearance: stable names


def user_tastes(rng: np.random.Generator, tastes: TrackTastes, value_weights: list[np.ndarray],
                values_per_taste: int, user_id: str) -> tuple[list[np.ndarray], list[tuple[str, str, str]]]:
    """One user's tastes: 1 to ``values_per_taste`` preferred values of every taste, drawn by
    ``value_weights`` (:meth:`TrackTastes.value_weights`). Returns (per taste: each track's weight, 0 off
    the user's values, :data:`TASTE_BONUS` ** (other tastes matched) on them; preference rows
    ``user_id, taste, value``)."""
    prefs: list[np.ndarray] = []
    preference_rows: list[tuple[str, str, str]] = []
    for name, code, vals, weight in zip(tastes.names, tastes.codes, tastes.values, value_weights):
        k = min(int(rng.integers(1, values_per_taste + 1)), len(vals))
        chosen = rng.choice(len(vals), size=k, replace=False, p=weight / weight.sum())
        prefs.append(np.isin(code, chosen))
        preference_rows += [(user_id, name, str(vals[c])) for c in sorted(chosen)]
    if not prefs:
        return [], preference_rows
    bonus = TASTE_BONUS ** np.maximum(np.sum(prefs, axis=0) - 1, 0)
    return [mask * bonus for mask in prefs], preference_rows
