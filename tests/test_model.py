"""Encoders, comparator, MLP and heads: shapes, masking by length, batch independence, tying."""

from __future__ import annotations

import pytest
import torch

from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet, comparator_width, compare

NETWORKS = ["pooled_embedding", "hcnn", "bilstm"]


def net_for(network: str, **extra) -> Object2VecNet:
    torch.manual_seed(0)
    hp = Hyperparameters(
        enc0_max_seq_len=8, enc0_vocab_size=30, enc0_network=network, enc0_token_embedding_dim=6, enc_dim=10, mlp_dim=12, **extra
    )
    return Object2VecNet(hp).eval()


def flat(*seqs: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([t for s in seqs for t in s]), torch.tensor([len(s) for s in seqs])


@pytest.mark.parametrize("network", NETWORKS)
def test_encoder_maps_tokens_and_lengths_to_enc_dim(network):
    net = net_for(network)
    out = net.encode(0, *flat([1, 2, 3], [4], [0, 0, 5, 6, 7]))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("network", NETWORKS)
def test_encoding_does_not_depend_on_the_rest_of_the_batch(network):
    net = net_for(network)
    alone = net.encode(0, *flat([3, 1, 4]))
    padded = net.encode(0, *flat([3, 1, 4], [1, 5, 9, 2, 6, 5, 3, 5]))[:1]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("network", NETWORKS)
def test_token_zero_is_not_padding(network):
    net = net_for(network)
    a, b = net.encode(0, *flat([5])), net.encode(0, *flat([5, 0]))
    assert not torch.allclose(a, b)


def test_pooled_embedding_is_the_mean_of_token_vectors():
    net = net_for("pooled_embedding")
    table = net.encoders[0].embedding.weight
    out = net.encode(0, *flat([1, 2, 2]))
    torch.testing.assert_close(out[0], (table[1] + 2 * table[2]) / 3)


def test_hcnn_has_the_configured_layers_and_filter_width():
    net = net_for("hcnn", enc0_layers=2, enc0_cnn_filter_width=5)
    convs = net.encoders[0].convs
    assert len(convs) == 2 and all(c.kernel_size == (5,) for c in convs)


def reference_hcnn(encoder, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """HCNN written the obvious way: relu, padding zeroed, amax over time (autograd does the rest)."""
    x = torch.nn.utils.rnn.pad_sequence(list(encoder.embedding(tokens).split(lengths.tolist())), batch_first=True)
    padding = ~(torch.arange(x.shape[1])[None, :] < lengths[:, None])[:, None, :]
    x, pooled = x.transpose(1, 2), []
    for conv in encoder.convs:
        x = torch.relu(conv(x)).masked_fill(padding, 0)
        pooled.append(x.amax(dim=2))
    return encoder.project(torch.cat(pooled, dim=1))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("width", [3, 4])
def test_hcnn_forward_and_gradients_are_those_of_relu_then_amax(width):
    """Its layout (2-D convolutions, channels last), the fp32 branch point and the masking of padding
    change no number in fp32; an even filter width pads as Conv1d's "same" does."""
    net = net_for("hcnn", enc0_layers=3, enc0_cnn_filter_width=width).train()
    encoder, (tokens, lengths) = net.encoders[0], flat([1, 2, 3], [4], [0, 0, 5, 6, 7])
    outputs, grads = [], []
    for encode in (lambda: encoder(tokens, lengths), lambda: reference_hcnn(encoder, tokens, lengths)):
        encoder.zero_grad()
        out = encode()
        out.pow(2).sum().backward()
        outputs.append(out)
        grads.append([p.grad.clone() for p in encoder.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for ours, reference in zip(*grads, strict=True):
        torch.testing.assert_close(ours, reference)


def test_bilstm_is_bidirectional_with_the_configured_layers():
    lstm = net_for("bilstm", enc0_layers=3).encoders[0].lstm
    assert lstm.bidirectional and lstm.num_layers == 3


@pytest.mark.parametrize(
    "comparators,width",
    [
        (("hadamard",), 10),
        (("concat",), 20),
        (("abs_diff",), 10),
        (("hadamard", "concat", "abs_diff"), 40),
        (("abs_diff", "hadamard"), 20),
    ],
)
def test_comparator_width_follows_the_list(comparators, width):
    assert comparator_width(comparators, 10) == width
    net = net_for("pooled_embedding", comparator_list=comparators, mlp_layers=0)
    assert net.output.in_features == width


def test_comparator_concatenates_in_the_listed_order():
    u, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]])
    assert compare(u, v, ("concat", "hadamard", "abs_diff")).tolist() == [[1.0, 2.0, 3.0, -1.0, 3.0, -2.0, 2.0, 3.0]]


def test_mlp_has_mlp_layers_of_mlp_dim_with_the_activation():
    net = net_for("pooled_embedding", mlp_layers=3, mlp_activation="tanh")
    linears = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [12, 12, 12]
    assert sum(isinstance(m, torch.nn.Tanh) for m in net.mlp) == 3


def test_zero_mlp_layers_connects_the_comparator_to_the_output():
    net = net_for("pooled_embedding", mlp_layers=0)
    assert len(net.mlp) == 0 and net.output.in_features == 40


def test_softmax_head_has_num_classes_logits_and_regression_one_value():
    batch = (*flat([1], [2]), *flat([3], [4]))
    assert net_for("pooled_embedding", num_classes=5)(*batch).shape == (2, 5)
    assert net_for("pooled_embedding", output_layer="mean_squared_error")(*batch).shape == (2,)


def test_tied_weights_share_only_the_token_table():
    net = net_for("hcnn", tied_token_embedding_weight=True)
    assert net.encoders[0].embedding is net.encoders[1].embedding
    assert net.encoders[0].convs[0].weight is not net.encoders[1].convs[0].weight
    tokens = flat([1, 2, 3])
    assert not torch.allclose(
        net.encode(0, *tokens), net.encode(1, *tokens)
    )  # as SageMaker's maintainers say (sagemaker-python-sdk issue 813)


def test_untied_encoders_have_their_own_tables():
    net = net_for("pooled_embedding")
    assert net.encoders[0].embedding is not net.encoders[1].embedding


def test_dropout_is_active_only_in_training():
    net = net_for("pooled_embedding", dropout=0.5)
    batch = (*flat([1, 2], [3]), *flat([4], [5, 6]))
    torch.testing.assert_close(net(*batch), net(*batch))
    net.train()
    torch.manual_seed(1)
    a = net(*batch)
    torch.manual_seed(2)
    assert not torch.allclose(a, net(*batch))


@pytest.mark.parametrize("lengths", [[5, 5, 5], [3, 1, 5]])
def test_hcnn_in_bf16_gives_the_same_numbers_with_the_compiled_relu_max(monkeypatch, lengths):
    """The kernel's one pass each way computes what relu, the fp32 cast, amax and autograd's fp32 sum do."""
    from object2vec.native import kernels

    if not kernels.available():
        pytest.skip("no C compiler here")
    net = net_for("hcnn", enc0_layers=3).train()
    encoder = net.encoders[0]
    tokens = torch.randint(0, 30, (sum(lengths),))
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "relu_max_applies", lambda y: False)
        encoder.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = encoder(tokens, torch.tensor(lengths))
        out.float().pow(2).sum().backward()
        results.append([out.detach(), *(p.grad.clone() for p in encoder.parameters())])
    for compiled, reference in zip(*results, strict=True):
        torch.testing.assert_close(compiled, reference, rtol=0, atol=0)


