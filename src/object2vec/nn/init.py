"""Initial weights: what MXNet Gluon gives a network that names no initializer.

SageMaker's Object2Vec is an MXNet model, and nothing public names its initializer. A Gluon network
initialised with ``net.initialize()`` draws every weight whose layer sets no initializer of its own
from ``mx.init.Uniform(0.07)`` and zeroes every bias (``Dense``, ``Conv1D`` and the LSTM layers
default to ``bias_initializer='zeros'``; ``Embedding`` has no bias). The ``mxnet`` scheme applies that
to the layers of SageMaker's pooled_embedding model (token tables, MLP, output layer); on the AWS
notebook's MovieLens configurations it reached a slightly lower validation loss than the ``pytorch``
scheme (token tables N(0, 0.1), PyTorch's layer defaults), see ``docs/movielens.md``, "SageMaker
parity". ``pytorch`` stays the default: on small tasks the mxnet scheme slows the start of training
(plain SGD stalled on the test suite's synthetic task; ``docs/architecture.md``, decision 21), and
experiments set :data:`DEFAULT_SCHEME`.

hcnn's convolutions keep He initialisation with zero biases in both schemes (chosen by measurement:
with PyTorch's default bias the pooled features start input-independent), bilstm's LSTM and the
encoders' projections keep PyTorch's defaults, and a token table that an hcnn or bilstm reads keeps
N(0, 0.1) (:func:`initialise_tables`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

MXNET_UNIFORM_SCALE = 0.07  # mx.init.Uniform()'s default scale: U(-0.07, 0.07)
EMBEDDING_INIT_STD = 0.1  # the pytorch scheme's token tables: N(0, 0.1)
SCHEMES = ("mxnet", "pytorch")
DEFAULT_SCHEME = "pytorch"


def scheme_in_use(scheme: str | None = None) -> str:
    """``scheme``, or the module default (which experiments may set); refuses unknown names."""
    scheme = scheme or DEFAULT_SCHEME
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialisation scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return scheme


def initialise_tables(tables: Sequence[tuple[nn.Embedding, Sequence[str]]], scheme: str | None = None) -> None:
    """Draw each token table in place, in list order; each comes with the networks of the encoders
    that read it.

    The ``mxnet`` scheme draws U(-0.07, 0.07) for a table that only ``pooled_embedding`` encoders read
    (the configurations it was measured on). A table an ``hcnn`` or ``bilstm`` reads keeps N(0, 0.1)
    in both schemes: with U(-0.07, 0.07) hcnn did not learn ``tests/test_quality.py``'s synthetic task
    in 10 epochs (test accuracy 0.49 against 0.99) and bilstm reached 0.944 against 0.974.

    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> pooled, lstm = nn.Embedding(10, 4), nn.Embedding(10, 4)
    >>> initialise_tables([(pooled, ("pooled_embedding",)), (lstm, ("bilstm",))], "mxnet")
    >>> bool(pooled.weight.abs().max() <= 0.07), bool(lstm.weight.abs().max() > 0.07)
    (True, True)
    """
    for table, networks in tables:
        if scheme_in_use(scheme) == "mxnet" and all(n == "pooled_embedding" for n in networks):
            nn.init.uniform_(table.weight, -MXNET_UNIFORM_SCALE, MXNET_UNIFORM_SCALE)
        else:
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)


def initialise_dense(layers: list[nn.Linear], scheme: str | None = None) -> None:
    """Draw the MLP and output ``layers`` in place (``pytorch``: leave torch's own draw).

    >>> layer = nn.Linear(4, 2)
    >>> initialise_dense([layer], "mxnet")
    >>> layer.bias.tolist(), bool(layer.weight.abs().max() <= 0.07)
    ([0.0, 0.0], True)
    """
    if scheme_in_use(scheme) != "mxnet":
        return
    for layer in layers:
        nn.init.uniform_(layer.weight, -MXNET_UNIFORM_SCALE, MXNET_UNIFORM_SCALE)
        nn.init.zeros_(layer.bias)


# --------------------------------------------------------------------------------------------------
# The random stream past a draw that is thrown away


def skip_normal_draw(numel: int) -> None:
    """Move the default CPU generator to where ``torch.empty(numel).normal_()`` leaves it, without
    the draw's arithmetic where that is vouched for (:func:`_skip_matches_torch`); else draw.

    Why: ``nn.Embedding`` draws N(0, 1) into its table when it is made, and training then draws the
    table again (:func:`initialise_tables`). The first draw is thrown away, but it advances the
    random stream, so every seeded run's numbers depend on it. PyTorch's CPU normal fill of a
    contiguous float32 tensor of at least 16 values takes one 32-bit output of the Mersenne Twister
    per value (16 more when the count is not a multiple of 16) and transforms them (Box-Muller), and
    a 32-bit integer fill takes one output per value with no transform: filling that many int32
    leaves the generator in the same state at about half the cost (0.37 -> 0.17 s for a table of
    500,000 x 100), and at a fixed 4 MB of memory.
    """
    if numel < 16 or not _skip_matches_torch():
        torch.empty(numel).normal_()
        return
    left = numel + (16 if numel % 16 else 0)
    scratch = torch.empty(min(left, 1 << 20), dtype=torch.int32)
    while left:
        scratch[: min(left, len(scratch))].random_()
        left -= min(left, len(scratch))


@functools.cache
def _skip_matches_torch() -> bool:
    """Whether this PyTorch's generator ends where :func:`skip_normal_draw` says, for counts on and
    off a multiple of 16 (checked once a process, on a generator of its own)."""
    for numel in (16, 1001, 4096):
        generator = torch.Generator().manual_seed(20261206)
        torch.empty(numel).normal_(generator=generator)
        want = generator.get_state()
        generator.manual_seed(20261206)
        torch.empty(numel + (16 if numel % 16 else 0), dtype=torch.int32).random_(generator=generator)
        if not torch.equal(generator.get_state(), want):
            return False
    return True
