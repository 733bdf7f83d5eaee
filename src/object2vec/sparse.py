"""Token tables, and the lazy (``row_sparse``) updates that touch only the rows a batch used.

A token table can hold millions of rows, yet a batch of 256 pairs of 20 tokens touches at most
10,240 of them. With ``token_embedding_storage_type=dense`` the table is an ordinary parameter: its
gradient and its optimizer step cover every row (SageMaker's dense semantics). With ``row_sparse``
each training lookup gathers rows into a small leaf tensor (the batch's *distinct* rows for
``pooled_embedding``'s bags, one row per token for hcnn and bilstm; on CPU the bags read the table
itself and the distinct rows get only a gradient slot, :meth:`RowSparseEmbedding.gradient_slot`);
autograd fills that leaf's gradient, and :class:`LazyOptimizer` updates just those rows and their optimizer state: in place by
:mod:`object2vec.kernels` on CPU, else gathered, updated by torch's fused kernels and written back
(:func:`copy_rows`). Nothing proportional to the vocabulary happens per step.

Lazy semantics (the MXNet ``lazy_update`` that SageMaker's row_sparse used):

* adam: moments of a row are updated only on steps that touch the row; bias correction uses the
  table's global step count (as ``torch.optim.SparseAdam``);
* adagrad: a row's squared-gradient sum grows only when touched;
* sgd: plain ``w -= lr * g`` on touched rows;
* weight decay ``wd * w`` is added to the gradient of touched rows only.

On the first step every touched row gets exactly the dense optimizer's update; untouched rows never
change (``tests/test_sparse.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed, kernels


def distinct(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(tokens, return_inverse=True)``: the sorted distinct ids and each token's place
    among them. On CPU numpy's is used: torch's sort is ~2.5x slower at a batch's few thousand ids."""
    if tokens.device.type != "cpu":
        return torch.unique(tokens, return_inverse=True)
    rows, inverse = np.unique(tokens.numpy(), return_inverse=True)
    return torch.from_numpy(rows), torch.from_numpy(inverse.reshape(tokens.shape))


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


