"""Token tables: dense (SageMaker's ``dense`` storage) or row-sparse (only the rows a batch used get a gradient).

A token table can hold millions of rows, yet a batch of 256 pairs of 20 tokens touches at most
10,240 of them. With ``token_embedding_storage_type=dense`` the table is an ordinary parameter: its
gradient and its optimizer step cover every row (SageMaker's dense semantics). With ``row_sparse``
each training lookup gathers rows into a small leaf tensor (the batch's *distinct* rows for
``pooled_embedding``'s bags, one row per token for hcnn and bilstm; on CPU the bags read the table
itself and the distinct rows get only a gradient slot, :meth:`RowSparseEmbedding.gradient_slot`);
autograd fills that leaf's gradient, and :class:`object2vec.training.lazy_optim.LazyOptimizer`
updates just those rows and their optimizer state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..native import kernels
from . import init


def distinct(tokens: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(tokens, return_inverse=True)``: the sorted distinct ids and each token's place
    among them. On CPU numpy's is used: torch's sort is ~2.5x slower at a batch's few thousand ids.

    ``size`` (the table's rows, every id below it) allows a pass without a sort: with the compiled
    kernels, a bitmap over the rows (:func:`object2vec.native.kernels.distinct_rows`, O(tokens +
    size / 64): a batch of 17,600 ids of a 500,000-row table in 0.15 ms against numpy's 1.1 ms);
    without them, when the table is small beside the batch (long documents), a count per row, the
    rows that have one, and a map from row to place, O(tokens + size); 10x faster than the sort for
    100,000 tokens over 30,000 rows. The result is the same arrays.
    """
    if tokens.device.type != "cpu":
        return torch.unique(tokens, return_inverse=True)
    ids = tokens.numpy()
    if size is not None and size <= 1024 * len(ids) and (found := kernels.distinct_rows(ids, size)) is not None:
        return torch.from_numpy(found[0]), torch.from_numpy(found[1])
    if size is not None and size <= 4 * len(ids):
        rows = np.flatnonzero(np.bincount(ids, minlength=size))
        place = np.empty(size, dtype=np.int64)
        place[rows] = np.arange(len(rows))
        return torch.from_numpy(rows), torch.from_numpy(place[ids])
    rows, inverse = np.unique(ids, return_inverse=True)
    return torch.from_numpy(rows), torch.from_numpy(inverse.reshape(tokens.shape))


