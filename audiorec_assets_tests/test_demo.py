"""The demo data generator: determinism, file formats, and that the data carries signal.

Small catalogues (24 tracks, 30 users) for the format checks; one default-size demo
(240 tracks, 300 users, ~45k events, ~10 s) shared by the statistical checks.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiorec_assets.data.demo import (
    DEMO_NOTE,
    SAMPLE_RATE,
    STYLES,
    DemoSummary,
    TrackSound,
    generate_demo,
    synthesize,
)

START, END = date(2019, 1, 1), date(2020, 3, 1)
LAST_MONTH = pd.Timestamp("2020-02-01")  # the evaluation window of the derived split
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, Path]:
    raw = tmp_path_factory.mktemp("small")
    return generate_demo(raw, seed=3, n_tracks=24, n_users=30), raw


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, pd.DataFrame, pd.DataFrame, Path]:
    raw = tmp_path_factory.mktemp("default")
    summary = generate_demo(raw, seed=0)
    tracks = pd.read_csv(raw / "tracks.csv")
    listens = pd.read_csv(raw / "listens.csv", parse_dates=["timestamp"])
    return summary, tracks, listens, raw


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files(small: tuple[DemoSummary, Path], tmp_path: Path) -> None:
    _, first = small
    generate_demo(tmp_path, seed=3, n_tracks=24, n_users=30)
    for name in ("listens.csv", "tracks.csv", DEMO_NOTE):
        assert (first / name).read_bytes() == (tmp_path / name).read_bytes(), name
    files = sorted(p.name for p in (first / "audio").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "audio").iterdir())
    for name in files:
        a, _ = sf.read(first / "audio" / name, dtype="int16")
        b, _ = sf.read(tmp_path / "audio" / name, dtype="int16")
        assert np.array_equal(a, b), name


def test_other_seed_differs_and_audio_flag_keeps_csvs(small: tuple[DemoSummary, Path], tmp_path: Path) -> None:
    _, first = small
    generate_demo(tmp_path / "same", seed=3, n_tracks=24, n_users=30, write_audio=False)
    generate_demo(tmp_path / "other", seed=4, n_tracks=24, n_users=30, write_audio=False)
    for name in ("listens.csv", "tracks.csv"):
        assert (first / name).read_bytes() == (tmp_path / "same" / name).read_bytes(), name
        assert (first / name).read_bytes() != (tmp_path / "other" / name).read_bytes(), name
    assert not (tmp_path / "same" / "audio").exists()


def test_synthesize_every_style_is_deterministic_and_sane() -> None:
    for style in STYLES:
        sound = TrackSound(style, 2.5, float(np.mean(style.tempo)), style.register[0], style.mode, 0.0, 1.0, 0.8)
        y = synthesize(np.random.default_rng(1), sound)
        again = synthesize(np.random.default_rng(1), sound)
        assert np.array_equal(y, again), style.name
        assert y.dtype == np.float32 and len(y) == round(2.5 * SAMPLE_RATE), style.name
        assert np.isfinite(y).all() and np.abs(y).max() < 1.0, style.name
        assert np.sqrt(np.mean(y**2)) > 0.05, style.name  # audible, not silence


# ----------------------------------------------------------------------------- formats


def test_tracks_csv_and_audio_files(small: tuple[DemoSummary, Path]) -> None:
    summary, raw = small
    tracks = pd.read_csv(raw / "tracks.csv")
    assert list(tracks.columns[:5]) == ["track_id", "artist", "album", "title", "style"]
    assert summary.n_tracks == len(tracks) == 24
    ids = tracks["track_id"].tolist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(re.fullmatch(r"t\d{4}", t) for t in ids)
    assert set(tracks["style"]) <= {s.name for s in STYLES}
    assert (tracks.groupby("artist")["style"].nunique() == 1).all()  # an artist has one style
    assert (tracks.groupby("album")["artist"].nunique() == 1).all()
    for _, album in tracks.groupby("album", sort=False):  # album order = id order, numbered 1..k
        assert album["track_number"].tolist() == list(range(1, len(album) + 1))
    assert sorted(p.stem for p in (raw / "audio").glob("*.flac")) == ids
    for row in tracks.itertuples():
        info = sf.info(str(raw / "audio" / f"{row.track_id}.flac"))
        assert (info.format, info.samplerate, info.channels) == ("FLAC", SAMPLE_RATE, 1)
        assert 10.0 <= info.duration <= 20.0
        assert abs(info.duration - row.duration_s) < 1e-3
        y, _ = sf.read(raw / "audio" / f"{row.track_id}.flac", dtype="float32")
        assert np.isfinite(y).all() and np.sqrt(np.mean(y**2)) > 0.05
    assert tracks["duration_s"].std() > 1.0  # lengths vary
    note = (raw / DEMO_NOTE).read_text()
    assert "seed 3" in note and "Generative model" in note


def test_listens_csv_format(small: tuple[DemoSummary, Path]) -> None:
    summary, raw = small
    text = (raw / "listens.csv").read_text().splitlines()
    assert text[0] == "user_id,track_id,timestamp"
    listens = pd.read_csv(raw / "listens.csv", dtype=str)
    assert len(listens) == summary.n_events > 0
    assert listens["timestamp"].map(lambda s: bool(TIMESTAMP.match(s))).all()
    ts = pd.to_datetime(listens["timestamp"], format="%Y-%m-%d %H:%M:%S")
    assert ts.is_monotonic_increasing
    assert ts.min() >= pd.Timestamp(START) and ts.max() < pd.Timestamp(END)
    assert (ts.max() - ts.min()).days >= 400  # ~14 months
    assert listens["user_id"].str.fullmatch(r"u\d{4}").all()
    assert listens["user_id"].nunique() == summary.n_users == 30
    audio = {p.stem for p in (raw / "audio").glob("*.flac")}
    assert set(listens["track_id"]) <= audio
    assert (summary.first_listen, summary.last_listen) == (ts.min().to_pydatetime(), ts.max().to_pydatetime())


def test_ingest_reads_the_demo(small: tuple[DemoSummary, Path], tmp_path: Path) -> None:
    import duckdb

    from audiorec_assets.data.sources import Layout, detect_source, find_audio, ingest_listens

    summary, raw = small
    source = detect_source(raw)
    assert source.layout == Layout.OWN and source.tracks_csv == raw / "tracks.csv"
    assert len(find_audio(source.audio_dir)) == summary.n_tracks
    with duckdb.connect() as con:
        assert ingest_listens(con, source, tmp_path / "listens.parquet", tmp_path) == summary.n_events


def test_refuses_foreign_data_and_replaces_old_demo(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "listens.csv").write_text("user_id,track_id,timestamp\n")
    with pytest.raises(FileExistsError, match="not the demo"):
        generate_demo(foreign, n_tracks=4, n_users=2)
    demo = tmp_path / "demo"
    generate_demo(demo, n_tracks=9, n_users=3, min_seconds=1.0, max_seconds=2.0)
    generate_demo(demo, n_tracks=5, n_users=3, min_seconds=1.0, max_seconds=2.0)
    assert len(list((demo / "audio").glob("*.flac"))) == 5  # no orphans of the larger demo


# ----------------------------------------------------------------------------- the default demo


def test_default_sizes(default_demo) -> None:
    summary, tracks, listens, _ = default_demo
    assert (summary.n_tracks, summary.n_users) == (240, 300)
    assert 20 <= summary.n_artists <= 40 and 40 <= summary.n_albums <= 80
    assert 30_000 <= summary.n_events <= 80_000
    assert summary.first_listen < datetime(2019, 1, 4) and summary.last_listen > datetime(2020, 2, 26)
    assert tracks["style"].nunique() == len(STYLES)
    assert summary.seconds < 60  # target ~10 s; generous for a loaded CI machine


def test_listening_behaviour(default_demo) -> None:
    _, tracks, listens, _ = default_demo
    plays = listens.groupby(["user_id", "track_id"]).size()
    assert (plays > 1).mean() > 0.15  # replays

    first = listens.drop_duplicates(["user_id", "track_id"])  # first listens, in time order
    per_month = first.groupby(first["timestamp"].dt.to_period("M")).size()
    assert len(per_month) == 14 and per_month.min() > 300  # discovery never stops

    # the derived split: new-to-user tracks in the last month, of tracks known before it
    before, after = listens[listens["timestamp"] < LAST_MONTH], listens[listens["timestamp"] >= LAST_MONTH]
    seen = set(zip(before["user_id"], before["track_id"]))
    known = set(before["track_id"])
    new = [(u, t) for u, t in zip(after["user_id"], after["track_id"]) if (u, t) not in seen and t in known]
    users_with_new = len({u for u, _ in new})
    assert users_with_new >= 0.5 * listens["user_id"].nunique()
    assert users_with_new >= 0.6 * after["user_id"].nunique()

    # sessions play albums in order: consecutive first listens are often the album's next track
    pos = {t: (a, n) for t, a, n in zip(tracks["track_id"], tracks["album"], tracks["track_number"])}
    pairs = follows = 0
    for _, items in first.groupby("user_id", sort=False)["track_id"]:
        for a, b in zip(items.iloc[:-1], items.iloc[1:]):
            pairs += 1
            follows += pos[a][0] == pos[b][0] and pos[b][1] == pos[a][1] + 1
    assert follows / pairs > 0.35


def mfcc_like(
    y: np.ndarray, sr: int, n_fft: int = 2048, hop: int = 512, n_bands: int = 40, n_coeffs: int = 20
) -> np.ndarray:
    """Mean and std of MFCC-like coefficients (log triangular bands + DCT): a 40-d timbre summary."""
    from scipy.fft import dct

    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.geomspace(40.0, sr / 2, n_bands + 2)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bands = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    coeffs = dct(np.log(power @ bands.T + 1e-10), type=2, norm="ortho", axis=1)[:, :n_coeffs]
    return np.concatenate([coeffs.mean(axis=0), coeffs.std(axis=0)])


def test_audio_carries_taste_signal(default_demo) -> None:
    """An MFCC user profile (mean of earlier tracks) finds last-month discoveries far better than chance."""
    _, tracks, listens, raw = default_demo
    feats = np.array(
        [
            mfcc_like(sf.read(raw / "audio" / f"{t}.flac", frames=4 * SAMPLE_RATE, dtype="float32")[0], SAMPLE_RATE)
            for t in tracks["track_id"]
        ]
    )
    z = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-9)
    z /= np.linalg.norm(z, axis=1, keepdims=True)

    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    style = tracks["style"].to_numpy()
    assert (style[sim.argmax(axis=1)] == style).mean() > 0.9  # styles are audibly distinct

    index = {t: i for i, t in enumerate(tracks["track_id"])}
    before = listens[listens["timestamp"] < LAST_MONTH]
    listeners = before.drop_duplicates(["user_id", "track_id"])["track_id"].value_counts()
    popularity = np.array([listeners.get(t, 0) for t in tracks["track_id"]], dtype=float)
    early_by_user = before.groupby("user_id")["track_id"].agg(set)
    late_by_user = listens[listens["timestamp"] >= LAST_MONTH].groupby("user_id")["track_id"].agg(set)
    audio_hits, pop_hits, chance, ranks, cos_new, cos_all = [], [], [], [], [], []
    for user, late in late_by_user.items():
        early = early_by_user.get(user, set())
        new = {index[t] for t in late - early}
        if not early or not new:
            continue
        profile = z[[index[t] for t in early]].mean(axis=0)
        profile /= np.linalg.norm(profile)
        candidates = np.array(sorted(set(range(len(tracks))) - {index[t] for t in early}))
        scores = z[candidates] @ profile
        is_new = np.isin(candidates, list(new))
        order = np.argsort(-scores, kind="stable")
        audio_hits.append(is_new[order[:10]].any())
        pop_hits.append(is_new[np.argsort(-popularity[candidates], kind="stable")[:10]].any())
        n, k = len(candidates), int(is_new.sum())
        chance.append(1.0 - comb(n - k, 10) / comb(n, 10))  # a random top 10
        rank = np.empty(n)
        rank[order] = np.arange(n) / (n - 1)
        ranks.append(rank[is_new].mean())
        cos_new.append(scores[is_new].mean())
        cos_all.append(scores.mean())

    assert len(audio_hits) >= 120
    audio, pop, random = np.mean(audio_hits), np.mean(pop_hits), np.mean(chance)
    assert np.mean(cos_new) > np.mean(cos_all) + 0.1  # discoveries sit closer to the profile
    assert np.mean(ranks) < 0.42  # 0.5 = chance
    assert audio > random + 0.08 and audio > 1.4 * random, f"audio hit@10 {audio:.3f} vs chance {random:.3f}"
    assert pop > random, f"popularity hit@10 {pop:.3f} vs chance {random:.3f}"  # a fair baseline
