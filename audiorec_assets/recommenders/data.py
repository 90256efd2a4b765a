"""The split as arrays: what every recommender trains on and every evaluation scores against."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class UserItems:
    """A CSR-style list of items per user: items of user ``u`` are ``indices[indptr[u]:indptr[u+1]]``.

    Within a user, items are ordered by first-listen time (oldest first).
    """

    indptr: np.ndarray  # int64, (n_users + 1,)
    indices: np.ndarray  # int64, item_idx

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def items_of(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row_ids(self) -> np.ndarray:
        """User index of every entry of ``indices``."""
        return np.repeat(np.arange(self.n_users), self.lengths())

    @classmethod
    def from_pairs(cls, user_idx: np.ndarray, item_idx: np.ndarray, order_key: np.ndarray, n_users: int) -> UserItems:
        order = np.lexsort((order_key, user_idx))
        users_sorted = user_idx[order]
        counts = np.bincount(users_sorted, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr=indptr, indices=item_idx[order].astype(np.int64))


WARM_SPLITS = ("val", "test")
COLD_SPLITS = ("test_cold",)
EVAL_SPLITS = (*WARM_SPLITS, *COLD_SPLITS)


@dataclass(frozen=True)
class InteractionData:
    """Users, items and the splits of ``audiorec.interactions``, indexed densely.

    ``user_ids[u]`` is the original id of user index ``u`` (sorted ascending);
    ``track_ids[i]`` is the track of ``item_idx`` ``i`` (the embedding row).
    Users are those with at least one train item.

    Candidates (docs/split.md): in the warm splits (``val``, ``test``) the tracks with train plays
    (:attr:`train_items`, the study's vocabulary); in ``test_cold`` the catalogue tracks without
    any (:attr:`cold_items`). Recommenders exclude each user's train history on top.
    """

    user_ids: np.ndarray
    track_ids: np.ndarray
    train: UserItems
    train_plays: np.ndarray  # plays aligned with ``train.indices``
    val: UserItems
    test: UserItems
    test_cold: UserItems | None = None  # None: no cold split (older lakes); treated as empty

    @cached_property
    def train_items(self) -> np.ndarray:
        """Sorted item_idx of every track with at least one train play: the warm candidates."""
        return np.flatnonzero(np.bincount(self.train.indices, minlength=self.n_items)).astype(np.int64)  # O(pairs)

    @cached_property
    def cold_items(self) -> np.ndarray:
        """Sorted item_idx of every catalogue track without train plays: the cold candidates."""
        return np.setdiff1d(np.arange(self.n_items, dtype=np.int64), self.train_items, assume_unique=True)

    def candidates(self, split: str) -> np.ndarray:
        """The items a recommender may rank for users of ``split`` (before removing their history)."""
        if split in COLD_SPLITS:
            return self.cold_items
        if split in (*WARM_SPLITS, "train"):
            return self.train_items
        raise KeyError(f"unknown split {split!r}; known: {EVAL_SPLITS}")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.track_ids)

    def split(self, name: str) -> UserItems:
        if name == "test_cold":
            return self.test_cold if self.test_cold is not None else _empty(self.n_users)
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def eval_users(self, name: str) -> np.ndarray:
        """Indices of users with at least one item in split ``name``."""
        return np.flatnonzero(self.split(name).lengths() > 0)

    @classmethod
    def from_frames(cls, interactions: pd.DataFrame, tracks: pd.DataFrame) -> InteractionData:
        """Build from ``audiorec.interactions`` and ``audiorec.tracks`` rows."""
        track_ids = tracks.sort_values("item_idx")["track_id"].to_numpy(dtype=object)
        item_of = pd.Series(np.arange(len(track_ids)), index=track_ids)
        train_rows = interactions[interactions["split"] == "train"]
        user_ids = np.sort(train_rows["user_id"].unique()).astype(object)
        user_of = pd.Series(np.arange(len(user_ids)), index=user_ids)

        def build(split: str) -> tuple[UserItems, np.ndarray]:
            rows = interactions[interactions["split"] == split]
            rows = rows[rows["user_id"].isin(user_of.index) & rows["track_id"].isin(item_of.index)]
            users = user_of.loc[rows["user_id"]].to_numpy()
            items = item_of.loc[rows["track_id"]].to_numpy()
            first_ts = pd.to_datetime(rows["first_ts"]).to_numpy().astype("datetime64[ns]").astype(np.int64)
            # order within a user: first-listen time, ties broken by item index (deterministic)
            time_rank = np.lexsort((items, first_ts)).argsort()
            user_items = UserItems.from_pairs(users, items, time_rank, len(user_ids))
            plays = rows["plays"].to_numpy(dtype=np.int64)[np.lexsort((time_rank, users))]
            return user_items, plays

        train, train_plays = build("train")
        splits = {name: build(name)[0] for name in ("val", "test", "test_cold")}
        return cls(user_ids=user_ids, track_ids=track_ids, train=train, train_plays=train_plays, **splits)


def interaction_data_from_parquet(interactions: Path, tracks: Path) -> InteractionData:
    """:meth:`InteractionData.from_frames` of the two tables' Parquet files, with the ids mapped to indices in
    one DuckDB query (a join and a sort, multi-threaded) instead of through pandas: the same arrays, at a
    fraction of the time and memory at Music4All-Onion size (millions of pairs)."""
    import duckdb

    from audiorec_assets.warehouse import sql_literal

    con = duckdb.connect()
    try:
        con.execute(f"CREATE TEMP VIEW interactions AS SELECT * FROM read_parquet({sql_literal(interactions)})")
        con.execute(f"CREATE TEMP VIEW tracks AS SELECT * FROM read_parquet({sql_literal(tracks)})")
        track_ids = con.execute("SELECT track_id FROM tracks ORDER BY item_idx").fetchnumpy()["track_id"]
        con.execute("""
            CREATE TEMP TABLE train_users AS
            SELECT user_id, CAST(row_number() OVER (ORDER BY user_id) - 1 AS BIGINT) AS user_idx
            FROM (SELECT DISTINCT user_id FROM interactions WHERE split = 'train')""")
        user_ids = con.execute("SELECT user_id FROM train_users ORDER BY user_idx").fetchnumpy()["user_id"]
        n_users = len(user_ids)

        def build(split: str) -> tuple[UserItems, np.ndarray]:
            # order within a user: first-listen time, ties broken by item index (as from_frames)
            rows = con.execute("""
                SELECT u.user_idx, CAST(t.item_idx AS BIGINT) AS item_idx, CAST(i.plays AS BIGINT) AS plays
                FROM interactions i JOIN train_users u USING (user_id) JOIN tracks t USING (track_id)
                WHERE i.split = ?
                ORDER BY u.user_idx, i.first_ts, t.item_idx""", [split]).fetchnumpy()
            users = np.asarray(rows["user_idx"], dtype=np.int64)
            indptr = np.zeros(n_users + 1, dtype=np.int64)
            np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
            return (UserItems(indptr=indptr, indices=np.asarray(rows["item_idx"], dtype=np.int64)),
                    np.asarray(rows["plays"], dtype=np.int64))

        train, train_plays = build("train")
        splits = {name: build(name)[0] for name in ("val", "test", "test_cold")}
    finally:
        con.close()
    return InteractionData(user_ids=np.asarray(user_ids, dtype=object), track_ids=np.asarray(track_ids, dtype=object),
                           train=train, train_plays=train_plays, **splits)


def _empty(n_users: int) -> UserItems:
    return UserItems(indptr=np.zeros(n_users + 1, dtype=np.int64), indices=np.zeros(0, dtype=np.int64))
