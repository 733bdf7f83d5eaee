"""Compiled kernels for CPU hot loops that PyTorch runs as many small passes or with copies.

* **Touched rows updated in place** (``csrc/optimizers.c``). Written with PyTorch operations, a lazy
  Adam step gathers the touched rows of the weights and both moments into new tensors, updates them
  and scatters all three back: about 110 MB of memory traffic a table for 5,000 rows of 256 floats,
  so the step is bound by memory bandwidth (40% of the pooled benchmark's step). Updating each row
  where it lies reads the gradient, weight and moments once and writes them once: about a third of
  the traffic, 5x faster per table on a 2-core CPU. The rows of one step are distinct, so no two
  threads write the same memory. :mod:`object2vec.training.lazy_optim` keeps its PyTorch path for
  other devices and dtypes, with the same arithmetic in the same order (``tests/test_sparse.py``
  runs both).
* **A strict scanner for ``{"label", "in0", "in1"}`` lines** (``csrc/pairs.c``), with
  ``in0_weights``/``in1_weights`` after their ids for a model pooling by them. 4-5x faster than
  ``pyarrow.json.read_json`` on one core; it accepts a strict subset of what the per-record reader
  accepts and refuses a whole block otherwise, which then goes to pyarrow and the per-record reader
  as before (``tests/test_data.py`` compares it with JSON on random spacing, key orders, number
  forms and thousands of byte mutations).
* **Hashed text features** (``expand_features``, ``document_frequencies``, ``csrc/features.c``):
  ``prepare``'s word n-grams and subwords of many texts in one call, the same ids as
  :meth:`object2vec.text.features.Features.expand` (10x faster than its Python loop).
* **A batch's distinct rows** (``distinct_rows``, ``csrc/pooled.c``): ``numpy.unique`` with the
  inverse, by a bitmap over the table's rows instead of a sort.
* **hcnn's relu and max over time, bf16** (``relu_max_forward``/``backward``, ``csrc/hcnn.c``): one
  pass each way instead of casts to fp32 and back and ``amax``'s backward, with the same numbers
  (``tests/test_model.py`` checks them bit for bit).
* **pooled_embedding's backward over a row_sparse leaf** (``bag_mean_backward``, and
  ``bag_weighted_backward`` for the sum and weighted-mean poolings, ``csrc/pooled.c``): the tokens
  grouped by row with a counting sort, then each row's sum written once, instead of
  ``embedding_bag``'s sort of the ids and segment sums.
* **bilstm's time steps under bf16** (``lstm_forward_step``/``lstm_backward_step``, ``csrc/lstm.c``,
  driven by :mod:`object2vec.nn.recurrent` between torch's bf16 GEMMs): the gates and an fp32 cell
  state for all rows of both directions in one pass per step, direction 1 reading each sequence
  backwards in place, and the max over time kept as the steps run.

The C source is in ``csrc/``, one file per topic above. :mod:`object2vec.native.library` compiles it
on first use with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``; in about 0.1 s)
into the cache folder (``$OBJECT2VEC_CACHE_DIR/kernels``, private to the user), once per CPU model
and source version, records its hash and loads it only when the hash matches. Without a compiler, or
with ``OBJECT2VEC_KERNELS=0``, everything runs as before in PyTorch, pyarrow and Python (one WARNING
says so). With OpenMP the optimizer's rows are split over torch's own threads: the library shares
the ``libgomp`` torch loaded, whose threads are already awake after torch's operations (a separate
thread pool competed with them and gained nothing).
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import library


def available() -> bool:
    """Whether the compiled kernels are loaded (built on the first call)."""
    return library.load() is not None


def _loaded() -> ctypes.CDLL:
    """The compiled kernels, for callers that checked :func:`available` (or an ``*_applies`` function)."""
    kernels = library.load()
    if kernels is None:
        raise RuntimeError("object2vec's compiled kernels are unavailable; check kernels.available() first")
    return kernels


def function(name: str) -> Callable[..., Any]:
    """The compiled function ``name``, for callers that loop over it (call only when :func:`available`).
    Only functions of :data:`library.SIGNATURES` are handed out: ctypes would call any other without
    checking its arguments."""
    if name not in library.SIGNATURES:
        raise KeyError(f"{name} is not in object2vec.native.library.SIGNATURES")
    return getattr(_loaded(), name)


def applies(tables: list[torch.Tensor], grad: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether the kernel can update ``rows`` of ``tables`` (same-shaped fp32 CPU tables) in place."""
    if not available() or rows.dtype != torch.int64 or not rows.is_contiguous():
        return False
    shape = tables[0].shape
    if len(shape) != 2 or grad.shape != (len(rows), shape[1]):
        return False
    fp32_cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (*tables, grad))
    if not fp32_cpu or any(t.shape != shape for t in tables):
        return False
    return len(rows) == 0 or bool(rows.min() >= 0 and rows.max() < shape[0])  # never write outside a table