def test_pooled_embedding_of_a_row_sparse_table_has_embedding_bags_gradient():
    """The compiled backward of the mean, onto the distinct rows' gradient slot, equals torch's
    embedding_bag backward onto a leaf of those rows."""
    from object2vec.native import kernels
    from object2vec.nn import embedding as sparse

    if not kernels.available():
        pytest.skip("no C compiler here")
    table = torch.randn(9, 70)  # 70 columns: not a multiple of a vector's width
    tokens, lengths = torch.tensor([8, 3, 3, 6, 1, 8, 2, 5, 5, 5]), torch.tensor([3, 1, 6])
    rows, local = torch.unique(tokens, return_inverse=True)
    grad = torch.randn(3, 70)
    slot = torch.empty(len(rows), 70).requires_grad_()
    out = sparse._BagMean.apply(slot, table, tokens, local, lengths)
    out.backward(grad)
    leaf = table[rows].requires_grad_()
    reference = torch.nn.functional.embedding_bag(local, leaf, sparse.bag_offsets(lengths), mode="mean")
    reference.backward(grad)
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(slot.grad, leaf.grad)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _table_gradient(embedding: torch.nn.Module) -> torch.Tensor:
    """The token table's gradient as a dense ``(V, D)``, whether autograd or the row_sparse record holds it."""
    if not getattr(embedding, "row_sparse", False):
        return embedding.weight.grad.clone()
    rows, grad, _ = embedding.take_gradient()
    return torch.zeros_like(embedding.weight).index_add_(0, rows, grad)


