"""Hyperparameters: SageMaker names, ranges, defaults, string parsing and enc1 inheritance."""

from __future__ import annotations

import dataclasses
import re
import warnings

import pytest

from object2vec.errors import HyperparameterError
from object2vec.hyperparameters import Hyperparameters, hyperparameter_table

REQUIRED = {"enc0_max_seq_len": 10, "enc0_vocab_size": 100}


def test_sagemaker_defaults():
    hp = Hyperparameters(**REQUIRED)
    assert hp.enc_dim == 4096
    assert hp.mini_batch_size == 32
    assert hp.epochs == 30
    assert hp.learning_rate == 0.0004
    assert hp.optimizer == "adam"
    assert hp.comparator_list == ("hadamard", "concat", "abs_diff")
    assert hp.mlp_layers == 2 and hp.mlp_dim == 512 and hp.mlp_activation == "linear"
    assert hp.early_stopping_patience == 3 and hp.early_stopping_tolerance == 0.01
    assert hp.enc0_network == "hcnn" and hp.enc1_network == "enc0"
    assert hp.enc0_layers == "auto" and hp.enc0_cnn_filter_width == 3 and hp.enc0_token_embedding_dim == 300
    assert hp.enc0_freeze_pretrained_embedding is True
    assert hp.output_layer == "softmax" and hp.num_classes == 2
    assert hp.token_embedding_storage_type == "dense" and hp.tied_token_embedding_weight is False
    assert hp.negative_sampling_rate == 0 and hp.bucket_width == 0 and hp.dropout == 0 and hp.weight_decay == 0


def test_all_string_values_parse_like_sagemaker_hyperparameters_json():
    hp = Hyperparameters.from_dict(
        {
            "enc0_max_seq_len": "82",
            "enc0_vocab_size": "43533",
            "enc_dim": "4096",
            "comparator_list": "hadamard, concat, abs_diff",
            "tied_token_embedding_weight": "True",
            "enc0_freeze_pretrained_embedding": "false",
            "enc0_layers": "auto",
            "learning_rate": "0.0004",
            "dropout": "0.0",
            "_kvstore": "device",
            "_num_gpus": "auto",
            "_num_kv_servers": "auto",
        }
    )
    assert hp.enc0_max_seq_len == 82 and hp.enc_dim == 4096
    assert hp.tied_token_embedding_weight is True and hp.enc0_freeze_pretrained_embedding is False
    assert hp.learning_rate == pytest.approx(0.0004)
    assert hp.enc0_layers == "auto"


def test_comparator_order_is_kept():
    hp = Hyperparameters(**REQUIRED, comparator_list="abs_diff,hadamard")
    assert hp.comparator_list == ("abs_diff", "hadamard")


def test_every_bad_field_is_reported_at_once_with_value_and_range():
    with pytest.raises(HyperparameterError) as err:
        Hyperparameters.from_dict({"enc0_max_seq_len": "0", "enc_dim": 2, "optimizer": "lbfgs", "enc_dimm": 8})
    message = str(err.value)
    assert "enc0_max_seq_len must be an int in [1, 5000]; got '0'." in message
    assert "enc_dim must be an int in [4, 10000]; got 2." in message
    assert "optimizer must be one of adam, adagrad, rmsprop, sgd, adadelta; got 'lbfgs'." in message
    assert "enc_dimm is not an Object2Vec hyperparameter; did you mean enc_dim?" in message
    assert "enc0_vocab_size is required" in message
    assert len(err.value.problems) == 5


@pytest.mark.parametrize(
    "name,value",
    [
        ("enc0_max_seq_len", 5001),
        ("enc0_vocab_size", 1),
        ("enc0_vocab_size", 3_000_001),
        ("enc_dim", 10001),
        ("mini_batch_size", 0),
        ("epochs", 101),
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("weight_decay", -1),
        ("dropout", 1.01),
        ("early_stopping_patience", 6),
        ("early_stopping_tolerance", 0.2),
        ("bucket_width", 101),
        ("num_classes", 31),
        ("num_classes", 1),
        ("mlp_layers", 11),
        ("mlp_dim", 1),
        ("negative_sampling_rate", -1),
        ("enc0_layers", 5),
        ("enc0_layers", "many"),
        ("enc0_cnn_filter_width", 10),
        ("enc0_token_embedding_dim", 1),
        ("enc0_token_embedding_dim", 1001),
        ("enc0_network", "transformer"),
        ("enc1_network", "enc1"),
        ("mlp_activation", "gelu"),
        ("output_layer", "sigmoid"),
        ("token_embedding_storage_type", "sparse"),
        ("tied_token_embedding_weight", "yes"),
        ("comparator_list", "hadamard, hadamard"),
        ("comparator_list", ""),
        ("comparator_list", "cosine"),
        ("enc0_vocab_file", "../vocab.json"),
        ("enc_dim", "4.5"),
        ("enc_dim", True),
        ("dropout", "nan"),
    ],
)
def test_out_of_range_value_is_rejected_with_its_name(name, value):
    with pytest.raises(HyperparameterError) as err:
        Hyperparameters(**{**REQUIRED, name: value})
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{name} must be ")
    assert repr(value) in err.value.problems[0]