def _run(name: str, pointers: list[int], rows: torch.Tensor, dim: int, *scalars: float) -> None:
    """Call kernel ``name`` on every row of ``rows`` (on torch's OpenMP threads where compiled with OpenMP)."""
    function(name)(*pointers, rows.data_ptr(), len(rows), dim, *scalars)


def adam_rows(
    weight: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    grad: torch.Tensor,
    rows: torch.Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """Adam on ``rows`` of ``weight`` and its moments, in place (check :func:`applies` first)."""
    beta1, beta2 = betas
    pointers = [weight.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), grad.data_ptr()]
    corrections = (1 - beta1**step, (1 - beta2**step) ** 0.5)
    _run("adam_rows", pointers, rows, weight.shape[1], lr, beta1, beta2, eps, weight_decay, *corrections)


def adagrad_rows(
    weight: torch.Tensor,
    sums: torch.Tensor,
    grad: torch.Tensor,
    rows: torch.Tensor,
    *,
    lr: float,
    eps: float,
    weight_decay: float,
) -> None:
    """Adagrad on ``rows`` of ``weight`` and its sums of squares, in place."""
    _run("adagrad_rows", [weight.data_ptr(), sums.data_ptr(), grad.data_ptr()], rows, weight.shape[1], lr, eps, weight_decay)


def sgd_rows(weight: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, *, lr: float, weight_decay: float) -> None:
    """SGD on ``rows`` of ``weight``, in place."""
    _run("sgd_rows", [weight.data_ptr(), grad.data_ptr()], rows, weight.shape[1], lr, weight_decay)


def parse_pairs(
    block: bytes, weights: tuple[str, ...] = ()
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]] | None:
    """``(line starts, ids, lengths, labels, weights)`` of a block of ``{"label", "in0", "in1"}`` lines
    (and ``"in0_weights"``/``"in1_weights"`` after their ids for the sides in ``weights``, as float64),
    or ``None`` when the kernel is unavailable or the block holds anything else (see ``csrc/pairs.c``:
    the scanner accepts a strict subset of what the per-record reader accepts, and gives the same
    arrays). The buffers are sized for the worst case but allocated lazily by the OS: only written
    pages cost."""
    kernels = library.load()
    if kernels is None:
        return None
    cap = len(block) // 2 + 1  # a line or an id takes at least two bytes
    starts, lengths = np.empty(cap, np.int64), (np.empty(cap, np.int64), np.empty(cap, np.int64))
    ids, labels, counts = (np.empty(cap, np.int32), np.empty(cap, np.int32)), np.empty(cap, np.float64), np.zeros(2, np.int64)
    read = {side: np.empty(cap, np.float64) for side in weights}
    mask = sum(1 << int(side[-1]) for side in weights)
    pointers: list[np.ndarray] = [starts, ids[0], lengths[0], ids[1], lengths[1], labels]
    lines = kernels.parse_pairs(
        block, len(block), *(a.ctypes.data for a in pointers), cap, counts.ctypes.data, mask,
        *(read[side].ctypes.data if side in read else None for side in ("in0", "in1")),
    )  # fmt: skip
    if lines < 0:
        return None
    return (
        starts[:lines].copy(),
        {"in0": ids[0][: counts[0]], "in1": ids[1][: counts[1]]},
        {"in0": lengths[0][:lines].copy(), "in1": lengths[1][:lines].copy()},
        labels[:lines].copy(),
        {side: w[: counts[int(side[-1])]].copy() for side, w in read.items()},
    )


