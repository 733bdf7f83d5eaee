"""Hugging Face Hub: save_pretrained writes a model folder with a model card; from_pretrained and
push_to_hub round-trip it (offline: the Hub client is replaced by a local folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs

hub = pytest.importorskip("huggingface_hub")


@pytest.fixture
def trained(tiny, records):
    return Object2Vec(**tiny).fit(records[:200], validation=records[200:250], test=records[250:])


def test_save_pretrained_writes_the_model_folder_and_a_card_that_says_how_to_load_it(tmp_path, trained, records):
    trained.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "metrics.json", "model.safetensors"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: object2vec\n")
    assert "classification into 2 classes" in card and "| in0 | pooled_embedding | 200 | 10 |" in card
    assert "| test | accuracy |" in card and "Object2Vec.from_pretrained(" in card
    again = Object2Vec.from_pretrained(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(again.predict(records[:20]), trained.predict(records[:20]))


def test_from_pretrained_downloads_a_repository_id(tmp_path, trained, monkeypatch, records):
    trained.save_pretrained(tmp_path / "snapshot")
    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(repo_id=repo_id, **kwargs)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    model = Object2Vec.from_pretrained("someone/pairs", device="cpu", revision="v1")
    assert asked == {"repo_id": "someone/pairs", "revision": "v1"}
    np.testing.assert_array_equal(model.predict(records[:5]), trained.predict(records[:5]))


def test_push_to_hub_creates_the_repository_and_uploads_the_folder_with_its_card(tmp_path, trained, monkeypatch):
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            uploaded["token"] = token

        def create_repo(self, repo_id, **kwargs):
            uploaded["created"] = (repo_id, kwargs["exist_ok"], kwargs["private"])

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Commit", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    url = trained.push_to_hub("someone/pairs", private=True, token="t")
    assert url == "https://hub/someone/pairs/commit/1"
    assert uploaded == {
        "token": "t",
        "created": ("someone/pairs", True, True),
        "files": ["README.md", "config.json", "metrics.json", "model.safetensors"],
    }


def test_a_regression_model_card_names_its_task(tmp_path, tiny):
    data = make_pairs(100, task="regression")
    Object2Vec(**tiny, output_layer="mean_squared_error").fit(data).save_pretrained(tmp_path / "r")
    assert "regression (mean squared error)" in (tmp_path / "r" / "README.md").read_text()
