"""The auxiliary channel: vocabularies and pretrained token vectors, and the rows that stay frozen.

SageMaker reads ``encX_vocab_file`` (JSON word -> id) and ``encX_pretrained_embedding_file`` (GloVe
text) from the ``auxiliary`` channel and initialises each vocabulary word's row from its vector;
rows stay frozen by default (``encX_freeze_pretrained_embedding=True``). Here:

* vector files are GloVe text (``word v1 ... vD``) or word2vec text (the same after a ``count dim``
  header line), plain or gzip; they are **streamed**, and only vocabulary words are parsed, so a
  5 GB file costs one pass and memory for the rows actually used. A word that appears twice keeps
  its first vector. Words containing spaces (a few in glove.840B) are read correctly.
* rows of vocabulary words found in the file get its vector; every other row (unknown token,
  words the file lacks, ids without a word) keeps the model's random initialisation.
* ``encX_freeze_pretrained_embedding=True`` freezes exactly the rows taken from the file. The
  other rows keep training: a frozen random vector would carry no information at all, and the
  words it stands for (often the task's own jargon) are the ones that most need learning.

Freezing is exact for every optimizer and for ``weight_decay > 0``, where a zero gradient alone is
not enough (torch adds ``weight_decay * w`` to it). A dense table gets a gradient hook that zeroes
the frozen rows, and every ``torch.optim`` step that updated the table writes their saved values
back (a global post-step hook, so the training loop needs no special case). A ``row_sparse``
table carries the ``frozen_rows`` mask, which its lazy optimizer skips.
"""

from __future__ import annotations

import gzip
import logging
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .. import console
from ..data.pairs import open_lines
from ..hyperparameters import Hyperparameters
from .tokenize import AuxiliaryFileError, TextCodec, Vocabulary

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Vector files