def expand_features(
    texts: Sequence[Sequence[str]],
    ids: Sequence[Sequence[int]],
    vocab_size: int,
    buckets: int,
    subwords: tuple[int, int] | None,
    word_ngrams: int,
    empty_id: int = -1,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ids, ends)``: the hashed-feature ids of every text (``texts``: each a list of tokens,
    ``ids``: their vocabulary ids, one per token) packed into one int64 array, and each text's end in
    it; ``Features.expand``'s ids, text by text (``csrc/features.c``). A text without tokens gets
    ``[empty_id]`` (nothing when ``empty_id < 0``). ``None`` when the kernels are unavailable or a
    token holds a lone surrogate (no UTF-8 for it: the Python path says so)."""
    kernels = library.load()
    if kernels is None:
        return None
    flat = [token for text in texts for token in text]
    try:
        chars = np.frombuffer("".join(flat).encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        return None
    token_ends = np.cumsum(np.fromiter(map(len, flat), np.int64, len(flat)))
    word_ids = np.fromiter(itertools.chain.from_iterable(ids), np.int64)
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    if len(word_ids) != len(flat):
        raise ValueError("expand_features needs one id per token (a vocabulary with an unknown token)")
    low, high = subwords or (0, 0)
    per_word = word_ngrams + (0 if subwords is None else (high - low + 1) * 2)  # "<", ">" and each char starts grams
    cap = len(flat) * per_word + (0 if subwords is None else len(chars) * (high - low + 1)) + len(texts)
    out, out_ends = np.empty(cap, np.int64), np.empty(len(texts), np.int64)
    scratch = np.empty(max(1, int(lengths.max(initial=0))), np.uint32)
    arrays: list[np.ndarray] = [chars, token_ends, word_ids, np.cumsum(lengths)]
    written = kernels.expand_features(
        *(a.ctypes.data for a in arrays), len(texts), vocab_size, buckets, low, high, word_ngrams, empty_id,
        scratch.ctypes.data, out.ctypes.data, out_ends.ctypes.data, cap,
    )  # fmt: skip
    if written < 0:
        raise RuntimeError("expand_features: the bound on the ids of the texts is wrong")
    return out[:written].copy(), out_ends


def document_frequencies(ids: np.ndarray, ends: np.ndarray, first: int, counts: np.ndarray, last: np.ndarray) -> bool:
    """Add to ``counts`` (int64, one per id) how many of the texts ``ids``/``ends`` (packed, as
    :func:`expand_features` returns them, numbered from ``first`` on) hold each id; ``last``: int64
    scratch of ``counts``' size, the number of the last text that counted each id (every entry -1
    before the first call, and texts numbered on across calls). ``False`` (nothing counted) when the
    kernels are unavailable."""
    kernels = library.load()
    if kernels is None:
        return False
    ids, ends = np.ascontiguousarray(ids, np.int64), np.ascontiguousarray(ends, np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(counts)):
        raise ValueError(f"document_frequencies: an id outside [0, {len(counts)})")
    if len(ends) and (ends[-1] > len(ids) or (np.diff(ends, prepend=0) < 0).any()):
        raise ValueError("document_frequencies: ends must rise to at most the number of ids")
    if len(last) != len(counts):
        raise ValueError("document_frequencies: last must have one entry per id")
    kernels.document_frequencies(ids.ctypes.data, ends.ctypes.data, len(ends), first, counts.ctypes.data, last.ctypes.data)
    return True


def relu_max_applies(y: torch.Tensor) -> bool:
    """Whether :func:`relu_max_forward` takes this convolution output: bf16 ``(B, C, 1, T)`` on CPU, channels last."""
    return (
        available()
        and y.device.type == "cpu"
        and y.dtype == torch.bfloat16
        and y.dim() == 4
        and y.shape[2] == 1
        and y.is_contiguous(memory_format=torch.channels_last)
    )


def relu_max_forward(y: torch.Tensor, padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(relu(y) with padded positions zeroed, its max over time in fp32, how many positions tie)``;
    ``padding``: ``(B, T)`` bool or ``None``."""
    batch, channels, _, steps = y.shape
    h = torch.empty_like(y)  # channels last, as y
    top, ties = torch.empty(batch, channels), torch.empty(batch, channels)
    pad = None if padding is None else padding.to(torch.uint8).contiguous()
    pad_pointer = None if pad is None else pad.data_ptr()
    _loaded().relu_max_forward(y.data_ptr(), pad_pointer, h.data_ptr(), top.data_ptr(), ties.data_ptr(), batch, steps, channels)
    return h, top, ties


