"""pooled_embedding's poolings (the encX_pooling extension): each against a hand computation, on every table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from object2vec.errors import HyperparameterError
from object2vec.hyperparameters import Hyperparameters, hyperparameter_table
from object2vec.native import kernels
from object2vec.nn.embedding import RowSparseEmbedding, TokenEmbedding, bag_shares, distinct

TOKENS = torch.tensor([0, 2, 2, 1, 3, 3, 3, 0])  # bags [0 2 2] [1] [3 3 3 0]
LENGTHS = torch.tensor([3, 1, 4])
WEIGHTS = torch.tensor([1.0, 2.0, 1.0, 5.0, 0.0, 1.0, 1.0, 2.0])


def table() -> torch.Tensor:
    return torch.arange(8, dtype=torch.float32).reshape(4, 2) * torch.tensor([1.0, -1.0])  # row r = (2r, -(2r+1))


def by_hand(pooling: str) -> torch.Tensor:
    rows = table()
    out = []
    start = 0
    for n in LENGTHS.tolist():
        ids, w = TOKENS[start : start + n], WEIGHTS[start : start + n]
        vectors = rows[ids]
        if pooling == "mean":
            out.append(vectors.sum(0) / n)
        elif pooling == "sum":
            out.append(vectors.sum(0))
        elif pooling == "max":
            out.append(vectors.max(0).values)
        else:
            out.append((vectors * w[:, None]).sum(0) / w.sum())
        start += n
    return torch.stack(out)


def tables() -> list[TokenEmbedding]:
    dense, sparse = TokenEmbedding(4, 2), RowSparseEmbedding(4, 2)
    for t in (dense, sparse):
        t.weight.data.copy_(table())
    return [dense, sparse]


@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "weighted_mean"])
@pytest.mark.parametrize("training", [False, True])
def test_each_pooling_matches_a_hand_computation(pooling, training):
    for emb in tables():
        emb.train(training)
        with torch.set_grad_enabled(training):
            out = emb.bag(TOKENS, LENGTHS, pooling, WEIGHTS)
        torch.testing.assert_close(out, by_hand(pooling))


@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "weighted_mean"])
@pytest.mark.parametrize("use_kernels", [True, False])
def test_row_sparse_gradients_equal_the_dense_tables(pooling, use_kernels, monkeypatch):
    if not use_kernels:
        monkeypatch.setattr(kernels, "available", lambda: False)
    dense, sparse = tables()
    grad = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    (dense.bag(TOKENS, LENGTHS, pooling, WEIGHTS) * grad).sum().backward()
    (sparse.bag(TOKENS, LENGTHS, pooling, WEIGHTS) * grad).sum().backward()
    rows, sparse_grad, _ = sparse.take_gradient()
    assert rows.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(sparse_grad, dense.weight.grad[rows])


def test_weighted_mean_shares_sum_to_one_per_sequence():
    shares = bag_shares(WEIGHTS, LENGTHS)
    torch.testing.assert_close(shares[:3], torch.tensor([0.25, 0.5, 0.25]))
    torch.testing.assert_close(shares[3:4], torch.tensor([1.0]))
    torch.testing.assert_close(shares[4:].sum(), torch.tensor(1.0))


def test_weighted_mean_without_weights_is_refused_with_where_they_come_from():
    with pytest.raises(ValueError, match="in0_weights"):
        TokenEmbedding(4, 2).bag(TOKENS, LENGTHS, "weighted_mean")


def test_counting_and_sorting_give_the_same_distinct_rows():
    tokens = torch.tensor([5, 1, 5, 0, 9, 1])
    by_sort, by_count = distinct(tokens), distinct(tokens, size=10)
    assert by_sort[0].tolist() == by_count[0].tolist() == [0, 1, 5, 9]
    assert by_sort[1].tolist() == by_count[1].tolist() == [2, 1, 2, 0, 3, 1]


@pytest.mark.parametrize("path", ["bitmap kernel", "counting", "sort"])
def test_every_way_of_finding_distinct_rows_gives_numpys_unique(path, monkeypatch):
    from object2vec.native import kernels

    if path == "bitmap kernel" and not kernels.available():
        pytest.skip("no compiled kernels here")
    if path != "bitmap kernel":
        monkeypatch.setattr(kernels, "distinct_rows", lambda *a: None)
    rng = np.random.default_rng(1)
    for size, n in [(1, 3), (64, 10), (65, 200), (130, 1), (5000, 300), (70_000, 2000)]:
        ids = rng.integers(0, size, n)
        ids[: min(n, 4)] = [0, size - 1, min(63, size - 1), min(64, size - 1)][: min(n, 4)]  # the words' edges
        rows, inverse = distinct(torch.from_numpy(ids), size=size if path != "sort" else None)
        want = np.unique(ids, return_inverse=True)
        assert rows.tolist() == want[0].tolist() and inverse.tolist() == want[1].tolist(), (size, n)


def test_the_bitmap_kernel_refuses_an_id_outside_the_table():
    from object2vec.native import kernels

    if not kernels.available():
        pytest.skip("no compiled kernels here")
    with pytest.raises(ValueError, match="outside"):
        kernels.distinct_rows(np.array([0, 10]), 10)


def hp(**kw) -> Hyperparameters:
    return Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=10, enc_dim=4, **kw)


def test_pooling_is_copied_to_enc1_like_every_encoder_setting():
    resolved = hp(enc0_network="pooled_embedding", enc0_pooling="max").resolve()
    assert resolved.encoder(0).pooling == resolved.encoder(1).pooling == "max"


def test_a_pooling_other_than_mean_needs_pooled_embedding():
    with pytest.raises(HyperparameterError, match="enc0_pooling=sum joins pooled_embedding's token vectors; enc0_network=hcnn"):
        hp(enc0_pooling="sum").resolve()


def test_text_classification_hyperparameters_are_listed_as_extensions_and_off_by_default():
    rows = {row["name"]: row for row in hyperparameter_table()}
    for name, off in [("enc0_pooling", "mean"), ("mini_batch_tokens", "0"), ("negative_sampling_distinct", "False")]:
        assert rows[name]["extension"] and rows[name]["default"] == off
    assert rows["enc1_pooling"]["extension"]
    assert not rows["enc0_network"]["extension"] and not rows["negative_sampling_rate"]["extension"]