class VectorFile:
    """A GloVe or word2vec text file of word vectors; ``dim`` is read from its first line on creation.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "v.txt")
    >>> _ = open(path, "w").write("2 3\\nthe 0.1 0.2 0.3\\ncat 1 2 3\\n")
    >>> vf = VectorFile(path)
    >>> vf.dim, [(w, v.tolist()) for w, v in vf.scan(lambda word, k: word == "cat")]
    (3, [('cat', [1.0, 2.0, 3.0])])
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.header = False
        self.dim = 0
        for lineno, line in self._lines():
            fields = line.split()
            if lineno == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                self.header, self.dim = True, int(fields[1])  # word2vec text: "count dim"
                if self.dim < 1:
                    raise AuxiliaryFileError(f"{self.path}:1: header says {self.dim} dimensions; expected at least 1")
                break
            if len(fields) < 2:
                raise AuxiliaryFileError(f"{self.path}:{lineno}: {_clip(line)!r} has no values; expected 'word v1 v2 ... vD'")
            self.dim = len(fields) - 1
            break
        if not self.dim:
            raise AuxiliaryFileError(f"{self.path}: holds no vectors; expected GloVe or word2vec text lines 'word v1 v2 ... vD'")

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """Non-blank lines without their line ending, numbered from 1."""
        try:
            fh = open_lines(self.path)
        except OSError as e:
            raise AuxiliaryFileError(
                f"{self.path}: cannot be read ({e.strerror}); expected a GloVe or word2vec text file"
            ) from None
        lineno = 0
        with fh, console.FileProgress(fh, f"reading {self.path.name}") as bar:
            try:
                for lineno, raw in enumerate(fh, 1):
                    if not lineno & 4095:
                        bar.update()
                    line = raw.rstrip(b"\r\n")
                    if line.strip():
                        yield lineno, line
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise AuxiliaryFileError(f"{self.path}:{lineno + 1}: cannot be read ({e}); expected a complete file") from None

    def scan(self, want: Callable[[str, int], bool]) -> Iterator[tuple[str, np.ndarray]]:
        """``(word, vector)`` for each entry whose ``want(word, k)`` is true (``k``: entry number from 0).

        Unwanted lines are only split at their first space, never parsed, which is what keeps a
        pass over a multi-gigabyte file fast.
        """
        k = -1
        for lineno, line in self._lines():
            if lineno == 1 and self.header:
                continue
            k += 1
            space = line.find(b" ")
            if space <= 0:
                raise AuxiliaryFileError(
                    f"{self.path}:{lineno}: {_clip(line)!r} has no values; expected 'word v1 ... v{self.dim}'"
                )
            word = line[:space].decode("utf-8", errors="replace")
            wanted = want(word, k)
            values = line[space + 1 :].split() if wanted or line.count(b" ") != self.dim else None
            if values is not None and len(values) > self.dim:  # the word itself contains spaces
                head, *values = line.rsplit(None, self.dim)
                word = head.decode("utf-8", errors="replace")
                wanted = want(word, k)
            if not wanted:
                continue
            assert values is not None
            if len(values) != self.dim:
                raise AuxiliaryFileError(
                    f"{self.path}:{lineno}: {word!r} has {len(values)} values; expected {self.dim} like the first vector"
                )
            try:
                vector = np.array(values, dtype=np.float32)
            except ValueError:
                bad = next(v for v in values if not _is_float(v))
                raise AuxiliaryFileError(
                    f"{self.path}:{lineno}: {word!r} has value {bad.decode(errors='replace')!r}; expected a number"
                ) from None
            if not np.isfinite(vector).all():
                raise AuxiliaryFileError(f"{self.path}:{lineno}: {word!r} has a non-finite value; expected finite numbers")
            yield word, vector

    def lookup(self, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
        """Rows and vectors ``(rows (n,), vectors (n, dim))`` of the vocabulary ids whose word is in the file.

        Several words sharing an id: the one that comes first in the file gives the row.
        """
        rows: list[int] = []
        vectors: list[np.ndarray] = []
        done: set[int] = set()
        ids = vocab.ids
        for word, vector in self.scan(lambda w, _k: w in ids and ids[w] not in done):
            done.add(ids[word])
            rows.append(ids[word])
            vectors.append(vector)
        return np.asarray(rows, dtype=np.int64), (np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32))


def _is_float(value: bytes) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _clip(line: bytes, limit: int = 40) -> str:
    text = line.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Frozen rows

_FROZEN_TABLES: dict[int, weakref.ref[nn.Embedding]] = {}  # id(weight) -> its table (for the step hook)
_STEP_HOOK: object | None = None


def freeze_rows(table: nn.Embedding, rows: torch.Tensor) -> None:
    """Keep rows ``rows`` of ``table`` at their current values through any training.

    Sets ``table.frozen_rows`` (a ``(num_embeddings,)`` bool mask; lazy ``row_sparse`` optimizers skip
    these rows). For an autograd table it also zeroes their gradient and restores their values after
    every ``torch.optim`` step that touched the table (weight decay moves zero-gradient rows).
    """
    rows = torch.as_tensor(rows, dtype=torch.int64, device=table.weight.device).unique()
    mask = torch.zeros(table.num_embeddings, dtype=torch.bool, device=table.weight.device)
    mask[rows] = True
    table.register_buffer("frozen_rows", mask, persistent=False)  # buffers follow .to(device); not saved
    table.register_buffer("frozen_index", rows, persistent=False)
    table.register_buffer("frozen_values", table.weight.detach()[rows].clone(), persistent=False)
    weight = table.weight
    if not weight.requires_grad:  # a row_sparse table: its lazy optimizer reads frozen_rows
        return
    if id(weight) not in _FROZEN_TABLES:
        weight.register_hook(_zero_frozen_gradient(table))
    _FROZEN_TABLES[id(weight)] = weakref.ref(table)
    weakref.finalize(table, _FROZEN_TABLES.pop, id(weight), None)
    _install_step_hook()


def _zero_frozen_gradient(table: nn.Embedding) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook that zeroes the frozen rows (dense or sparse gradient); holds the table weakly."""
    ref = weakref.ref(table)

    def hook(grad: torch.Tensor) -> torch.Tensor:
        t = ref()
        if t is None or not hasattr(t, "frozen_rows"):
            return grad
        if grad.is_sparse:
            grad = grad.coalesce()
            keep = ~t.get_buffer("frozen_rows")[grad.indices()[0]]
            return torch.sparse_coo_tensor(grad.indices()[:, keep], grad.values()[keep], grad.shape)
        return grad.masked_fill(t.get_buffer("frozen_rows")[:, None], 0)

    return hook