def bag_shares(weights: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each token's weight over the total of its sequence's weights: ``(N,)``, the per-token
    factors of a weighted mean (a sequence's shares sum to 1). Totals must be positive; the data
    reader refuses a sequence whose weights sum to 0."""
    bag = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)  # (N,)
    totals = torch.zeros(len(lengths), dtype=weights.dtype, device=weights.device).index_add_(0, bag, weights)
    return weights / totals[bag]


def bag_offsets(lengths: torch.Tensor) -> torch.Tensor:
    """Start of each sequence in the flat token array: ``(batch,)``."""
    return torch.cumsum(lengths, 0) - lengths


class TokenEmbedding(nn.Embedding):
    """A dense token table with the ``lookup`` interface the encoders use."""

    row_sparse = False

    def lookup(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(table, ids)`` such that ``table[ids]`` are the vectors of ``tokens``."""
        return self.weight, tokens

    def bag_mean(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The mean vector of each sequence of ``tokens`` (flat, ``lengths`` long): ``(B, D)``."""
        table, ids = self.lookup(tokens)
        return F.embedding_bag(ids, table, bag_offsets(lengths), mode="mean")

    def bag(
        self, tokens: torch.Tensor, lengths: torch.Tensor, pooling: str = "mean", weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each sequence's token vectors joined by ``pooling``: ``(B, D)``.

        ``mean`` (SageMaker's) is :meth:`bag_mean`; ``sum``; ``max``, per dimension; ``weighted_mean``,
        each token's vector times its share of the sequence's ``weights`` (flat, ``(N,)``).
        """
        if pooling == "mean":
            return self.bag_mean(tokens, lengths)
        table, ids = self.lookup(tokens)
        if pooling == "max":
            return F.embedding_bag(ids, table, bag_offsets(lengths), mode="max")
        shares = _shares(pooling, weights, lengths)
        return F.embedding_bag(ids, table, bag_offsets(lengths), mode="sum", per_sample_weights=shares)


class RowSparseEmbedding(TokenEmbedding):
    """A token table trained by :class:`~object2vec.training.lazy_optim.LazyOptimizer` instead of autograd on the full table."""

    row_sparse = True

    def __init__(self, num_embeddings: int, embedding_dim: int, _weight: torch.Tensor | None = None):
        super().__init__(num_embeddings, embedding_dim, _weight=_weight)
        self.weight.requires_grad_(False)  # rows are trained through the gathered leaves below
        # (row of each leaf row, leaf, whether those rows are distinct, whether the leaf holds their values),
        # one entry per lookup since zero_grad
        self.touched: list[tuple[torch.Tensor, torch.Tensor, bool, bool]] = []

    @property
    def recording(self) -> bool:
        """Whether lookups now record rows for :class:`~object2vec.training.lazy_optim.LazyOptimizer` (training, with autograd on)."""
        return self.training and torch.is_grad_enabled()

    def lookup(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(table, ids)`` with ``table[ids]`` the vectors of ``tokens``: in training, a leaf of the
        batch's distinct rows and each token's place in it (for ``embedding_bag``, whose backward
        then sums a row's gradients)."""
        if not self.recording:
            return self.weight, tokens
        rows, local = distinct(tokens, self.num_embeddings)  # (U,), (N,)
        leaf = self.weight.detach().index_select(0, rows).requires_grad_()  # (U, D): its .grad is the row_sparse gradient
        self.touched.append((rows, leaf, True, True))
        return leaf, local

    def bag_mean(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """As :meth:`TokenEmbedding.bag_mean`; in training on CPU (fp32, with the kernels built) the bags
        read the table itself and the distinct rows get only a gradient slot, not a copy of their values."""
        if not self._bags_read_the_table():
            return super().bag_mean(tokens, lengths)
        weight = self.weight
        rows, local = distinct(tokens, self.num_embeddings)
        return _BagMean.apply(self.gradient_slot(rows), weight, tokens, local, lengths)

    def bag(
        self, tokens: torch.Tensor, lengths: torch.Tensor, pooling: str = "mean", weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """As :meth:`TokenEmbedding.bag`; sum and weighted mean read the table itself in training on CPU,
        as :meth:`bag_mean` does (``max`` gathers the distinct rows: its gradient goes to one row per dimension)."""
        if pooling in ("mean", "max") or not self._bags_read_the_table():
            return super().bag(tokens, lengths, pooling, weights)
        rows, local = distinct(tokens, self.num_embeddings)
        shares = _shares(pooling, weights, lengths)
        return _BagWeighted.apply(self.gradient_slot(rows), self.weight, tokens, local, lengths, shares)

    def _bags_read_the_table(self) -> bool:
        weight = self.weight
        return self.recording and weight.device.type == "cpu" and weight.dtype == torch.float32 and kernels.available()

    def gradient_slot(self, rows: torch.Tensor) -> torch.Tensor:
        """A leaf ``(len(rows), D)`` of the distinct ``rows`` that only receives their gradient: for an
        encoder that reads the rows from the table itself (its values are never set, never read)."""
        slot = torch.empty(len(rows), self.embedding_dim, device=self.weight.device).requires_grad_()
        self.touched.append((rows, slot, True, False))
        return slot

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """One vector per token. In training the leaf holds one row per token, gathered from the table,
        so its backward is nothing; :meth:`take_gradient` sums repeated tokens with ``index_add_``,
        several times cheaper than ``F.embedding``'s backward (which sorts the ids)."""
        if not self.recording:
            return F.embedding(tokens, self.weight)
        leaf = self.weight.detach().index_select(0, tokens).requires_grad_()  # (N, D)
        self.touched.append((tokens, leaf, False, True))
        return leaf

    def take_gradient(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """Distinct touched rows, their summed gradient and (when known) their current values.

        The values are the leaf of one :meth:`lookup`, still equal to the table's rows (nothing
        writes the table between forward and step), so the optimizer need not gather them again;
        otherwise (several lookups of a tied table, or per-token leaves) they are not returned.
        Clears the record.
        """
        # (rows, leaf, its gradient, rows distinct, leaf holds the rows' values) of each lookup that got a gradient
        pieces = [(rows, leaf, leaf.grad, once, values) for rows, leaf, once, values in self.touched if leaf.grad is not None]
        self.touched.clear()
        if not pieces:
            return None
        if len(pieces) == 1 and pieces[0][3]:  # one lookup: rows are already distinct
            rows, leaf, grad, _, holds_values = pieces[0]
            return rows, grad, leaf.detach() if holds_values else None
        ids = pieces[0][0] if len(pieces) == 1 else torch.cat([piece[0] for piece in pieces])
        grads = pieces[0][2] if len(pieces) == 1 else torch.cat([piece[2] for piece in pieces])
        rows, inverse = distinct(ids)
        grad = torch.zeros(len(rows), self.embedding_dim, dtype=grads.dtype, device=rows.device)
        return rows, grad.index_add_(0, inverse, grads), None


class _BagMean(torch.autograd.Function):
    """``embedding_bag(mode="mean")`` of a row_sparse table, whose gradient goes to ``slot`` (the
    batch's distinct rows, in the order of ``local``) by one compiled pass
    (:func:`kernels.bag_mean_backward`) instead of torch's sort of the ids and segment sums."""

    @staticmethod
    def forward(
        ctx: Any, slot: torch.Tensor, table: torch.Tensor, tokens: torch.Tensor, local: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(local, lengths)
        ctx.rows = slot.shape[0]
        return F.embedding_bag(tokens, table.detach(), bag_offsets(lengths), mode="mean")  # (B, enc_dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        local, lengths = ctx.saved_tensors
        return kernels.bag_mean_backward(grad, local, lengths, ctx.rows), None, None, None, None


class _BagWeighted(torch.autograd.Function):
    """``embedding_bag(mode="sum", per_sample_weights=shares)`` of a row_sparse table (``shares=None``:
    the plain sum), whose gradient goes to ``slot`` by :func:`kernels.bag_weighted_backward`, as
    :class:`_BagMean`'s does."""

    @staticmethod
    def forward(
        ctx: Any,
        slot: torch.Tensor,
        table: torch.Tensor,
        tokens: torch.Tensor,
        local: torch.Tensor,
        lengths: torch.Tensor,
        shares: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(local, lengths, shares)
        ctx.rows = slot.shape[0]
        return F.embedding_bag(tokens, table.detach(), bag_offsets(lengths), mode="sum", per_sample_weights=shares)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None]:
        local, lengths, shares = ctx.saved_tensors
        return kernels.bag_weighted_backward(grad, local, lengths, shares, ctx.rows), None, None, None, None, None


def _shares(pooling: str, weights: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor | None:
    """The per-token factors of a sum (``None``: all 1) or a weighted mean."""
    if pooling == "sum":
        return None
    if pooling != "weighted_mean":
        raise ValueError(f"unknown pooling {pooling!r}")
    if weights is None:
        raise ValueError("weighted_mean pooling needs per-token weights (the records' in0_weights / in1_weights)")
    return bag_shares(weights.float(), lengths)


def make_embedding(num_embeddings: int, embedding_dim: int, row_sparse: bool, drawn: bool = True) -> TokenEmbedding:
    """A token table whose values the caller sets: ``drawn=True`` for training, which draws it at once
    (:func:`object2vec.nn.init.initialise_tables`; until then it holds whatever memory held), ``False``
    for weights about to be loaded (zeros).

    ``nn.Embedding`` draws N(0, 1) into a table when it is made; training drew again over it. That
    first draw is not made, but ``drawn=True`` moves the random stream past it
    (:func:`object2vec.nn.init.skip_normal_draw`), so every draw after it, and every seeded run's
    numbers, are what they were (0.37 s saved for a table of 500,000 x 100)."""
    cls = RowSparseEmbedding if row_sparse else TokenEmbedding
    if not drawn:
        return cls(num_embeddings, embedding_dim, _weight=torch.zeros(num_embeddings, embedding_dim))
    init.skip_normal_draw(num_embeddings * embedding_dim)
    return cls(num_embeddings, embedding_dim, _weight=torch.empty(num_embeddings, embedding_dim))