def relu_max_backward(
    h: torch.Tensor, top: torch.Tensor, ties: torch.Tensor, grad_top: torch.Tensor | None, grad_h: torch.Tensor | None
) -> torch.Tensor:
    """The gradient of :func:`relu_max_forward`'s input, bf16, channels last."""
    batch, channels, _, steps = h.shape
    grad_y = torch.empty_like(h)
    if grad_top is not None:
        grad_top = grad_top.float().contiguous()
    if grad_h is not None:
        grad_h = grad_h.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    _loaded().relu_max_backward(
        h.data_ptr(), top.data_ptr(), ties.data_ptr(),
        None if grad_top is None else grad_top.data_ptr(), None if grad_h is None else grad_h.data_ptr(),
        grad_y.data_ptr(), batch, steps, channels,
    )  # fmt: skip
    return grad_y


def distinct_rows(ids: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``np.unique(ids, return_inverse=True)`` for ids in ``[0, size)``, by a bitmap over the rows
    (``csrc/pooled.c``; no sort), or ``None`` when the kernels are unavailable. Refuses an id out of range."""
    kernels = library.load()
    if kernels is None:
        return None
    flat = np.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() >= size):
        raise ValueError(f"distinct_rows: an id outside [0, {size})")
    words = (size + 63) // 64
    bits, counts = np.zeros(words, np.uint64), np.empty(words, np.int64)
    rows, inverse = np.empty(len(flat), np.int64), np.empty(len(flat), np.int64)
    k = kernels.distinct_rows(
        flat.ctypes.data, len(flat), size, bits.ctypes.data, counts.ctypes.data, rows.ctypes.data, inverse.ctypes.data
    )
    return rows[:k].copy(), inverse.reshape(ids.shape)


def bag_mean_backward(grad_bags: torch.Tensor, local: torch.Tensor, lengths: torch.Tensor, rows: int) -> torch.Tensor:
    """The gradient of ``embedding_bag(local, table, mode="mean")`` for the ``rows`` rows of a CPU
    fp32 table: a bag's gradient divided by its length, summed into each of its tokens' rows."""
    grad_bags = grad_bags.float().contiguous()
    local, lengths = local.to(torch.int64).contiguous(), lengths.to(torch.int64).contiguous()
    grad_rows = torch.empty(rows, grad_bags.shape[1])
    status = _loaded().bag_mean_backward(
        grad_bags.data_ptr(), local.data_ptr(), lengths.data_ptr(), grad_rows.data_ptr(), len(lengths), rows, grad_bags.shape[1]
    )
    if status != 0:
        raise MemoryError("bag_mean_backward could not allocate its index arrays")
    return grad_rows


def bag_weighted_backward(
    grad_bags: torch.Tensor, local: torch.Tensor, lengths: torch.Tensor, shares: torch.Tensor | None, rows: int
) -> torch.Tensor:
    """The gradient of ``embedding_bag(local, table, mode="sum", per_sample_weights=shares)`` for the
    ``rows`` rows of a CPU fp32 table (``shares=None``: every token's share is 1, the plain sum)."""
    grad_bags = grad_bags.float().contiguous()
    local, lengths = local.to(torch.int64).contiguous(), lengths.to(torch.int64).contiguous()
    shares = None if shares is None else shares.float().contiguous()
    grad_rows = torch.empty(rows, grad_bags.shape[1])
    status = _loaded().bag_weighted_backward(
        grad_bags.data_ptr(), local.data_ptr(), lengths.data_ptr(), None if shares is None else shares.data_ptr(),
        grad_rows.data_ptr(), len(lengths), rows, grad_bags.shape[1],
    )  # fmt: skip
    if status != 0:
        raise MemoryError("bag_weighted_backward could not allocate its index arrays")
    return grad_rows
