"""The split as arrays read from the lake's Parquet files (one DuckDB query) equals the pandas construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.recommenders.data import InteractionData, interaction_data_from_parquet


def awkward_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ids with quotes, accents and digits; equal first-listen times within a user; a user with val items only;
    a listened track missing from the catalogue; cold tracks; plays > 1."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:03d}" for i in range(40)] + ["Zoë", "o'brien", '"quoted"', "10", "9"]
    tracks = [f"t{i:03d}" for i in range(70)] + ["Für Élise", "t'x"]
    rows = []
    for user in users:
        for track in rng.choice(tracks, int(rng.integers(3, 15)), replace=False):
            split = str(rng.choice(["train", "train", "train", "val", "test", "test_cold"]))
            hour = int(rng.integers(0, 5))  # few distinct times: many ties, broken by item index
            rows.append((user, str(track), pd.Timestamp("2020-01-01") + pd.Timedelta(hours=hour),
                         int(rng.integers(1, 4)), split))
    rows.append(("only_val", "t001", pd.Timestamp("2020-02-01"), 1, "val"))
    rows.append(("u000", "not_in_catalogue", pd.Timestamp("2020-01-01"), 1, "train"))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    order = rng.permutation(len(tracks))  # item_idx is not the id order
    catalogue = pd.DataFrame({"track_id": np.array(tracks, dtype=object)[order], "item_idx": np.arange(len(tracks))})
    return interactions, catalogue


def test_parquet_construction_equals_the_frames_construction(tmp_path: Path):
    interactions, catalogue = awkward_split()
    folder = tmp_path / "o'lake \"x\""
    folder.mkdir()
    interactions.to_parquet(folder / "interactions.parquet")
    catalogue.to_parquet(folder / "tracks.parquet")
    expected = InteractionData.from_frames(interactions, catalogue)
    got = interaction_data_from_parquet(folder / "interactions.parquet", folder / "tracks.parquet")
    assert got.user_ids.tolist() == expected.user_ids.tolist() and "only_val" not in got.user_ids.tolist()
    assert got.track_ids.tolist() == expected.track_ids.tolist()
    for split in ("train", "val", "test", "test_cold"):
        np.testing.assert_array_equal(got.split(split).indptr, expected.split(split).indptr, err_msg=split)
        np.testing.assert_array_equal(got.split(split).indices, expected.split(split).indices, err_msg=split)
    np.testing.assert_array_equal(got.train_plays, expected.train_plays)
    assert len(got.test_cold.indices) > 0 and got.n_items == len(catalogue)
