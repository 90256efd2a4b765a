"""The demo data generator: determinism, file formats, and that the data carries signal.

Small catalogues (24 tracks, 30 users) for the format checks; one default-size demo
(320 tracks, 300 users, ~50k events) shared by the statistical checks, and its model
(:func:`demo_model`, the same seed: catalogue, tastes and log without files) for the
checks that need the users' tastes. The slow check with real encoders (musicnn, warm and
cold KNN against the controls) is ``bench/demo_signal.py``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiorec_assets.datasets.demo import (
    ATTRIBUTES,
    DEMO_NOTE,
    SAMPLE_RATE,
    STYLES,
    VOICES,
    DemoModel,
    DemoSummary,
    TrackSound,
    attribute_matrix,
    demo_model,
    generate_demo,
    style_mix,
    synthesize,
)

START, END = date(2019, 1, 1), date(2020, 3, 1)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def eval_start(listens: pd.DataFrame) -> pd.Timestamp:
    """The derived split's evaluation window starts at midnight 30 days before the last event."""
    return (listens["timestamp"].max() - timedelta(days=30)).normalize()


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


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return demo_model(0)[0]


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


def test_model_is_what_was_written(default_demo, model: DemoModel) -> None:
    """demo_model(seed) regenerates exactly the catalogue and log that generate_demo(seed) wrote."""
    _, tracks, listens, _ = default_demo
    assert model.tracks["track_id"].tolist() == tracks["track_id"].tolist()
    assert np.allclose(attribute_matrix(model.tracks), attribute_matrix(tracks))
    assert model.listens["track_id"].tolist() == listens["track_id"].tolist()
    assert (model.listens["timestamp"].dt.floor("s") == listens["timestamp"]).all()
    assert len(model.users) == 300 and model.users["user_id"].is_unique


def _sound(**changes) -> TrackSound:
    base = dict(seconds=4.0, tempo_bpm=100.0, root_midi=55, mode="major", brightness=0.0, notes_per_beat=2.0,
                voice="pluck")
    return TrackSound(**{**base, **changes})


def test_synthesize_every_voice_is_deterministic_and_sane() -> None:
    sounds = [_sound(voice=s.voice, percussion=s.percussion, mode=s.mode) for s in STYLES]
    sounds.append(_sound(seconds=14.0, voice="saw", blend_voice="bell", blend=0.4, percussion="four"))  # phrase loop
    assert {s.voice for s in sounds} == set(VOICES)
    for sound in sounds:
        y = synthesize(np.random.default_rng(1), sound)
        again = synthesize(np.random.default_rng(1), sound)
        assert np.array_equal(y, again), sound.voice
        assert y.dtype == np.float32 and len(y) == round(sound.seconds * SAMPLE_RATE), sound.voice
        assert np.isfinite(y).all() and np.abs(y).max() < 1.0, sound.voice
        assert np.sqrt(np.mean(y**2)) > 0.05, sound.voice  # audible, not silence


def test_synthesizer_renders_the_attributes() -> None:
    """Brightness raises the spectral centroid, register the pitch, density and tempo the onset rate: every voice."""
    import librosa

    freqs = np.fft.rfftfreq(round(4.0 * SAMPLE_RATE), 1.0 / SAMPLE_RATE)
    band = (freqs > 30.0) & (freqs < 4000.0)

    def render(**changes) -> np.ndarray:
        return synthesize(np.random.default_rng(1), _sound(**changes))

    def centroid(y: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(y))
        return float((spectrum * freqs).sum() / spectrum.sum())

    def pitch_octaves(y: np.ndarray) -> float:  # power-weighted mean log2 frequency below 4 kHz
        power = np.abs(np.fft.rfft(y))[band] ** 2
        return float((power * np.log2(freqs[band])).sum() / power.sum())

    def onsets(y: np.ndarray) -> int:
        return len(librosa.onset.onset_detect(y=y, sr=SAMPLE_RATE))

    for voice in VOICES:
        assert centroid(render(voice=voice, brightness=1.5)) > 1.1 * centroid(render(voice=voice, brightness=-1.5)), voice
        assert pitch_octaves(render(voice=voice, root_midi=66)) > pitch_octaves(render(voice=voice, root_midi=46)) + 0.5
        if voice != "pad":  # pads change chord at most once a beat
            assert onsets(render(voice=voice, notes_per_beat=4.0)) > 2 * onsets(render(voice=voice, notes_per_beat=0.5))
        assert onsets(render(voice=voice, tempo_bpm=160.0, notes_per_beat=1.0)) > onsets(
            render(voice=voice, tempo_bpm=70.0, notes_per_beat=1.0)), voice


