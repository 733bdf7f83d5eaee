"""scikit-learn compatibility: clone, GridSearchCV and Pipeline work; the estimator checks pass where they apply."""

from __future__ import annotations

import numpy as np
import pytest

from object2vec import Object2Vec
from object2vec.data.inputs import as_records
from object2vec.errors import DataError

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

IDS = {"enc0_max_seq_len": 1, "enc0_vocab_size": 20, "enc1_vocab_size": 20, "enc0_network": "pooled_embedding",
       "enc_dim": 8, "mlp_dim": 8, "epochs": 3, "learning_rate": 0.05}  # fmt: skip

# The checks of sklearn.utils.estimator_checks that cannot apply, and why. Object2Vec learns from pairs
# of token ids, not from a numeric feature matrix: the checks that fit random float matrices of any width
# (negative, fractional, NaN, sparse, complex, object, float32, read-only copies of them) get one clear
# DataError instead, naming the array's shape and dtype and what is expected.
NOT_APPLICABLE = {
    "float feature matrices": {
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_complex_data",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimator_sparse_tag",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_estimators_unfitted",  # also: our NotFittedError is not sklearn's class (sklearn is optional)
    },
    # Object2Vec(**hyperparameters): SageMaker's ~40 hyperparameters are keyword arguments, each stored as an
    # attribute of its own name; these two checks read the signature and see one parameter, 'hyperparameters'
    "keyword hyperparameters": {"check_no_attributes_set_in_init", "check_do_not_raise_errors_in_init_or_set_params"},
    "array API (needs SCIPY_ARRAY_API)": {"check_array_api_input"},
}


def _id_pairs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, (n, 2))
    return x, (x[:, 0] % 2 == x[:, 1] % 2).astype(np.int64)


def test_the_estimator_checks_pass_wherever_they_apply():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(Object2Vec(**{**IDS, "epochs": 1}), on_fail=None)
    skipped = set().union(*NOT_APPLICABLE.values())
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    failed = {r["check_name"] for r in results if r["status"] != "passed"}
    assert failed <= skipped, sorted(failed - skipped)
    assert {"check_get_params_invariance", "check_set_params", "check_estimator_cloneable", "check_fit1d",
            "check_parameters_default_constructible", "check_estimator_repr"} <= passed  # fmt: skip


def test_clone_copies_every_parameter_and_no_learned_state():
    x, y = _id_pairs()
    model = Object2Vec(**IDS, seed=3).fit(x, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "model_")


def test_set_params_changes_hyperparameters_and_is_checked_at_fit():
    model = Object2Vec(**IDS).set_params(enc_dim=4, seed=9)
    assert model.get_params()["enc_dim"] == 4 and model.seed == 9 and model.hyperparameters["enc_dim"] == 4
    with pytest.raises(ValueError, match="not a parameter"):
        model.set_params(model_=None)


def test_grid_search_and_pipeline_train_on_id_pairs_with_y():
    x, y = _id_pairs()
    search = GridSearchCV(Object2Vec(**IDS), {"enc_dim": [4, 8]}, cv=2).fit(x, y)
    assert search.best_params_["enc_dim"] in (4, 8) and search.best_score_ > 0.6
    assert Pipeline([("pairs", Object2Vec(**IDS))]).fit(x, y).score(x, y) > 0.6


def test_fit_predict_and_embed_take_dataframes_arrays_tuples_and_numpy_values():
    pandas = pytest.importorskip("pandas")
    x, y = _id_pairs(200)
    frame = pandas.DataFrame({"in0": [[int(a)] for a in x[:, 0]], "in1": list(x[:, 1]), "label": y})
    tuples = [(np.array([a]), (b,), np.int64(label)) for (a, b), label in zip(x, y, strict=True)]
    a = Object2Vec(**IDS).fit(frame).predict(frame)
    b = Object2Vec(**IDS).fit(tuples).predict(x)
    np.testing.assert_array_equal(a, b)  # the same pairs and labels, whatever their container
    assert Object2Vec(**IDS).fit(iter(tuples)).embed(in0=np.array([[1], [2]])).shape == (2, 8)


def test_arrays_that_are_not_id_pairs_get_one_clear_error():
    with pytest.raises(DataError, match=r"shape \(3, 4\) and dtype float64: expected an integer \(n, 2\) array"):
        as_records(np.zeros((3, 4)))
    with pytest.raises(DataError, match="y: has 2 labels for 3 pairs"):
        as_records(np.zeros((3, 2), dtype=int), y=[0, 1])
