"""Distributed data-parallel training under ``torchrun``: one process per GPU (or CPU slot).

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` joins the process group
(NCCL on GPUs, Gloo on CPUs). Everything else in the package asks :func:`context` where it stands:

* data: each rank reads only its shard (byte ranges of each file, see :func:`object2vec.data.jsonl.byte_range`);
* batches: ``mini_batch_size`` is the *global* batch, as on SageMaker's multi-GPU instances: each
  rank takes its share of it (:func:`batch_share`), and the loss of each rank's part is weighted so
  that the averaged gradient is the mean over the global batch (:func:`step_weights`);
* steps: every rank plans the same number of batches per epoch (the smallest shard's count);
* dense gradients: averaged by :class:`~torch.nn.parallel.DistributedDataParallel`;
* row_sparse gradients: the touched rows of every rank are gathered and averaged
  (:func:`sync_rows`), so the lazy update is identical everywhere;
* in-batch negatives (contrastive objectives): every rank's encodings are gathered with their
  gradient (:func:`gather_rows`), so the candidates are the global batch;
* metrics: sums are all-reduced, so early stopping decides identically on every rank;
* logging and artifacts: rank 0 only, through :func:`on_main`, which tells every rank whether it
  worked: a rank that fails alone while the others wait in a collective would hang the job.

A failure stops every rank within seconds with one message: work only rank 0 does is agreed on by
:func:`on_main`, a stop signal by :func:`any_rank`, and a failed run leaves without the final
barrier (:func:`teardown`). As a last resort a collective that waits longer than
``$OBJECT2VEC_DISTRIBUTED_TIMEOUT`` seconds (default 1800, PyTorch's) fails instead of waiting forever.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .. import reporting
from ..errors import HyperparameterError, Object2VecError

T = TypeVar("T")
TIMEOUT_ENV = "OBJECT2VEC_DISTRIBUTED_TIMEOUT"


class RankFailed(Object2VecError):
    """Another rank failed (rank 0 reports why); this rank stops too, silently."""


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> Context:
    """This process's place in the job (a single process outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Context()


launched_by_torchrun = reporting.launched_by_torchrun


def setup(device: torch.device) -> torch.device:
    """Join the process group if ``torchrun`` started us; returns this rank's device."""
    if not launched_by_torchrun():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():  # joined already (the command line joins before it checks the output folder)
        return device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timeout())
    return device


def timeout() -> datetime.timedelta:
    """How long a collective may wait for the other ranks: ``$OBJECT2VEC_DISTRIBUTED_TIMEOUT`` seconds."""
    value = os.environ.get(TIMEOUT_ENV, "1800")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not seconds > 0:
        raise Object2VecError(f"{TIMEOUT_ENV}={value!r}; expected a number of seconds > 0")
    return datetime.timedelta(seconds=seconds)


def teardown(ok: bool = True) -> None:
    """Leave the process group: after a barrier when the run succeeded (rank 0 may still be
    writing), at once when it failed (the other ranks may never reach a barrier)."""
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def on_main(action: Callable[[], T]) -> T | None:
    """Run ``action`` on rank 0 only (writing a file); every rank learns whether it worked.

    If it raised, rank 0 raises that error and every other rank :class:`RankFailed`, so all stop
    together instead of the others waiting in their next collective for a rank 0 that has left.
    Returns ``action()`` on rank 0 and None elsewhere.
    """
    ctx = context()
    error: Exception | None = None
    result = None
    if ctx.is_main:
        try:
            result = action()
        except Exception as e:
            error = e
    if ctx.is_distributed:
        message = [f"{type(error).__name__}: {error}" if error is not None else None]
        dist.broadcast_object_list(message, src=0)
        if message[0] is not None and not ctx.is_main:
            raise RankFailed(f"rank 0 failed: {message[0]}")
    if error is not None:
        raise error
    return result


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on every rank if it is true on any (a stop signal one rank saw first), in one all-reduce."""
    if not context().is_distributed:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (identity in a single process)."""
    if not context().is_distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def batch_share(global_size: int, ctx: Context | None = None, shards: list[int] | None = None) -> int:
    """This rank's part of a global batch of ``global_size`` pairs: as even as can be. The
    ``global_size % world_size`` ranks with the largest shards (``shards``: every rank's pair count;
    ties and no counts: the first ranks) take one pair more, so the rank that runs out of batches
    first, which ends the epoch for all, is not also the one that takes more.

    >>> batch_share(33, Context(rank=0, world_size=2)), batch_share(33, Context(rank=1, world_size=2))
    (17, 16)
    >>> batch_share(33, Context(rank=0, world_size=2), [790, 810]), batch_share(33, Context(rank=1, world_size=2), [790, 810])
    (16, 17)
    """
    ctx = ctx or context()
    if global_size < ctx.world_size:
        raise HyperparameterError(
            [
                f"mini_batch_size={global_size} is the global batch, shared by {ctx.world_size} processes; "
                f"it must be at least {ctx.world_size} (one pair per process and step)."
            ]
        )
    order = sorted(range(ctx.world_size), key=lambda r: (-shards[r], r)) if shards else list(range(ctx.world_size))
    return global_size // ctx.world_size + (order.index(ctx.rank) < global_size % ctx.world_size)


