"""The three encoders. Each maps ``(tokens, lengths)`` to ``(batch, enc_dim)``.

Input is *flat*: ``tokens`` is every sequence of the batch concatenated, ``(sum(lengths),)``, and
``lengths`` is ``(batch,)``; ``weights`` (``(sum(lengths),)`` or ``None``) are per-token weights, read
only by pooled_embedding's weighted mean. Sequence ends come from the lengths, so token id 0 is an ordinary token
and padding never reaches a result: an encoding does not depend on which other sequences share
its batch (``tests/test_model.py::test_encoding_does_not_depend_on_the_rest_of_the_batch`` checks
this for every encoder).

SageMaker documents what each encoder is (a mean of token vectors, a hierarchical CNN, a multi-layer
bidirectional LSTM), its layer counts and filter width, but not its pooling, projection or dropout;
those are our decisions (``docs/architecture.md`` gives the reasons):

* ``pooled_embedding``: mean of the token vectors, token dim = enc_dim, no projection (the
  ``encX_pooling`` extension: sum, max or a weighted mean instead).
* ``hcnn``: ``layers`` stacked convolutions of width ``cnn_filter_width`` (each layer reads the one
  below: "hierarchical"), ReLU, padded positions zeroed after each layer; each layer is max-pooled over
  the valid positions; the pooled vectors are concatenated and linearly projected to enc_dim. Each
  layer has ``ceil(enc_dim / layers)`` channels, so the concatenation is about enc_dim wide.
* ``bilstm``: ``layers`` bidirectional LSTM layers of ``ceil(enc_dim / 2)`` units per direction,
  max-pooled over valid timesteps (InferSent), then linearly projected to enc_dim.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..hyperparameters import EncoderConfig
from ..native import kernels
from . import recurrent
from .embedding import TokenEmbedding


def pad(flat: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scatter flat rows ``(N, D)`` into a zero-padded ``(B, T, D)`` and a ``(B, T)`` validity mask.

    When every sequence is as long as the longest (fixed-length data, or batches from
    ``bucket_width``), the rows already are ``(B, T, D)``: a view, and the mask is ``None``.
    Otherwise the rows are copied by index, whose backward is a gather by index: a boolean-mask
    assignment's backward gathers by mask, several times slower.
    """
    batch, longest = len(lengths), int(lengths.max())
    if int(lengths.min()) == longest:
        return flat.view(batch, longest, flat.shape[-1]), None
    mask = torch.arange(longest, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)
    rows = mask.view(-1).nonzero().squeeze(1)  # row-major order of the mask matches the flat order
    out = flat.new_zeros(batch * longest, flat.shape[-1]).index_copy(0, rows, flat)
    return out.view(batch, longest, flat.shape[-1]), mask


class PooledEmbedding(nn.Module):
    """Mean of the token embeddings (``embedding_bag``: no padding is ever built).

    The ``encX_pooling`` extension joins them otherwise: ``sum``, ``max`` (per dimension) or
    ``weighted_mean`` (each token's vector times its weight over the sequence's total weight, the
    weights given per token beside the ids).
    """

    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: TokenEmbedding):
        super().__init__()
        if embedding.embedding_dim != enc_dim:
            raise ValueError(f"pooled_embedding needs token dim == enc_dim ({enc_dim}); got {embedding.embedding_dim}")
        self.embedding = embedding
        self.pooling = config.pooling

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "mean":  # SageMaker's: per-token weights, if any, are not read
            return self.embedding.bag_mean(tokens, lengths)  # (B, enc_dim)
        return self.embedding.bag(tokens, lengths, self.pooling, weights)  # (B, enc_dim)


class _ReluMax(torch.autograd.Function):
    """A bf16 hcnn layer's relu (padding zeroed) and max over time by :mod:`object2vec.native.kernels`.

    The output stays bf16 for the next convolution, the max is fp32, and the backward sums the two
    gradients of the output in fp32 before rounding once: what the fp32 branch point below computes
    with a cast each way per layer, in one pass each way."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)  # the last layer's output feeds only its max
        h, top, ties = kernels.relu_max_forward(y, padding)
        ctx.save_for_backward(h, top, ties)
        return h, top

    @staticmethod
    def backward(ctx: Any, grad_h: torch.Tensor | None, grad_top: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        h, top, ties = ctx.saved_tensors
        if grad_h is None and grad_top is None:
            return None, None
        return kernels.relu_max_backward(h, top, ties, grad_top, grad_h), None


def _conv_same(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` (a ``Conv1d`` with ``padding="same"``) as a 2-D convolution of height 1 on ``(B, C, 1, T)``."""
    width = conv.kernel_size[0]
    left, right = (width - 1) // 2, width // 2  # "same": an even width pads one more on the right
    if left != right:
        x, left = F.pad(x, (left, right)), 0
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, padding=(0, left))