def restore_frozen_rows(module: nn.Module) -> None:
    """Write the saved values back into every frozen row of ``module``'s tables.

    The step hook calls this for ``torch.optim`` optimizers; a training loop with an optimizer of
    its own can call it after each step.
    """
    with torch.no_grad():
        for table in module.modules():
            if isinstance(table, nn.Embedding) and hasattr(table, "frozen_index"):
                table.weight.index_copy_(0, table.get_buffer("frozen_index"), table.get_buffer("frozen_values"))


def _after_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            ref = _FROZEN_TABLES.get(id(p))
            table = ref() if ref is not None else None
            if table is not None and table.weight is p:
                restore_frozen_rows(table)


def _install_step_hook() -> None:
    global _STEP_HOOK
    if _STEP_HOOK is None:
        _STEP_HOOK = register_optimizer_step_post_hook(_after_step)


# --------------------------------------------------------------------------------------------------
# The channel


@dataclass
class Coverage:
    """How much of one side's vocabulary the vector file covered."""

    side: int
    file: str
    found: int  # vocabulary rows initialised from the file
    total: int  # distinct vocabulary rows
    frozen: bool

    def message(self) -> str:
        share = 100 * self.found / max(self.total, 1)
        rest = self.total - self.found
        if self.frozen:
            return (
                f"enc{self.side}_pretrained_embedding_file={self.file}: {self.found:,} of {self.total:,} vocabulary rows "
                f"found ({share:.1f}%) and frozen; the other {rest:,} start random and train"
            )
        return (
            f"enc{self.side}_pretrained_embedding_file={self.file}: {self.found:,} of {self.total:,} vocabulary rows "
            f"found ({share:.1f}%); the other {rest:,} start random; all rows train"
        )


