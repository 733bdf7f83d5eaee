"""row_sparse: a step touches only the rows a batch used, and matches the dense step on them."""

from __future__ import annotations

import math

import pytest
import torch

from object2vec.hyperparameters import Hyperparameters
from object2vec.native import kernels, library
from object2vec.nn.embedding import RowSparseEmbedding
from object2vec.nn.model import Object2VecNet
from object2vec.training.lazy_optim import copy_rows
from object2vec.training.optimizers import Optimizers

KWARGS = dict(enc0_max_seq_len=3, enc0_vocab_size=50, enc0_network="pooled_embedding", enc_dim=4, mlp_dim=4)
BATCH = (torch.tensor([1, 2, 3, 2]), torch.tensor([3, 1]), torch.tensor([7, 9]), torch.tensor([1, 1]))
LABELS = torch.tensor([1, 0])


@pytest.fixture(params=["compiled kernel", "pytorch"])
def update_path(request, monkeypatch):
    """Each lazy-update test runs on both paths: the compiled in-place kernel and PyTorch's operations."""
    if request.param == "compiled kernel" and not kernels.available():
        pytest.skip("no C compiler here: only the PyTorch path can run")
    calls = []
    if request.param == "pytorch":
        monkeypatch.setattr(kernels, "applies", lambda *args: False)
    else:
        run = kernels._run
        monkeypatch.setattr(kernels, "_run", lambda *args: calls.append(args[0]) or run(*args))
    yield request.param
    assert bool(calls) == (request.param == "compiled kernel")  # the path under test is the one that ran


def twin_nets(**extra) -> tuple[Object2VecNet, Object2VecNet]:
    torch.manual_seed(0)
    sparse = Object2VecNet(Hyperparameters(**KWARGS, **extra, token_embedding_storage_type="row_sparse"))
    dense = Object2VecNet(Hyperparameters(**KWARGS, **extra))
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def one_step(net: Object2VecNet) -> None:
    optimizers = Optimizers(net, net.hp)
    optimizers.zero_grad()
    torch.nn.functional.cross_entropy(net(*BATCH), LABELS).backward()
    optimizers.step()


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_touched_rows_match_a_dense_step_and_untouched_rows_do_not_change(optimizer, weight_decay, update_path):
    sparse, dense = twin_nets(optimizer=optimizer, learning_rate=0.1, weight_decay=weight_decay)
    before = [e.weight.detach().clone() for e in sparse.embeddings()]
    one_step(sparse)
    one_step(dense)
    for side, touched in ((0, [1, 2, 3]), (1, [7, 9])):
        after = sparse.embeddings()[side].weight.detach()
        assert (after != before[side]).any(dim=1).nonzero().flatten().tolist() == touched
        torch.testing.assert_close(after[touched], dense.embeddings()[side].weight.detach()[touched])
    # the rest of the network trains exactly as in the dense model
    torch.testing.assert_close(sparse.output.weight, dense.output.weight)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_a_row_touched_on_every_step_follows_the_dense_optimizer_over_several_steps(optimizer, update_path):
    """The state (moments, sums) and the step count behind bias correction carry over between steps."""
    sparse, dense = twin_nets(optimizer=optimizer, learning_rate=0.05, weight_decay=0.01)
    for net in (sparse, dense):
        optimizers = Optimizers(net, net.hp)
        for _ in range(4):
            optimizers.zero_grad()
            torch.nn.functional.cross_entropy(net(*BATCH), LABELS).backward()
            optimizers.step()
    for side, touched in ((0, [1, 2, 3]), (1, [7, 9])):
        torch.testing.assert_close(
            sparse.embeddings()[side].weight.detach()[touched], dense.embeddings()[side].weight.detach()[touched]
        )


def test_a_tied_table_sums_the_gradients_of_both_sides(update_path):
    sparse, dense = twin_nets(tied_token_embedding_weight=True, optimizer="sgd", learning_rate=0.5)
    batch = (torch.tensor([1, 2]), torch.tensor([2]), torch.tensor([2, 5]), torch.tensor([2]))
    for net in (sparse, dense):
        optimizers = Optimizers(net, net.hp)
        torch.nn.functional.cross_entropy(net(*batch), torch.tensor([1])).backward()
        optimizers.step()
    torch.testing.assert_close(sparse.embeddings()[0].weight, dense.embeddings()[0].weight)


def test_row_sparse_tables_are_not_autograd_parameters_of_the_full_table():
    sparse, _ = twin_nets()
    table = sparse.embeddings()[0]
    assert isinstance(table, RowSparseEmbedding) and not table.weight.requires_grad
    sparse(*BATCH).sum().backward()
    rows, grad, values = table.take_gradient()
    assert rows.tolist() == [1, 2, 3] and grad.shape == (3, 4)
    if kernels.available():  # pooled bags read the table; the rows got a gradient slot, no copy of their values
        assert values is None
    else:  # the forward's gather, reused by the optimizer
        torch.testing.assert_close(values, table.weight[rows])


def test_evaluation_reads_the_full_table_without_recording():
    sparse, dense = twin_nets()
    sparse.eval()
    dense.eval()
    with torch.inference_mode():
        torch.testing.assert_close(sparse(*BATCH), dense(*BATCH))
    assert sparse.embeddings()[0].touched == []


def test_frozen_rows_never_move(update_path):
    sparse, _ = twin_nets(optimizer="adam", learning_rate=0.1, weight_decay=0.5)
    table = sparse.embeddings()[0]
    table.frozen_rows = torch.zeros(50, dtype=torch.bool)
    table.frozen_rows[2] = True
    before = table.weight.detach().clone()
    one_step(sparse)
    assert torch.equal(table.weight[2], before[2]) and not torch.equal(table.weight[1], before[1])