# ----------------------------------------------------------------------------- formats


def test_tracks_csv_and_audio_files(small: tuple[DemoSummary, Path]) -> None:
    summary, raw = small
    tracks = pd.read_csv(raw / "tracks.csv")
    assert list(tracks.columns[:5]) == ["track_id", "artist", "album", "title", "style"]
    for column in ("tempo_bpm", "brightness", "root_midi", "key", "notes_per_beat", "blend_style", "blend",
                   "new_release", "popularity"):
        assert column in tracks.columns, column
    assert summary.n_tracks == len(tracks) == 24
    ids = tracks["track_id"].tolist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(re.fullmatch(r"t\d{4}", t) for t in ids)
    assert set(tracks["style"]) <= {s.name for s in STYLES}
    assert set(tracks["blend_style"].dropna()) <= {s.name for s in STYLES}
    assert tracks["blend"].between(0.0, 0.5).all()
    assert (tracks.groupby("artist")["style"].nunique() == 1).all()  # an artist has one style
    assert (tracks.groupby("album")["artist"].nunique() == 1).all()
    assert (tracks.groupby("album")["release_date"].nunique() == 1).all()
    for _, album in tracks.groupby("album", sort=False):  # album order = id order, numbered 1..k
        assert album["track_number"].tolist() == list(range(1, len(album) + 1))
    assert 0 < summary.n_new_release_tracks == tracks["new_release"].sum() < 0.3 * len(tracks)
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
    assert "seed 3" in note and "Generative model" in note and "new_release" in note


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
    assert (summary.n_tracks, summary.n_users) == (320, 300)
    assert 25 <= summary.n_artists <= 50 and 55 <= summary.n_albums <= 100
    assert 35_000 <= summary.n_events <= 80_000
    assert summary.first_listen < datetime(2019, 1, 4) and summary.last_listen > datetime(2020, 2, 26)
    assert tracks["style"].nunique() == len(STYLES)


def test_listening_behaviour(default_demo) -> None:
    _, tracks, listens, _ = default_demo
    plays = listens.groupby(["user_id", "track_id"]).size()
    assert (plays > 1).mean() > 0.15  # replays

    first = listens.drop_duplicates(["user_id", "track_id"])  # first listens, in time order
    per_month = first.groupby(first["timestamp"].dt.to_period("M")).size()
    assert len(per_month) == 14 and per_month.min() > 300  # discovery never stops

    # the derived split: new-to-user tracks in the last month, of tracks known before it (warm)
    start = eval_start(listens)
    before, after = listens[listens["timestamp"] < start], listens[listens["timestamp"] >= start]
    seen = set(zip(before["user_id"], before["track_id"]))
    known = set(before["track_id"])
    new = {(u, t) for u, t in zip(after["user_id"], after["track_id"]) if (u, t) not in seen and t in known}
    users_with_new = len({u for u, _ in new})
    assert len(new) >= 500
    assert users_with_new >= 0.5 * listens["user_id"].nunique()
    assert users_with_new >= 0.6 * after["user_id"].nunique()

    # sessions walk albums in order (skipping now and then): consecutive first listens are
    # often a later track of the same album, most often the next one
    pos = {t: (a, n) for t, a, n in zip(tracks["track_id"], tracks["album"], tracks["track_number"])}
    pairs = later = following = 0
    for _, items in first.groupby("user_id", sort=False)["track_id"]:
        for a, b in zip(items.iloc[:-1], items.iloc[1:]):
            pairs += 1
            later += pos[a][0] == pos[b][0] and pos[b][1] > pos[a][1]
            following += pos[a][0] == pos[b][0] and pos[b][1] == pos[a][1] + 1
    assert later / pairs > 0.3 and following / pairs > 0.2


