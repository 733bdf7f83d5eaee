"""End to end: each encoder learns the planted synthetic tasks (classification and regression).

These train real models for a few seconds each; the expected numbers are the acceptance bar of the
core engine: accuracy >= 0.95, and a test MSE well below the label variance (what predicting the
mean would score).
"""

from __future__ import annotations

import numpy as np
import pytest

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs

COMMON = {
    "enc0_max_seq_len": 10,
    "enc0_vocab_size": 200,
    "mlp_dim": 64,
    "mlp_activation": "relu",
    "learning_rate": 0.005,
    "mini_batch_size": 64,
}
SETUPS = {
    "pooled_embedding": ({"enc_dim": 32, "epochs": 8}, 4000),
    "hcnn": ({"enc_dim": 32, "epochs": 10, "enc0_token_embedding_dim": 32, "enc0_layers": 2}, 20000),
    "bilstm": ({"enc_dim": 32, "epochs": 15, "enc0_token_embedding_dim": 32}, 6000),
}


@pytest.mark.parametrize("network", list(SETUPS))
def test_each_encoder_learns_the_classification_task(network):
    extra, n = SETUPS[network]
    model = Object2Vec(**COMMON, **extra, enc0_network=network, seed=0, device="cpu")
    model.fit(make_pairs(n, seed=1), validation=make_pairs(500, seed=2), test=make_pairs(2000, seed=3))
    assert model.metrics_["test"]["accuracy"] >= 0.95, model.metrics_["test"]


@pytest.mark.parametrize("network", list(SETUPS))
def test_each_encoder_learns_the_regression_task(network):
    extra, n = SETUPS[network]
    test = make_pairs(2000, task="regression", seed=3)
    variance = float(np.var([r["label"] for r in test]))
    model = Object2Vec(**COMMON, **extra, enc0_network=network, output_layer="mean_squared_error", seed=0, device="cpu")
    model.fit(make_pairs(n, task="regression", seed=1), validation=make_pairs(500, task="regression", seed=2), test=test)
    assert model.metrics_["test"]["mean_squared_error"] < 0.25 * variance, (model.metrics_["test"], variance)


def _held_out_true_and_shuffled(n: int, seed: int) -> list[dict]:
    """True pairs (label 1) and the same in0s with another record's in1 (label 0), 1:1."""
    positives = [r for r in make_pairs(2 * n, seed=seed) if r["label"] == 1][:n]
    rng = np.random.default_rng(seed)
    shuffled = [
        {"label": 0, "in0": r["in0"], "in1": positives[(i + int(rng.integers(1, n))) % n]["in1"]} for i, r in enumerate(positives)
    ]
    return positives + shuffled


def test_negative_sampling_learns_from_positives_only():
    """AWS saw 0.167 test accuracy without negatives and 0.92-0.94 with them (the AWS document-embedding notebook)."""
    positives_only = [r for r in make_pairs(8000, seed=1) if r["label"] == 1]
    held_out = _held_out_true_and_shuffled(500, seed=5)
    params = {**COMMON, "enc0_network": "pooled_embedding", "enc_dim": 32, "epochs": 6, "seed": 0, "device": "cpu"}
    without = Object2Vec(**params).fit(positives_only).evaluate(held_out)["accuracy"]
    with_negatives = Object2Vec(**params, negative_sampling_rate=3).fit(positives_only).evaluate(held_out)["accuracy"]
    assert without <= 0.6  # it can only say "positive": true and shuffled pairs look alike to it
    assert with_negatives >= 0.9, with_negatives