class HCNN(nn.Module):
    """Hierarchical CNN: stacked convolutions, each max-pooled over valid positions, then projected."""

    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: TokenEmbedding):
        super().__init__()
        self.embedding = embedding
        channels = math.ceil(enc_dim / config.layers)
        widths = [embedding.embedding_dim] + [channels] * config.layers
        convs = [nn.Conv1d(widths[i], widths[i + 1], config.cnn_filter_width, padding="same") for i in range(config.layers)]
        self.convs = nn.ModuleList(convs)
        self.project = nn.Linear(channels * config.layers, enc_dim)
        for conv in convs:
            # He init keeps activations at the embeddings' scale through the ReLU stack; a zero bias keeps
            # the pooled features input-driven at the start (torch's default bias swamps them: slow start)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv1d(bias=True): never None here

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        rows = self.embedding(tokens)  # (N, D)
        device = rows.device.type
        if torch.is_autocast_enabled(device):  # cast the rows, contiguous, instead of the transposed (B, D, T) view:
            rows = rows.to(torch.get_autocast_dtype(device))  # a strided copy, and its gradient's, cost 3x more
        x, mask = pad(rows, lengths)  # (B, T, D), (B, T) or None: no padding
        # (B, D, 1, T) with channels last in memory, as the rows lie: oneDNN's 2-D convolutions run in this
        # layout without copies (a 1-D convolution of the transposed (B, D, T) view was copied to and from
        # channels-first every step; 15-25% of a bf16 step in benchmarks/train_throughput.py's hcnn)
        x = x.unsqueeze(1).permute(0, 3, 1, 2)
        padded = None if mask is None else ~mask  # (B, T)
        padding = None if padded is None else padded[:, None, None, :]  # (B, 1, 1, T)
        pooled = []
        for conv in cast(Iterable[nn.Conv1d], self.convs):
            y = _conv_same(x, conv)
            if kernels.relu_max_applies(y):  # bf16: one compiled pass each way, the same numbers as below
                x, top = _ReluMax.apply(y, padded)
                pooled.append(top)
                continue
            # fp32 between layers: the gradients of a layer's output from the next layer and from its max are
            # summed there; summed in bf16, one parity seed in six fell from 0.99 to 0.88 (fp32 here: +0.78 points)
            x = F.relu(y).float()  # (B, C, 1, T)
            if padding is not None:  # zeroed, the next layer sees exactly what an unpadded sequence would
                x = x.masked_fill(padding, 0)
            # values are >= 0 and padding is 0, so this is the valid max. amax shares the gradient among tied
            # maxima, frequent in bf16; a max pool gives it all to the first (-6.3 points in the parity check)
            pooled.append(x.amax(dim=(2, 3)))
        return self.project(torch.cat(pooled, dim=1))  # (B, enc_dim)


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences, max-pooled over valid timesteps, then projected."""

    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: TokenEmbedding):
        super().__init__()
        self.embedding = embedding
        hidden = math.ceil(enc_dim / 2)
        self.lstm = nn.LSTM(embedding.embedding_dim, hidden, num_layers=config.layers, bidirectional=True, batch_first=True)
        self.project = nn.Linear(2 * hidden, enc_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        x, mask = pad(self.embedding(tokens), lengths)  # (B, T, D), (B, T) or None: no padding
        if recurrent.applies(x):  # bf16 on a CPU: bf16 products, fp32 cell state (see object2vec.nn.recurrent)
            return self.project(recurrent.bilstm_max(self.lstm, x, lengths))
        # Elsewhere the recurrence stays fp32 under a bf16 autocast: nn.LSTM's bf16 cell state lost 4.3
        # accuracy points on average (one seed in six fell from 0.93 to 0.70) in the benchmark's parity check.
        with torch.autocast(x.device.type, enabled=False):
            if mask is None:  # every sequence full length: no packing needed
                out, _ = self.lstm(x.float())  # (B, T, 2H)
            else:
                packed = nn.utils.rnn.pack_padded_sequence(x.float(), lengths.cpu(), batch_first=True, enforce_sorted=False)
                out, _ = self.lstm(packed)
                out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
                out = out.masked_fill(~mask[:, :, None], float("-inf"))
        return self.project(out.amax(dim=1))  # (B, 2H) -> (B, enc_dim)


ENCODERS: dict[str, type[nn.Module]] = {"pooled_embedding": PooledEmbedding, "hcnn": HCNN, "bilstm": BiLSTM}


def build_encoder(config: EncoderConfig, enc_dim: int, embedding: TokenEmbedding) -> nn.Module:
    """The encoder named by ``config.network``, reading tokens through ``embedding``."""
    return ENCODERS[config.network](config, enc_dim, embedding)