def test_new_releases_inside_the_evaluation_window(default_demo) -> None:
    """~12 % of the tracks come out in the last month: no plays before it, listeners in it (test_cold)."""
    _, tracks, listens, _ = default_demo
    start = eval_start(listens)
    new = tracks[tracks["new_release"]]
    assert 0.08 <= len(new) / len(tracks) <= 0.16
    assert new["album"].nunique() >= 5 and new["style"].nunique() >= 4
    assert (pd.to_datetime(new["release_date"]) >= start).all()
    assert (pd.to_datetime(tracks.loc[~tracks["new_release"], "release_date"]) < start - timedelta(days=30)).all()

    before, after = listens[listens["timestamp"] < start], listens[listens["timestamp"] >= start]
    assert not before["track_id"].isin(new["track_id"]).any()  # no train plays: cold
    released = dict(zip(tracks["track_id"], pd.to_datetime(tracks["release_date"])))
    assert (listens["timestamp"] >= listens["track_id"].map(released)).all()  # nothing is heard before its release
    cold = after[after["track_id"].isin(new["track_id"]) & after["user_id"].isin(set(before["user_id"]))]
    cold_pairs = cold.drop_duplicates(["user_id", "track_id"])
    assert len(cold_pairs) >= 200 and cold_pairs["user_id"].nunique() >= 60
    assert cold_pairs["track_id"].nunique() >= 0.8 * len(new)


def test_tracks_of_an_album_vary(default_demo) -> None:
    """Tracks of one album differ in every attribute (a good part of the spread within a style)."""
    _, tracks, _, _ = default_demo
    attrs = attribute_matrix(tracks)
    albums = [g.index.to_numpy() for _, g in tracks.groupby("album") if len(g) >= 3]
    styles = [g.index.to_numpy() for _, g in tracks.groupby("style")]
    within_album = np.mean([attrs[i].var(axis=0) for i in albums], axis=0)
    within_style = np.mean([attrs[i].var(axis=0) for i in styles], axis=0)
    assert (within_album > 0.2 * within_style).all(), (within_album, within_style)
    assert (within_album < within_style).all()  # but an album still hangs together
    assert np.mean([tracks.loc[i, "tempo_bpm"].std() / tracks.loc[i, "tempo_bpm"].mean() for i in albums]) > 0.05
    assert np.mean([np.ptp(tracks.loc[i, "root_midi"]) for i in albums]) >= 3  # semitones
    assert np.mean([np.ptp(tracks.loc[i, "brightness"]) for i in albums]) > 0.5


def test_choices_follow_the_audible_taste(model: DemoModel) -> None:
    """Within the styles a user plays, the tracks they play sound closer to their taste than the others."""
    tracks, users, listens = model.tracks, model.users.set_index("user_id"), model.listens
    attrs = attribute_matrix(tracks)
    style = tracks["style"].to_numpy()
    index = {t: i for i, t in enumerate(tracks["track_id"])}
    mu = (users[[f"mu_{a}" for a in ATTRIBUTES]].to_numpy() + users[[f"mu_{a}_end" for a in ATTRIBUTES]].to_numpy()) / 2
    mu = dict(zip(users.index, mu))
    closer, ratios = [], []
    for user, played in listens.drop_duplicates(["user_id", "track_id"]).groupby("user_id")["track_id"]:
        heard = np.array([index[t] for t in played])
        if len(heard) < 10:
            continue
        same_styles = np.flatnonzero(np.isin(style, np.unique(style[heard])))
        dist = np.sum((attrs - mu[user]) ** 2, axis=1)
        closer.append(np.median(dist[heard]) < np.median(dist[same_styles]))
        ratios.append(dist[heard].mean() / dist[same_styles].mean())
    assert len(closer) >= 250
    assert np.mean(closer) > 0.9 and np.median(ratios) < 0.75

    # and the style weights: most plays are of tracks whose timbre mix matches the user's styles
    taste = users[[f"taste_{s.name}" for s in STYLES]]
    match = (style_mix(tracks)[[index[t] for t in listens["track_id"]]] * taste.loc[listens["user_id"]].to_numpy()).sum(1)
    assert np.mean(match) > 2.5 * np.mean(taste.to_numpy().mean(axis=1))


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


