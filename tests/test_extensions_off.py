"""With every extension off, a SageMaker configuration trains bit for bit as it does without them.

Each configuration is trained twice from the same seed: with SageMaker's hyperparameters only, and
with every extension of the hyperparameter table set explicitly to its default while the data also
carries per-token weights (``in0_weights``, ``in1_weights``) that only a weighted-mean pooling reads.
The weights and predictions must be identical. (That the speed work on the SageMaker path keeps
main's numbers exactly was checked once by hashing trained weights on both; docs/text_classification.md.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs
from object2vec.hyperparameters import Hyperparameters, hyperparameter_table

SAGEMAKER_SETS = {
    "pooled dense adam": {"enc0_network": "pooled_embedding"},
    "pooled row_sparse adam": {"enc0_network": "pooled_embedding", "token_embedding_storage_type": "row_sparse"},
    "pooled row_sparse adagrad, negatives": {
        "enc0_network": "pooled_embedding", "token_embedding_storage_type": "row_sparse", "optimizer": "adagrad",
        "negative_sampling_rate": 2,
    },
    "pooled tied sgd, relu MLP, dropout": {
        "enc0_network": "pooled_embedding", "tied_token_embedding_weight": True, "optimizer": "sgd", "mlp_activation": "relu",
        "dropout": 0.2,
    },
    "hcnn rmsprop, buckets": {"enc0_network": "hcnn", "optimizer": "rmsprop", "bucket_width": 3, "enc0_token_embedding_dim": 8},
    "bilstm adadelta, hadamard": {
        "enc0_network": "bilstm", "optimizer": "adadelta", "comparator_list": "hadamard", "enc0_token_embedding_dim": 8,
    },
    "pooled regression": {"enc0_network": "pooled_embedding", "output_layer": "mean_squared_error"},
    "mixed encoders": {
        "enc0_network": "hcnn", "enc1_network": "pooled_embedding", "enc1_vocab_size": 60, "enc1_max_seq_len": 6,
        "enc0_token_embedding_dim": 8,
    },
}  # fmt: skip


def extensions_off() -> dict[str, str]:
    """Every extension of the table at its default (an ``enc1_*`` one at enc1's own default)."""
    off = {}
    for row in hyperparameter_table():
        if row["extension"]:
            name = row["name"]
            off[name] = Hyperparameters.__dataclass_fields__[name].metadata["default"]
    return off


def train(config: dict, records: list[dict]) -> tuple[dict, np.ndarray]:
    hp = {"enc0_vocab_size": 60, "enc0_max_seq_len": 8, "enc_dim": 8, "mlp_dim": 8, "epochs": 1, "mini_batch_size": 16,
          "learning_rate": 0.01, **config}  # fmt: skip
    model = Object2Vec(device="cpu", seed=3, **hp).fit(records[:48], records[48:])
    return model.model_.state_dict(), model.predict(records[48:])


@pytest.mark.parametrize("name", list(SAGEMAKER_SETS))
def test_a_sagemaker_configuration_trains_identically_with_every_extension_off(name):
    config = SAGEMAKER_SETS[name]
    task = "regression" if config.get("output_layer") == "mean_squared_error" else "classification"
    records = make_pairs(64, vocab_size=(60, 60), max_len=(8, 6), groups=3, task=task, seed=1)
    weighted = [{**r, "in0_weights": [2.0] * len(r["in0"]), "in1_weights": [0.5] * len(r["in1"])} for r in records]
    plain_state, plain_scores = train(config, records)
    off_state, off_scores = train({**config, **extensions_off()}, weighted)
    assert plain_state.keys() == off_state.keys()
    for key, value in plain_state.items():
        assert torch.equal(value, off_state[key]), key
    assert np.array_equal(plain_scores, off_scores)


def test_the_extensions_checked_here_include_the_text_classification_ones():
    assert {"enc0_pooling", "enc1_pooling", "mini_batch_tokens", "negative_sampling_distinct"} <= set(extensions_off())