class RowSparseEmbedding(TokenEmbedding):
    """A token table trained by :class:`LazyOptimizer` instead of autograd on the full table."""

    row_sparse = True

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__(num_embeddings, embedding_dim)
        self.weight.requires_grad_(False)  # rows are trained through the gathered leaves below
        # (row of each leaf row, leaf, whether those rows are distinct, whether the leaf holds their values),
        # one entry per lookup since zero_grad
        self.touched: list[tuple[torch.Tensor, torch.Tensor, bool, bool]] = []

    @property
    def recording(self) -> bool:
        """Whether lookups now record rows for :class:`LazyOptimizer` (training, with autograd on)."""
        return self.training and torch.is_grad_enabled()

    def lookup(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(table, ids)`` with ``table[ids]`` the vectors of ``tokens``: in training, a leaf of the
        batch's distinct rows and each token's place in it (for ``embedding_bag``, whose backward
        then sums a row's gradients)."""
        if not self.recording:
            return self.weight, tokens
        rows, local = distinct(tokens)  # (U,), (N,)
        leaf = self.weight.detach().index_select(0, rows).requires_grad_()  # (U, D): its .grad is the row_sparse gradient
        self.touched.append((rows, leaf, True, True))
        return leaf, local

    def bag_mean(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """As :meth:`TokenEmbedding.bag_mean`; in training on CPU (fp32, with the kernels built) the bags
        read the table itself and the distinct rows get only a gradient slot, not a copy of their values."""
        weight = self.weight
        if not (self.recording and weight.device.type == "cpu" and weight.dtype == torch.float32 and kernels.available()):
            return super().bag_mean(tokens, lengths)
        rows, local = distinct(tokens)
        return _BagMean.apply(self.gradient_slot(rows), weight, tokens, local, lengths)

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
        pieces = [piece for piece in self.touched if piece[1].grad is not None]
        self.touched.clear()
        if not pieces:
            return None
        if len(pieces) == 1 and pieces[0][2]:  # one lookup: rows are already distinct
            rows, leaf, _, holds_values = pieces[0]
            return rows, leaf.grad, leaf.detach() if holds_values else None
        ids = pieces[0][0] if len(pieces) == 1 else torch.cat([piece[0] for piece in pieces])
        grads = pieces[0][1].grad if len(pieces) == 1 else torch.cat([piece[1].grad for piece in pieces])
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


_WIDE_ELEMENTS = (torch.complex128, torch.float64)  # 16 and 8 bytes


def copy_rows(table: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``table[rows] = values`` for a 2-D table. On CPU ``index_copy_`` costs per element, not per
    row, so rows are moved as 16-byte (or 8-byte) elements when their bytes allow it: a plain
    byte copy, bit-exact, about 3x faster than copying 4-byte floats one by one."""
    if table.device.type == "cpu" and table.dtype == values.dtype and table.is_contiguous() and values.is_contiguous():
        row_bytes = table.shape[1] * table.element_size()
        for wide in _WIDE_ELEMENTS:
            if row_bytes % wide.itemsize == 0 and table.storage_offset() * table.element_size() % wide.itemsize == 0:
                table.view(wide).index_copy_(0, rows, values.view(wide))
                return
    table.index_copy_(0, rows, values)


def make_embedding(num_embeddings: int, embedding_dim: int, row_sparse: bool) -> TokenEmbedding:
    cls = RowSparseEmbedding if row_sparse else TokenEmbedding
    return cls(num_embeddings, embedding_dim)


_STATE_TABLES = {"adam": ("exp_avg", "exp_avg_sq"), "adagrad": ("sum",), "sgd": ()}


class LazyOptimizer:
    """Adam, Adagrad or SGD applied to the touched rows of row_sparse tables only."""

    def __init__(self, tables: list[RowSparseEmbedding], name: str, lr: float, weight_decay: float):
        if name not in ("adam", "adagrad", "sgd"):
            raise ValueError(f"row_sparse supports adam, adagrad and sgd; got {name}")
        self.tables, self.name, self.lr, self.weight_decay = tables, name, lr, weight_decay
        self.betas, self.eps = (0.9, 0.999), (1e-8 if name == "adam" else 1e-10)
        self.state: list[dict[str, Any]] = [{} for _ in tables]

    def zero_grad(self) -> None:
        """Clear the gradients of rows gathered so far; the gathered rows themselves stay recorded,
        so ``forward, zero_grad, backward, step`` works as it does for a torch optimizer."""
        for table in self.tables:
            for _, leaf, _, _ in table.touched:
                leaf.grad = None

    @torch.no_grad()
    def step(self, scale: float = 1.0) -> None:
        """Update touched rows; ``scale`` undoes fp16 loss scaling (a non-finite gradient skips the table)."""
        for table, state in zip(self.tables, self.state, strict=True):
            taken = table.take_gradient()
            if taken is None:  # still join the other ranks' exchange below
                taken = (
                    torch.zeros(0, dtype=torch.long, device=table.weight.device),
                    table.weight.new_zeros(0, table.embedding_dim),
                    None,
                )
            rows, grad, values = taken
            if distributed.context().is_distributed:  # rows become the union over ranks: gather again
                rows, grad = distributed.sync_rows(rows, grad, table.embedding_dim)
                values = None
            if len(rows) == 0:
                continue
            if scale != 1.0:
                grad = grad.float() / scale
                if not torch.isfinite(grad).all():
                    continue
            frozen = getattr(table, "frozen_rows", None)
            if frozen is not None:  # pretrained rows that must not move
                keep = ~frozen[rows]
                rows, grad = rows[keep], grad[keep]
                values = None if values is None else values[keep]
            weight = table.weight
            if self._update_in_place(state, weight, rows, grad):
                continue
            w = weight.index_select(0, rows) if values is None else values  # (U, D), ours to update in place
            if self.name == "sgd":
                w.add_(grad if not self.weight_decay else grad + self.weight_decay * w, alpha=-self.lr)
            elif self.name == "adagrad":
                w = self._adagrad(state, weight, rows, grad, w)
            else:
                w = self._adam(state, weight, rows, grad, w)
            copy_rows(weight, rows, w)

    def _state_tables(self, state: dict[str, Any], weight: torch.Tensor) -> list[torch.Tensor]:
        """The optimizer's per-row tables for ``weight`` (moments or sums), created as zeros on first use."""
        names = _STATE_TABLES[self.name]
        if names and names[0] not in state:  # (not setdefault: its default would be built on every step)
            state.update({name: torch.zeros_like(weight) for name in names})
        return [state[name] for name in names]

    def _rows_of(self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
        """The touched rows of each state table, gathered contiguously."""
        return [table.index_select(0, rows) for table in self._state_tables(state, weight)]

    @staticmethod
    def _count(state: dict[str, Any]) -> int:
        """Count the step: the table's global count (an int in the checkpoint) behind bias correction."""
        state["step"] = state.get("step", 0) + 1
        return state["step"]

    def _step_tensor(self, state: dict[str, Any]) -> list[torch.Tensor]:
        return [torch.tensor(float(self._count(state)))]

    def _update_in_place(self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor) -> bool:
        """Update the rows where they lie with :mod:`object2vec.kernels`, where it applies (fp32 CPU
        tables and a C compiler): a third of the memory traffic of gathering, updating and
        scattering them. ``False``: nothing was done, the PyTorch path below runs."""
        tables = [weight, *self._state_tables(state, weight)]
        rows, grad = rows.to(torch.int64).contiguous(), grad.contiguous()
        if not kernels.applies(tables, grad, rows):
            return False
        if self.name == "adam":
            step = self._count(state)
            kernels.adam_rows(
                *tables, grad, rows, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay, step=step
            )
        elif self.name == "adagrad":
            self._count(state)
            kernels.adagrad_rows(*tables, grad, rows, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)
        else:
            kernels.sgd_rows(weight, grad, rows, lr=self.lr, weight_decay=self.weight_decay)
        return True

    def _adagrad(
        self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """torch's fused Adagrad kernel (one pass: decay, sum, update) on the gathered rows."""
        (s,) = self._rows_of(state, weight, rows)
        torch._fused_adagrad_(
            [w], [grad.contiguous()], [s], self._step_tensor(state),
            lr=self.lr, lr_decay=0.0, weight_decay=self.weight_decay, eps=self.eps, maximize=False,
        )  # fmt: skip
        copy_rows(state["sum"], rows, s)
        return w

    def _adam(
        self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """torch's fused Adam kernel (one pass instead of eight: decay, moments, bias correction,
        update) on the gathered rows and moments; the moments are then written back."""
        beta1, beta2 = self.betas
        m, v = self._rows_of(state, weight, rows)
        torch._fused_adam_(
            [w], [grad.contiguous()], [m], [v], [], self._step_tensor(state),
            lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=self.weight_decay, eps=self.eps,
            amsgrad=False, maximize=False,
        )  # fmt: skip
        copy_rows(state["exp_avg"], rows, m)
        copy_rows(state["exp_avg_sq"], rows, v)
        return w

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["state"]