@pytest.fixture(scope="module")
def features(default_demo) -> np.ndarray:
    """z-scored, L2-normalised MFCC-like features of the first 4 s of every track."""
    _, tracks, _, raw = default_demo
    feats = np.array(
        [
            mfcc_like(sf.read(raw / "audio" / f"{t}.flac", frames=4 * SAMPLE_RATE, dtype="float32")[0], SAMPLE_RATE)
            for t in tracks["track_id"]
        ]
    )
    z = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-9)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_audio_tells_styles_apart_and_hears_the_attributes(default_demo, features: np.ndarray) -> None:
    _, tracks, _, _ = default_demo
    sim = features @ features.T
    np.fill_diagonal(sim, -np.inf)
    style = tracks["style"].to_numpy()
    assert (style[sim.argmax(axis=1)] == style).mean() > 0.9  # styles are audibly distinct

    # within a style, tracks that are close in attributes sound closer (cosine) than tracks far apart
    attrs = attribute_matrix(tracks)
    near, far = [], []
    for s in np.unique(style):
        idx = np.flatnonzero(style == s)
        dist = np.linalg.norm(attrs[idx, None, :] - attrs[None, idx, :], axis=2)
        cos = sim[np.ix_(idx, idx)]
        off = ~np.eye(len(idx), dtype=bool)
        lo, hi = np.quantile(dist[off], [0.25, 0.75])
        near.extend(cos[off & (dist <= lo)])
        far.extend(cos[off & (dist >= hi)])
    assert np.mean(near) > np.mean(far) + 0.1, (np.mean(near), np.mean(far))


def test_audio_carries_taste_signal(default_demo, features: np.ndarray) -> None:
    """An MFCC user profile (mean of earlier tracks) finds last-month discoveries far better than chance, warm and cold."""
    _, tracks, listens, _ = default_demo
    z = features
    index = {t: i for i, t in enumerate(tracks["track_id"])}
    start = eval_start(listens)
    before = listens[listens["timestamp"] < start]
    listeners = before.drop_duplicates(["user_id", "track_id"])["track_id"].value_counts()
    popularity = np.array([listeners.get(t, 0) for t in tracks["track_id"]], dtype=float)
    warm_tracks = np.array(sorted(index[t] for t in set(before["track_id"])))
    cold_tracks = np.setdiff1d(np.arange(len(tracks)), warm_tracks)
    early_by_user = before.groupby("user_id")["track_id"].agg(set)
    late_by_user = listens[listens["timestamp"] >= start].groupby("user_id")["track_id"].agg(set)
    for split, pool in (("warm", warm_tracks), ("cold", cold_tracks)):
        audio_hits, pop_hits, chance, ranks = [], [], [], []
        for user, late in late_by_user.items():
            early = early_by_user.get(user, set())
            candidates = np.setdiff1d(pool, [index[t] for t in early])
            new = np.isin(candidates, [index[t] for t in late - early])
            if not early or not new.any():
                continue
            profile = z[[index[t] for t in early]].mean(axis=0)
            scores = z[candidates] @ (profile / np.linalg.norm(profile))
            order = np.argsort(-scores, kind="stable")
            audio_hits.append(new[order[:10]].any())
            pop_hits.append(new[np.argsort(-popularity[candidates], kind="stable")[:10]].any())
            n, k = len(candidates), int(new.sum())
            chance.append(1.0 - comb(n - k, 10) / comb(n, 10))  # a random top 10
            rank = np.empty(n)
            rank[order] = np.arange(n) / (n - 1)
            ranks.append(rank[new].mean())
        audio, random = np.mean(audio_hits), np.mean(chance)
        assert len(audio_hits) >= 120, split
        assert np.mean(ranks) < 0.4, split  # 0.5 = chance
        assert audio > random + 0.15 and audio > 1.3 * random, f"{split}: audio hit@10 {audio:.3f} vs {random:.3f}"
        if split == "warm":
            assert np.mean(pop_hits) > random  # popularity is a fair baseline