def test_boundaries_of_the_documented_ranges_are_accepted():
    Hyperparameters(
        enc0_max_seq_len=5000,
        enc0_vocab_size=3_000_000,
        enc_dim=4,
        mlp_layers=0,
        mlp_dim=2,
        learning_rate=1.0,
        dropout=1.0,
        early_stopping_tolerance=1e-6,
        num_classes=30,
        negative_sampling_rate=1000,
        epochs=100,
    )


def test_table_describes_every_field_once():
    names = [row["name"] for row in hyperparameter_table()]
    assert names == [f.name for f in dataclasses.fields(Hyperparameters)]
    assert len(names) == len(set(names))
    for row in hyperparameter_table():
        assert row["valid"] and row["default"] and row["doc"]


# -- enc1 inheritance --------------------------------------------------------------------------------


def test_enc1_network_enc0_copies_every_enc0_setting():
    hp = Hyperparameters(**REQUIRED, enc0_network="bilstm", enc0_layers=2, enc0_token_embedding_dim=50).resolve()
    assert hp.encoder(1) == hp.encoder(0)
    assert hp.encoder(1).network == "bilstm" and hp.encoder(1).layers == 2 and hp.encoder(1).vocab_size == 100


def test_enc1_values_overridden_by_enc0_are_named_in_a_warning():
    hp = Hyperparameters(**REQUIRED, enc1_vocab_size=3, enc1_max_seq_len=10)
    with pytest.warns(UserWarning, match=re.escape("enc1_vocab_size=3 (using enc0_vocab_size=100)")):
        resolved = hp.resolve()
    assert resolved.enc1_vocab_size == 100


def test_no_warning_when_enc1_values_agree_with_enc0():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Hyperparameters(**REQUIRED, enc1_vocab_size=100).resolve()


def test_explicit_enc1_network_requires_its_own_sizes():
    with pytest.raises(HyperparameterError) as err:
        Hyperparameters(**REQUIRED, enc1_network="pooled_embedding").resolve()
    assert any("enc1_max_seq_len is required when enc1_network=pooled_embedding" in p for p in err.value.problems)
    assert any("enc1_vocab_size is required" in p for p in err.value.problems)


def test_explicit_enc1_network_uses_documented_defaults_for_unset_values():
    hp = Hyperparameters(
        **REQUIRED, enc0_cnn_filter_width=5, enc1_network="hcnn", enc1_max_seq_len=4, enc1_vocab_size=7
    ).resolve()
    assert hp.encoder(1).cnn_filter_width == 3 and hp.encoder(1).vocab_size == 7 and hp.encoder(1).layers == 4


@pytest.mark.parametrize("network,layers", [("hcnn", 4), ("bilstm", 1), ("pooled_embedding", 1)])
def test_auto_layers(network, layers):
    assert Hyperparameters(**REQUIRED, enc0_network=network).resolve().encoder(0).layers == layers


def test_pooled_embedding_token_dim_is_forced_to_enc_dim():
    hp = Hyperparameters(**REQUIRED, enc0_network="pooled_embedding", enc_dim=64, enc0_token_embedding_dim=300).resolve()
    assert hp.encoder(0).token_embedding_dim == 64


def test_resolve_is_idempotent():
    hp = Hyperparameters(**REQUIRED, enc0_network="bilstm").resolve()
    assert hp.resolve() == hp


def test_tied_embeddings_need_equal_vocabularies():
    hp = Hyperparameters(
        **REQUIRED, tied_token_embedding_weight=True, enc1_network="hcnn", enc1_max_seq_len=5, enc1_vocab_size=50
    )
    with pytest.raises(HyperparameterError, match="enc0_vocab_size and enc1_vocab_size must be equal; got 100 and 50"):
        hp.resolve()


def test_row_sparse_refuses_optimizers_without_lazy_updates():
    hp = Hyperparameters(**REQUIRED, token_embedding_storage_type="row_sparse", optimizer="rmsprop")
    with pytest.raises(HyperparameterError, match="supports optimizer adam, adagrad, sgd; got rmsprop"):
        hp.resolve()


def test_negative_sampling_needs_softmax():
    hp = Hyperparameters(**REQUIRED, negative_sampling_rate=2, output_layer="mean_squared_error")
    with pytest.raises(HyperparameterError, match="needs output_layer=softmax"):
        hp.resolve()


def test_string_round_trip_through_hyperparameters_json_form():
    hp = Hyperparameters(**REQUIRED, comparator_list=("concat",), tied_token_embedding_weight=True, dropout=0.25).resolve()
    again = Hyperparameters.from_dict(hp.to_dict(as_strings=True))
    assert again == hp
    assert all(isinstance(v, str) for v in hp.to_dict(as_strings=True).values())
