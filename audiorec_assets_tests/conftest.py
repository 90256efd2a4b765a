import os

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """A temporary, empty lake, also exported as $AUDIOREC_LAKE."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("AUDIOREC_LAKE", str(root))
    return root


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    """An empty persistent Dagster instance folder (telemetry off), exported as $DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small torch models train faster (and reproducibly) on one thread; restores the setting after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