@dataclass
class AuxiliaryChannel:
    """The checked contents of an auxiliary folder for one model: its text codec and vector files."""

    folder: Path | None
    codec: TextCodec | None
    vectors: dict[int, VectorFile]  # by side; a tied table is listed under side 0 only

    @classmethod
    def open(cls, hp: Hyperparameters, folder: str | os.PathLike | None) -> AuxiliaryChannel:
        """Check every auxiliary file the hyperparameters name, cheaply (vector files: first line only).

        Raises :class:`~object2vec.text.tokenize.AuxiliaryFileError` naming the hyperparameter, the file and
        what to change.
        """
        hp = hp.resolve()
        cfgs = hp.encoder(0), hp.encoder(1)
        named = [
            f"enc{s}_{key}={getattr(c, key)}"
            for s, c in enumerate(cfgs)
            for key in ("vocab_file", "pretrained_embedding_file")
            if getattr(c, key)
        ]
        if not named:
            return cls(None, None, {})
        if folder is None:
            raise AuxiliaryFileError(
                f"{', '.join(named)} name files in the auxiliary channel, but none was given; "
                "pass --auxiliary DIR (Python: fit(..., auxiliary=DIR))"
            )
        folder = Path(folder)
        if not folder.is_dir():
            raise AuxiliaryFileError(f"{folder}: no such auxiliary folder; expected the folder that holds {', '.join(named)}")
        codec = TextCodec.from_folder(folder, (cfgs[0].vocab_file, cfgs[1].vocab_file))
        for side, cfg in enumerate(cfgs):
            vocab = codec.vocabs[side] if codec else None
            if vocab is not None:
                vocab.check_size(cfg.vocab_size, f"enc{side}_vocab_file={folder / cfg.vocab_file}", f"enc{side}_vocab_size")
        tied = hp.tied_token_embedding_weight
        if tied:
            _check_tied(cfgs)
        vectors: dict[int, VectorFile] = {}
        for side, cfg in enumerate(cfgs):
            if not cfg.pretrained_embedding_file or (tied and side == 1):
                continue
            if not cfg.vocab_file:
                raise AuxiliaryFileError(
                    f"enc{side}_pretrained_embedding_file={cfg.pretrained_embedding_file} needs enc{side}_vocab_file to map "
                    f"its words to token ids; set enc{side}_vocab_file to the vocabulary the data was indexed with"
                )
            vf = VectorFile(folder / cfg.pretrained_embedding_file)
            if vf.dim != cfg.token_embedding_dim:
                fix = (
                    f"set enc_dim={vf.dim} (pooled_embedding uses enc_dim as its token size)"
                    if cfg.network == "pooled_embedding"
                    else f"set enc{side}_token_embedding_dim={vf.dim}"
                )
                raise AuxiliaryFileError(
                    f"enc{side}_pretrained_embedding_file={vf.path}: vectors have {vf.dim} dimensions, but enc{side}'s "
                    f"token embeddings have {cfg.token_embedding_dim}; {fix}, or use vectors of {cfg.token_embedding_dim} dimensions"
                )
            vectors[side] = vf
        return cls(folder, codec, vectors)

    def initialise(self, net: nn.Module, hp: Hyperparameters) -> list[Coverage]:
        """Copy the pretrained vectors into ``net``'s token tables and freeze them as configured.

        Reports coverage (found / total vocabulary rows) through the ``object2vec`` logger.
        """
        hp = hp.resolve()
        report = []
        for side, vf in self.vectors.items():
            cfg = hp.encoder(side)
            vocab = self.codec.vocabs[side] if self.codec else None
            assert vocab is not None  # open() refused a vector file without a vocabulary
            table = net.get_submodule(f"encoders.{side}.embedding")
            assert isinstance(table, nn.Embedding)  # every encoder reads an nn.Embedding subclass
            rows, vectors = vf.lookup(vocab)
            with torch.no_grad():
                table.weight[torch.from_numpy(rows).to(table.weight.device)] = torch.from_numpy(vectors).to(table.weight)
            if cfg.freeze_pretrained_embedding and len(rows):
                freeze_rows(table, torch.from_numpy(rows))
            coverage = Coverage(
                side, cfg.pretrained_embedding_file, len(rows), len(set(vocab.ids.values())), cfg.freeze_pretrained_embedding
            )
            logger.info(coverage.message())
            report.append(coverage)
        return report


def _check_tied(cfgs: tuple) -> None:
    """A tied table has one vocabulary and one set of vectors: enc1 may leave them empty or repeat enc0's."""
    problems = [
        f"enc0_{key}={getattr(cfgs[0], key)!r} but enc1_{key}={getattr(cfgs[1], key)!r}"
        for key in ("vocab_file", "pretrained_embedding_file")
        if getattr(cfgs[1], key) and getattr(cfgs[0], key) != getattr(cfgs[1], key)
    ]
    both = cfgs[0].pretrained_embedding_file and cfgs[1].pretrained_embedding_file
    if both and cfgs[0].freeze_pretrained_embedding != cfgs[1].freeze_pretrained_embedding:
        problems.append("enc0_freeze_pretrained_embedding and enc1_freeze_pretrained_embedding differ")
    if problems:
        raise AuxiliaryFileError(
            "tied_token_embedding_weight=True shares one token table, so enc0 holds its vocabulary and vectors: "
            f"{'; '.join(problems)}. Give enc1 the same values or leave them empty, or untie the tables"
        )
