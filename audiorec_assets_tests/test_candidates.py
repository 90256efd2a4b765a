"""Every registered recommender on a catalogue with tracks nobody played in train (docs/split.md, candidates).

Warm lists (val/test) hold only tracks with train plays, never the user's history, whatever the model; cold
lists (test_cold) hold only the cold tracks, and only models that can score unseen tracks make them. Run on the
real registry, so a new recommender is covered by adding its line there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiorec_assets.evaluation.protocol import evaluation_splits, recommend_all_splits
from audiorec_assets.recommenders import RECOMMENDERS, recommender_class
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings
from audiorec_assets.study import NO_AUDIO, is_valid_cell

N_USERS, N_WARM, N_EVAL_ONLY, N_NEVER, DIM = 40, 30, 4, 3, 8


def catalogue_with_cold_tracks(seed: int = 0) -> tuple[InteractionData, np.ndarray]:
    """30 tracks with train plays; 4 played only in the evaluation window (test_cold); 3 never played."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01")
    rows = []
    for u in range(N_USERS):
        own = rng.choice(N_WARM, 12, replace=False)
        for step, item in enumerate(own):
            split = "train" if step < 8 else ("val" if step < 10 else "test")
            rows.append((f"u{u:02d}", f"w{item:02d}", start + pd.Timedelta(hours=step), 1 + step % 2, split))
        rows.append((f"u{u:02d}", f"e{u % N_EVAL_ONLY}", start + pd.Timedelta(days=30), 1, "test_cold"))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    # warm evaluation as the split makes it: tracks with train plays only
    train_tracks = set(interactions.loc[interactions["split"] == "train", "track_id"])
    warm_eval = interactions["split"].isin(["val", "test"])
    interactions = interactions[~warm_eval | interactions["track_id"].isin(train_tracks)]
    track_ids = sorted([f"w{i:02d}" for i in range(N_WARM)] + [f"e{i}" for i in range(N_EVAL_ONLY)]
                       + [f"z{i}" for i in range(N_NEVER)])
    tracks = pd.DataFrame({"track_id": track_ids, "item_idx": np.arange(len(track_ids))})
    return InteractionData.from_frames(interactions, tracks), rng.normal(size=(len(track_ids), DIM)).astype(np.float32)


SETTINGS = ExperimentSettings(
    seed=3, shallow={"max_epochs": 3, "batch_size": 64}, als={"factors": 4, "iterations": 3},
    bert4rec={"hidden_dim": 16, "ffn_dim": 16, "max_len": 12, "infer_len": 6, "max_epochs": 3, "id_dim": 16},
    sasrec={"hidden_dim": 16, "ffn_dim": 16, "max_len": 8, "max_epochs": 3, "id_dim": 16},
)
CELLS = [(r, e) for r in RECOMMENDERS for e in ("audio", NO_AUDIO) if is_valid_cell("x" if e == "audio" else e, r)]


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("preset", ["guide", "paper_code"])
@pytest.mark.parametrize("recommender, encoder", CELLS)
def test_lists_hold_only_the_split_candidates(recommender, encoder, preset):
    data, vectors = catalogue_with_cold_tracks()
    cold = set(data.cold_items.tolist())
    assert len(cold) == N_EVAL_ONLY + N_NEVER and len(data.test_cold.indices) == N_USERS
    item_vectors = vectors if encoder == "audio" else np.zeros((data.n_items, 0), dtype=np.float32)
    model = recommender_class(recommender)(SETTINGS.model_copy(update={"preset": preset}))
    model.fit(data, item_vectors)
    rows = recommend_all_splits(model, data, n=50)
    track_of = {t: i for i, t in enumerate(data.track_ids)}
    rows["item"] = rows["track_id"].map(track_of)
    warm = rows[rows["split"].isin(["val", "test"])]
    assert len(warm) and set(warm["item"]) <= set(data.train_items.tolist())
    history = {(data.user_ids[u], int(i)) for u in range(data.n_users) for i in data.train.items_of(u)}
    assert not history & set(zip(rows["user_id"], rows["item"])), "train history listed"
    cold_rows = rows[rows["split"] == "test_cold"]
    if model.scores_unseen_items:
        assert "test_cold" in evaluation_splits(model, data)
        assert set(cold_rows["item"]) == cold  # every cold track, and nothing else (7 < 50 slots)
    else:
        assert cold_rows.empty and "test_cold" not in evaluation_splits(model, data)
    # audio-free cells cannot score what they never saw; audio cells can (knn, shallow, bert4rec, sasrec)
    assert model.scores_unseen_items == (encoder == "audio")