def batch_share_line(global_size: int) -> str:
    """The log line that says how the global batch is split.

    >>> batch_share_line(33)  # one process
    'mini_batch_size=33 is the global batch: each of 1 processes takes 33 pairs a step.'
    """
    world = context().world_size
    shares = sorted({batch_share(global_size, Context(r, world)) for r in range(world)}, reverse=True)
    return f"mini_batch_size={global_size} is the global batch: each of {world} processes takes {' or '.join(map(str, shares))} pairs a step."


def step_weights(sizes: list[int], device: torch.device) -> tuple[int, list[float]]:
    """How many steps every rank takes this epoch, and the weight of this rank's mean loss at each.

    ``sizes`` are this rank's batch sizes. A rank's gradient is the mean over its part, and DDP
    averages the ranks' gradients, so weighting each part by ``world_size * part / global batch``
    makes the step follow the mean over the global batch, also when parts differ (an uneven split,
    a shard's last short batch). In one process, or with equal parts, every weight is 1.
    """
    ctx = context()
    if not ctx.is_distributed:
        return len(sizes), [1.0] * len(sizes)
    every = gather_objects(sizes)
    steps = min(len(s) for s in every)
    totals = [sum(s[i] for s in every) for i in range(steps)]
    return steps, [ctx.world_size * sizes[i] / totals[i] for i in range(steps)]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    ctx = context()
    if not ctx.is_distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def sync_rows(rows: torch.Tensor, grad: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' touched rows and their gradients, summed per row and divided by the world size.

    The average matches what DDP does for dense gradients, so a row_sparse table and a dense one
    see the same update. Ranks touch different numbers of rows, so the lists are padded to the
    longest before ``all_gather`` (row id -1 marks padding).
    """
    ctx = context()
    if not ctx.is_distributed:
        return rows, grad
    count = torch.tensor([len(rows)], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(ctx.world_size)]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded_rows = torch.full((longest,), -1, dtype=rows.dtype, device=rows.device)
    padded_rows[: len(rows)] = rows
    padded_grad = torch.zeros(longest, dim, dtype=grad.dtype, device=grad.device)
    padded_grad[: len(rows)] = grad
    all_rows = [torch.empty_like(padded_rows) for _ in range(ctx.world_size)]
    all_grads = [torch.empty_like(padded_grad) for _ in range(ctx.world_size)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_grads, padded_grad)
    flat_rows, flat_grads = torch.cat(all_rows), torch.cat(all_grads)
    keep = flat_rows >= 0
    unique, inverse = torch.unique(flat_rows[keep], return_inverse=True)
    summed = torch.zeros(len(unique), dim, dtype=grad.dtype, device=grad.device).index_add_(0, inverse, flat_grads[keep])
    return unique, summed / ctx.world_size


def gather_rows(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
    """Every rank's rows of each tensor, concatenated in rank order, and where this rank's rows start.

    The tensors of one call have the same number of rows on a rank; ranks may hold different numbers.
    Gradients flow back (:class:`_GatherRows`): a loss on the gathered rows trains each rank's own
    rows as one process holding the global batch would. In a single process: ``(tensors, 0)``.
    """
    ctx = context()
    if not ctx.is_distributed:
        return tensors, 0
    count = torch.tensor([len(tensors[0])], dtype=torch.int64, device=tensors[0].device)
    counts_t = [torch.zeros_like(count) for _ in range(ctx.world_size)]
    dist.all_gather(counts_t, count)
    counts = [int(c.item()) for c in counts_t]
    gathered = [_GatherRows.apply(t, counts, ctx.rank) for t in tensors]
    return gathered, sum(counts[: ctx.rank])


class _GatherRows(torch.autograd.Function):
    """``all_gather`` of rows (padded to the longest rank) whose backward sums each gathered row's
    gradient over the ranks and hands every rank its own rows' sum. Unlike
    ``torch.distributed.nn.all_gather`` it takes ranks of different sizes and needs only
    ``all_reduce`` (Gloo has no reduce-scatter)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, counts: list[int], rank: int) -> torch.Tensor:
        ctx.counts, ctx.rank = counts, rank
        padded = x.new_zeros((max(counts), *x.shape[1:]))
        padded[: len(x)] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # each rank's loss reached every rank's rows: sum their gradients
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]], None, None
