"""The model folder: a round trip gives bit-identical predictions; bad folders give clear errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from object2vec import ModelFormatError, Object2Vec
from object2vec.hyperparameters import Hyperparameters


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"tied_token_embedding_weight": True},
        {"enc0_network": "hcnn", "enc0_token_embedding_dim": 8, "enc0_layers": 2},
        {"enc0_network": "bilstm", "enc0_token_embedding_dim": 8, "output_layer": "mean_squared_error"},
        {"enc1_network": "hcnn", "enc1_max_seq_len": 5, "enc1_vocab_size": 200, "enc1_token_embedding_dim": 8},
    ],
)
def test_save_and_load_give_bit_identical_predictions_and_embeddings(tmp_path, tiny, records, extra):
    params = {**tiny, **extra}
    if params.get("output_layer") == "mean_squared_error":
        records = [{**r, "label": float(r["label"])} for r in records]
    model = Object2Vec(**params, device="cpu").fit(records)
    model.save(tmp_path / "m")
    again = Object2Vec.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(model.predict(records), again.predict(records))
    seqs = [r["in0"] for r in records[:10]]
    np.testing.assert_array_equal(model.embed(in0=seqs), again.embed(in0=seqs))
    assert again.hyperparameters_ == model.hyperparameters_


def test_every_hyperparameter_survives_a_save_and_load(tmp_path, tiny, records):
    model = Object2Vec(**tiny, dropout=0.3, comparator_list="abs_diff, concat", weight_decay=0.001).fit(records)
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["format"] == "object2vec" and saved["format_version"] == 1
    assert set(saved["hyperparameters"]) == {f.name for f in dataclasses.fields(Hyperparameters)}
    assert Object2Vec.load(tmp_path / "m").hyperparameters_ == model.hyperparameters_


def test_folder_holds_config_weights_and_metrics_and_no_temporary_files(tmp_path, tiny, records):
    Object2Vec(**tiny).fit(records, validation=records[:30]).save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["best_epoch"] >= 1 and len(metrics["epochs"]) == tiny["epochs"]


def test_loading_draws_no_token_table_it_would_overwrite(tmp_path, tiny, records, monkeypatch):
    import torch

    Object2Vec(**tiny).fit(records).save(tmp_path / "m")
    drawn: list[tuple[int, ...]] = []
    normal = torch.nn.init.normal_
    monkeypatch.setattr(torch.nn.init, "normal_", lambda t, *a, **k: drawn.append(tuple(t.shape)) or normal(t, *a, **k))
    model = Object2Vec.load(tmp_path / "m", device="cpu")
    tables = {tuple(e.weight.shape) for e in model.model_.embeddings()}
    assert not tables & set(drawn)  # a table of millions of rows costs seconds to draw, and loading replaces it
    Object2Vec(**tiny).fit(records[:8])
    assert tables & set(drawn)  # training draws them (the check can fail)


def test_tied_table_is_stored_once(tmp_path, tiny, records):
    from safetensors import safe_open

    Object2Vec(**tiny, tied_token_embedding_weight=True).fit(records).save(tmp_path / "m")
    with safe_open(tmp_path / "m" / "model.safetensors", "pt") as f:
        assert sum("embedding" in k for k in f.keys()) == 1  # noqa: SIM118 - safe_open is not a dict


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text("{nope"), "is not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"format": "fasttext"}'), "has wrong file format"),
        (
            lambda d: (d / "config.json").write_text('{"format": "object2vec", "format_version": 99}'),
            "format_version 99 is not supported",
        ),
        (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), "cannot be read"),
        (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
    ],
)
def test_damaged_model_folders_are_refused_clearly(tmp_path, tiny, records, damage, message):
    Object2Vec(**tiny).fit(records).save(tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(ModelFormatError, match=message):
        Object2Vec.load(tmp_path / "m")


def test_weights_that_do_not_match_the_config_are_refused(tmp_path, tiny, records):
    Object2Vec(**tiny).fit(records).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["hyperparameters"]["enc_dim"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError):
        Object2Vec.load(tmp_path / "m")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFormatError, match="no such model folder"):
        Object2Vec.load(tmp_path / "nothing")