def test_zero_grad_between_forward_and_backward_keeps_the_gathered_rows():
    """The order torch optimizers allow (forward, zero_grad, backward, step) must train the rows."""
    sparse, _ = twin_nets(optimizer="sgd", learning_rate=0.5)
    before = sparse.embeddings()[0].weight.detach().clone()
    optimizers = Optimizers(sparse, sparse.hp)
    out = sparse(*BATCH)
    optimizers.zero_grad()
    torch.nn.functional.cross_entropy(out, LABELS).backward()
    optimizers.step()
    assert not torch.equal(sparse.embeddings()[0].weight[1], before[1])


def test_fit_trains_row_sparse_tables(tiny, records):
    from object2vec import Object2Vec

    model = Object2Vec(**tiny, token_embedding_storage_type="row_sparse", device="cpu", seed=0)
    torch.manual_seed(0)
    untrained = Object2VecNet(model.fit(records, max_steps=0).hyperparameters_).embeddings()[0].weight.detach().clone()
    trained = Object2Vec(**{**tiny, "epochs": 6}, token_embedding_storage_type="row_sparse", device="cpu", seed=0).fit(records)
    assert not torch.equal(trained.model_.embeddings()[0].weight.detach(), untrained)
    assert trained.history_[-1]["train"]["accuracy"] > 0.9  # dense reaches 1.0 on this toy task


@pytest.mark.parametrize(
    ("dim", "dtype"), [(4, torch.float32), (2, torch.float32), (3, torch.float32), (8, torch.bfloat16), (5, torch.float64)]
)
def test_copy_rows_writes_exactly_what_index_copy_writes(dim, dtype):
    table = torch.randn(20, dim).to(dtype)
    rows, values = torch.tensor([0, 7, 19, 3]), torch.randn(4, dim).to(dtype)
    expected = table.clone().index_copy_(0, rows, values)
    copy_rows(table, rows, values)
    assert torch.equal(table, expected)


def test_the_kernel_refuses_what_it_cannot_update_in_place():
    if not kernels.available():
        pytest.skip("no C compiler here")
    table, grad, rows = torch.zeros(10, 4), torch.ones(2, 4), torch.tensor([1, 3])
    assert kernels.applies([table, torch.zeros(10, 4)], grad, rows)
    assert not kernels.applies([table.bfloat16()], grad.bfloat16(), rows)  # fp32 only
    assert not kernels.applies([table.t()], grad, rows)  # contiguous only
    assert not kernels.applies([table], grad, torch.tensor([1, 10]))  # a row outside the table
    assert not kernels.applies([table], grad, torch.tensor([1, -1]))


def test_without_a_compiler_training_falls_back_to_pytorch_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OBJECT2VEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    library.load.cache_clear()
    try:
        with caplog.at_level("INFO", logger="object2vec"):
            assert not kernels.available()
            sparse, dense = twin_nets(optimizer="adam", learning_rate=0.1)
            one_step(sparse)
            one_step(dense)
        torch.testing.assert_close(sparse.embeddings()[0].weight[[1, 2, 3]], dense.embeddings()[0].weight[[1, 2, 3]])
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "compiled kernels unavailable" in warnings[0] and "no-such-compiler" in warnings[0]
    finally:
        library.load.cache_clear()


def _lazy_steps(name: str, weight_decay: float, steps: list[tuple[list[int], list[float]]]) -> list[float]:
    """Run the lazy optimizer on a 4 x 1 table: each step touches ``rows`` with gradient ``grads``."""
    from object2vec.training.lazy_optim import LazyOptimizer

    table = RowSparseEmbedding(4, 1)
    table.weight.data = torch.tensor([[0.5], [-0.3], [0.2], [0.1]])
    opt = LazyOptimizer([table], name, lr=0.01, weight_decay=weight_decay)
    for rows, grads in steps:
        opt.zero_grad()
        (table(torch.tensor(rows))[:, 0] * torch.tensor(grads)).sum().backward()
        opt.step()
    return table.weight[:, 0].tolist()


def test_lazy_adam_corrects_bias_by_the_tables_step_count_with_mxnets_eps(update_path):
    """Row 1 is first touched on the table's second step: its moments start there (m = 0.1 g,
    v = 0.001 g^2) but the bias correction uses t = 2, as MXNet's lazy_update does; eps as MXNet."""
    g = 1e-3
    after = _lazy_steps("adam", 0.0, [([0], [0.5]), ([1], [g])])
    m, v = 0.1 * g, 0.001 * g * g
    expected = -0.3 - 0.01 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2) * m / (math.sqrt(v) + 1e-8)
    assert after[1] == pytest.approx(expected, rel=1e-5)
    assert after[2:] == pytest.approx([0.2, 0.1])  # untouched rows never move


def test_lazy_adagrad_keeps_eps_inside_the_root_and_decay_outside_the_history(update_path):
    """Two steps on row 2 (g = 1e-4, then 2e-4) with wd = 0.1: h += g^2; w -= lr*(g/sqrt(h + 1e-7) + wd*w)."""
    after = _lazy_steps("adagrad", 0.1, [([2], [1e-4]), ([2], [2e-4])])
    w, h = 0.2, 0.0
    for g in (1e-4, 2e-4):
        h += g * g
        w -= 0.01 * (g / math.sqrt(h + 1e-7) + 0.1 * w)
    assert after[2] == pytest.approx(w, rel=1e-6)
    assert after[:2] == pytest.approx([0.5, -0.3]) and after[3] == pytest.approx(0.1)
