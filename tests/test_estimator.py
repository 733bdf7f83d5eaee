"""The estimator contract: store, fit returns self, refuse before fit, one embedding entry point."""

from __future__ import annotations

import numpy as np
import pytest

from object2vec import DataError, HyperparameterError, NotFittedError, Object2Vec


def test_constructor_only_stores_arguments():
    model = Object2Vec(enc_dim=-5, seed=3)  # invalid, but nothing is checked until fit
    assert model.get_params() == {"seed": 3, "device": "auto", "precision": "fp32", "cache": True, "enc_dim": -5}


def test_fit_returns_self_and_sets_learned_attributes(tiny, records):
    model = Object2Vec(**tiny)
    assert model.fit(records) is model
    assert hasattr(model, "model_") and hasattr(model, "history_") and model.hyperparameters_.enc_dim == 16


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.predict([{"in0": [1], "in1": [1]}]),
        lambda m: m.embed(in0=[[1]]),
        lambda m: m.evaluate([]),
        lambda m: m.save("x"),
    ],
)
def test_methods_refuse_to_run_before_fit(call):
    with pytest.raises(NotFittedError, match="call fit first"):
        call(Object2Vec())


def test_fit_accepts_paths_and_records_alike(tiny, records, train_file):
    a = Object2Vec(**tiny).fit(train_file).predict(records[:5])
    b = Object2Vec(**tiny).fit(records).predict(records[:5])
    np.testing.assert_array_equal(a, b)


def test_invalid_hyperparameters_fail_before_reading_data(tiny, tmp_path):
    with pytest.raises(HyperparameterError):
        Object2Vec(**{**tiny, "enc_dim": 2}).fit(tmp_path / "does-not-exist.jsonl")


def test_problems_in_every_split_are_reported_before_training(tiny, records):
    bad = [{"label": 5, "in0": [1], "in1": [1]}]
    with pytest.raises(DataError) as err:
        Object2Vec(**tiny).fit(records, validation=bad, test=[{"label": 0, "in0": [999], "in1": [1]}])
    assert err.value.count == 2
    assert "label: 5 is out of range" in err.value.problems[0] and "token 0 is 999" in err.value.problems[1]


def test_predict_returns_softmax_probabilities(tiny, records):
    scores = Object2Vec(**{**tiny, "num_classes": 3}).fit(records).predict(records[:7])
    assert scores.shape == (7, 3) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_predict_returns_one_value_for_regression(tiny, records):
    data = [{**r, "label": float(r["label"])} for r in records]
    assert Object2Vec(**tiny, output_layer="mean_squared_error").fit(data).predict(data[:4]).shape == (4, 1)


def test_predict_ignores_labels_and_validates_ids(tiny, records):
    model = Object2Vec(**tiny).fit(records)
    with pytest.raises(DataError, match="token 0 is 200, not less than enc0_vocab_size=200"):
        model.predict([{"in0": [200], "in1": [1]}])


def test_embed_is_deterministic_float32_of_enc_dim(tiny, records):
    model = Object2Vec(**tiny).fit(records)
    seqs = [r["in1"] for r in records[:9]]
    a, b = model.embed(in1=seqs), model.embed(in1=seqs, batch_size=2)
    assert a.shape == (9, 16) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a, model.embed(in1=seqs))


def test_embed_uses_the_requested_encoder(tiny, records):
    model = Object2Vec(**tiny).fit(records)
    assert not np.allclose(model.embed(in0=[[1, 2]]), model.embed(in1=[[1, 2]]))


def test_embed_takes_exactly_one_side(tiny, records):
    model = Object2Vec(**tiny).fit(records)
    with pytest.raises(ValueError, match="exactly one"):
        model.embed(in0=[[1]], in1=[[1]])


def test_score_is_accuracy_for_classification(tiny, records):
    model = Object2Vec(**tiny).fit(records)
    assert model.score(records) == model.evaluate(records)["accuracy"]


def test_the_spec_example_lines_train_unchanged():
    lines = [
        {
            "label": 0,
            "in0": [6, 17, 606, 19, 53, 67, 52, 12, 5, 10, 15, 10178, 7, 33, 652, 80, 15, 69, 821, 4],
            "in1": [16, 21, 13, 45, 14, 9, 80, 59, 164, 4],
        },
        {
            "label": 1,
            "in0": [22, 1016, 32, 13, 25, 11, 5, 64, 573, 45, 5, 80, 15, 67, 21, 7, 9, 107, 4],
            "in1": [22, 32, 13, 25, 1016, 573, 3252, 4],
        },
        {"label": 1, "in0": [6, 17, 606], "in1": [16, 21]},
    ]
    model = Object2Vec(enc0_max_seq_len="20", enc0_vocab_size="10179", enc_dim="16", mlp_dim="16", epochs="2").fit(lines)
    assert model.predict(lines).shape == (3, 2)
