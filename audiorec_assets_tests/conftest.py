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