@pytest.mark.parametrize("storage", ["dense", "row_sparse"])
@pytest.mark.parametrize("layers", [1, 2])
def test_bilstm_in_bf16_matches_the_fp32_lstm_to_bf16_rounding(monkeypatch, layers, storage):
    """bf16 products with an fp32 cell state (object2vec.nn.recurrent): the output and every gradient
    equal nn.LSTM's in fp32 to bf16 precision, on a padded batch whose tokens repeat (each distinct
    row's gradient is the sum over its positions; direction 1 starts at each sequence's last token;
    padding never reaches the max)."""
    from object2vec.native import kernels
    from object2vec.nn import recurrent

    if not kernels.available():
        pytest.skip("no C compiler here")
    calls = []
    bilstm_max = recurrent.bilstm_max
    monkeypatch.setattr(recurrent, "bilstm_max", lambda *args: calls.append(1) or bilstm_max(*args))
    encoder = net_for("bilstm", enc0_layers=layers, token_embedding_storage_type=storage).train().encoders[0]
    lengths = torch.tensor([7, 1, 4, 7, 2])
    tokens = torch.randint(0, 12, (int(lengths.sum()),))  # 21 positions over 12 ids: rows repeat
    results = []
    for precision in ("bf16", "fp32"):
        encoder.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = encoder(tokens, lengths)
        out.float().pow(2).sum().backward()
        table = _table_gradient(encoder.embedding)
        results.append([out.detach(), table, *(p.grad.clone() for n, p in encoder.named_parameters() if "embedding" not in n)])
    assert calls == [1]  # the bf16 pass only
    names = ["output", "token table", *(n for n, _ in encoder.named_parameters() if "embedding" not in n)]
    for name, bf16, fp32 in zip(names, *results, strict=True):
        assert _relative_error(bf16, fp32) < 0.02, name


def test_bilstm_in_bf16_keeps_each_sequence_independent_of_the_batch():
    from object2vec.native import kernels

    if not kernels.available():
        pytest.skip("no C compiler here")
    net = net_for("bilstm")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alone = net.encode(0, *flat([3, 1, 4]))
        padded = net.encode(0, *flat([1, 5, 9, 2, 6, 5, 3, 5], [3, 1, 4]))[1:]
    torch.testing.assert_close(alone.float(), padded.float(), rtol=0.02, atol=0.01)


def test_bilstm_in_bf16_without_the_kernels_runs_nn_lstm_in_fp32(monkeypatch):
    from object2vec.native import kernels
    from object2vec.nn import recurrent

    monkeypatch.setattr(kernels, "available", lambda: False)
    monkeypatch.setattr(recurrent, "bilstm_max", lambda *args: pytest.fail("the compiled recurrence ran"))
    net = net_for("bilstm")
    batch = flat([3, 1, 4], [1, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net.encode(0, *batch)
    torch.testing.assert_close(out.float(), net.encode(0, *batch), rtol=0.02, atol=0.01)  # only the projection ran in bf16


@pytest.mark.parametrize("vouched", [True, False], ids=["skipped", "drawn"])
def test_the_thrown_away_table_draw_leaves_the_random_stream_where_torchs_draw_does(vouched, monkeypatch):
    """nn.Embedding's own N(0, 1) draw is replaced by a cheaper skip of the same stream, so every
    seeded run keeps its numbers (and where the skip cannot be vouched for, the draw is made)."""
    from object2vec.nn import init

    if not vouched:
        monkeypatch.setattr(init, "_skip_matches_torch", lambda: False)
    for numel in (5, 16, 17, 3000, 4099, 3 * (1 << 20) + 7):
        torch.manual_seed(0)
        torch.nn.Embedding(numel, 1)
        want = torch.rand(3)
        torch.manual_seed(0)
        init.skip_normal_draw(numel)
        assert torch.equal(torch.rand(3), want), numel
