"""Extra token ids and per-token weights for text classification: what fastText and StarSpace add to words.

An extension of ``object2vec prepare`` (``--word-ngrams``, ``--subwords``, ``--buckets``,
``--token-weights``), kept in ``tokenization.json`` so that a trained model reads raw strings with the
same ids and weights. SageMaker's Object2Vec has none of it; without these options nothing here runs.

**Ids.** A side's vocabulary has ids ``[0, V)``; ``buckets`` more ids ``[V, V + buckets)`` hold hashed
features, so ``encX_vocab_size = V + buckets``:

* *word n-grams* (``word_ngrams = N >= 2``): every run of 2..N consecutive tokens, hashed as fastText
  does: each token's 32-bit FNV-1a hash ``h_i`` (of its UTF-8 bytes), then ``h = h_i``,
  ``h = h * 116049371 + h_j`` (mod 2**64) for ``j = i+1 .. i+n-1``, id ``V + h % buckets``;
* *subwords* (``subwords = (min, max)``): every character n-gram of ``<word>`` of ``min..max``
  characters (code points) but the lone ``<`` and ``>``, id ``V + fnv1a(n-gram) % buckets``; an
  out-of-vocabulary word (the unknown id) still gets its own subwords, so it keeps a meaning.

Word n-grams and subwords share the buckets (as in fastText); collisions are rare and harmless. The
ids of one text are interleaved by position: word ``i``, its subwords, then the n-grams that end at
word ``i``, so truncation at ``max_seq_len`` keeps a prefix of the text with all its features.

**Weights** (for ``encX_pooling=weighted_mean``), one per id, written as ``in0_weights``:

* ``inline``: StarSpace's ``feature:weight`` pieces. The text is split at whitespace; a piece that
  ends in ``:`` and a number (``economy:2.5``) gives its weight to every token of the part before
  the colon; other pieces weigh 1. Subwords carry their word's weight, an n-gram the mean of its words'.
* ``idf``: each id's inverse document frequency over the training texts of its side, as
  scikit-learn's smooth IDF: ``ln((1 + n) / (1 + df)) + 1`` (an id never seen weighs the most).
  The table (one float per id) is written beside the vocabulary as ``encX_idf.npy``.
"""

from __future__ import annotations

import functools
import math
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = ("none", "inline", "idf")
DEFAULT_BUCKETS = 200_000  # fastText's 2,000,000 suits millions of documents; each bucket is a row of enc_dim floats
_FNV_OFFSET, _FNV_PRIME = 2166136261, 16777619
_NGRAM_MULTIPLIER = 116049371  # fastText's word n-gram mixing constant
_MASK32, _MASK64 = (1 << 32) - 1, (1 << 64) - 1
_WEIGHTED_PIECE = re.compile(r"^(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")


def fnv1a(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text``'s UTF-8 bytes (fastText's word hash, bytes read unsigned).

    >>> fnv1a(""), fnv1a("a")
    (2166136261, 3826002220)
    """
    h = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK32
    return h


@functools.lru_cache(maxsize=1 << 18)
def _subword_hashes(word: str, low: int, high: int) -> tuple[int, ...]:
    """Hashes of the character n-grams of ``<word>``, by start then length (cached: words repeat,
    Zipf's law). The grams of one start share their prefix, so each start's hash is extended one
    character at a time (``fnv1a(gram)`` of every gram, in a fifth of the byte steps)."""
    marked = f"<{word}>"
    chars = [c.encode("utf-8") for c in marked]
    size = len(marked)
    out = []
    for start in range(size):
        h = _FNV_OFFSET
        for n in range(1, min(high, size - start) + 1):
            for byte in chars[start + n - 1]:
                h = ((h ^ byte) * _FNV_PRIME) & _MASK32
            if n >= low and not (n == 1 and (start == 0 or start + n == size)):  # not the lone boundary marks
                out.append(h)
    return tuple(out)


@functools.lru_cache(maxsize=1 << 18)
def _word_block(word: str, word_id: int, low_high: tuple[int, int] | None, buckets: int, offset: int) -> tuple[int, ...]:
    """A word's id followed by the ids of its subwords (cached per word, as the hashes)."""
    if low_high is None:
        return (word_id,)
    return (word_id, *(offset + h % buckets for h in _subword_hashes(word, *low_high)))


_word_hash = functools.lru_cache(maxsize=1 << 18)(fnv1a)


@dataclass(frozen=True)
class Features:
    """How one side's text becomes ids beyond the vocabulary, and each id's weight.

    >>> f = Features(word_ngrams=2, buckets=10)
    >>> ids, _ = f.expand(["new", "york", "city"], [4, 5, 0], vocab_size=6)
    >>> ids[:2], len(ids), all(6 <= i < 16 for i in ids[2:] if i not in (5, 0))
    ([4, 5], 5, True)
    """

    word_ngrams: int = 1  # 1: words only
    subwords: tuple[int, int] | None = None  # (min, max) characters of the character n-grams
    buckets: int = 0
    weights: str = "none"  # none, inline or idf

    def __post_init__(self) -> None:
        if not (isinstance(self.word_ngrams, int) and 1 <= self.word_ngrams <= 10):
            raise ValueError(f"word_ngrams must be an integer in [1, 10]; got {self.word_ngrams!r}")
        if self.subwords is not None:
            low, high = self.subwords
            if not (1 <= low <= high <= 20):
                raise ValueError(f"subwords must be MIN,MAX with 1 <= MIN <= MAX <= 20; got {low},{high}")
        if self.hashed and self.buckets < 1:
            raise ValueError("word n-grams and subwords are hashed into buckets; buckets must be >= 1")
        if self.weights not in WEIGHTS:
            raise ValueError(f"token weights must be one of {', '.join(WEIGHTS)}; got {self.weights!r}")

    @property
    def hashed(self) -> bool:
        """Whether ids beyond the vocabulary are added."""
        return self.word_ngrams > 1 or self.subwords is not None

    @property
    def active(self) -> bool:
        return self.hashed or self.weights != "none"

    @property
    def extra_ids(self) -> int:
        """Ids after the vocabulary (``encX_vocab_size = vocabulary size + extra_ids``)."""
        return self.buckets if self.hashed else 0

    def split(self, text: str, tokenizer: Any) -> tuple[list[str], list[float] | None]:
        """Tokens of ``text`` and, for inline weights, each token's weight (``None`` otherwise)."""
        if self.weights != "inline":
            return tokenizer(text), None
        tokens: list[str] = []
        weights: list[float] = []
        for piece in text.split():
            match = _WEIGHTED_PIECE.match(piece)
            part, weight = (match.group(1), float(match.group(2))) if match else (piece, 1.0)
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"{piece!r}: the weight after ':' must be a finite number >= 0")
            found = tokenizer(part)
            tokens += found
            weights += [weight] * len(found)
        return tokens, weights

    def expand(
        self, tokens: Sequence[str], ids: Sequence[int], vocab_size: int, weights: Sequence[float] | None = None
    ) -> tuple[list[int], list[float] | None]:
        """The ids of a text (its words' ``ids``, one per token) with its hashed features interleaved,
        and the weights of those ids (``None`` when ``weights`` is ``None``)."""
        if not self.hashed:
            return list(ids), None if weights is None else list(weights)
        if len(ids) != len(tokens):
            raise ValueError("expand needs one id per token (a vocabulary with an unknown token)")
        if weights is None and len(tokens) > 1:  # one word is quicker from the cache than through ctypes
            from ..native import kernels  # here: the command line starts without PyTorch, which kernels imports

            packed = kernels.expand_features([tokens], [ids], vocab_size, self.buckets, self.subwords, self.word_ngrams)
            if packed is not None:
                return packed[0].tolist(), None
        buckets, low_high, longest = self.buckets, self.subwords, self.word_ngrams
        blocks = [_word_block(t, i, low_high, buckets, vocab_size) for t, i in zip(tokens, ids, strict=True)]
        if longest > 1:  # the n-gram of n words ending at word i hashes as H_n(i) = H_(n-1)(i-1)*M + h_i
            hashes = [_word_hash(t) for t in tokens]
            grams: list[list[int]] = [[] for _ in tokens]
            previous = hashes
            for n in range(2, longest + 1):
                previous = [((a * _NGRAM_MULTIPLIER + b) & _MASK64) for a, b in zip(previous, hashes[n - 1 :], strict=False)]
                for end, h in enumerate(previous, start=n - 1):
                    grams[end].append(vocab_size + h % buckets)
            out = [x for block, g in zip(blocks, grams, strict=True) for x in (*block, *g)]
        else:
            grams = [[] for _ in tokens]
            out = [x for block in blocks for x in block]
        if weights is None:
            return out, None
        out_weights: list[float] = []  # subwords carry their word's weight, an n-gram the mean of its words'
        for i, (block, g) in enumerate(zip(blocks, grams, strict=True)):
            out_weights += [weights[i]] * len(block)
            out_weights += [sum(weights[i - n + 1 : i + 1]) / n for n in range(2, 2 + len(g))]
        return out, out_weights

    def expand_many(
        self, texts: Sequence[Sequence[str]], ids: Sequence[Sequence[int]], vocab_size: int, empty_id: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`expand`'s ids of many texts (no weights), packed: one int64 array and each text's end
        in it. A text without tokens gets ``[empty_id]`` (nothing when ``empty_id < 0``). The compiled
        kernel does it in one call where it is available (``native/csrc/features.c``: 10x faster than
        the Python loop with its per-word cache); the Python loop gives the same ids otherwise."""
        if self.hashed:
            from ..native import kernels

            packed = kernels.expand_features(texts, ids, vocab_size, self.buckets, self.subwords, self.word_ngrams, empty_id)
            if packed is not None:
                return packed
        out: list[int] = []
        ends = np.empty(len(texts), np.int64)
        for k, (tokens, text_ids) in enumerate(zip(texts, ids, strict=True)):
            if tokens:
                out += self.expand(tokens, text_ids, vocab_size)[0]
            elif empty_id >= 0:
                out.append(empty_id)
            ends[k] = len(out)
        return np.asarray(out, dtype=np.int64), ends

    def settings(self) -> dict[str, Any]:
        return {
            "word_ngrams": self.word_ngrams,
            "subwords": list(self.subwords) if self.subwords else None,
            "buckets": self.buckets,
            "weights": self.weights,
        }

    @classmethod
    def from_settings(cls, settings: Any, where: str) -> Features:
        """The features a ``tokenization.json`` describes (its ``"features"`` object)."""
        if not isinstance(settings, dict):
            raise ValueError(f"{where}: features is {settings!r}; expected an object")
        subwords = settings.get("subwords")
        try:
            return cls(
                word_ngrams=settings.get("word_ngrams", 1),
                subwords=(int(subwords[0]), int(subwords[-1])) if subwords else None,
                buckets=settings.get("buckets", 0),
                weights=settings.get("weights", "none"),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: features: {e}") from None


def parse_subwords(value: str | None) -> tuple[int, int] | None:
    """``--subwords``: ``MIN,MAX`` or ``N`` (both MIN and MAX), e.g. ``3,6`` as fastText's ``-minn 3 -maxn 6``."""
    if value is None or not str(value).strip():
        return None
    parts = [p.strip() for p in str(value).split(",")]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2):
        raise ValueError(f"--subwords {value!r}: expected MIN,MAX (e.g. 3,6) or one length")
    return (numbers[0], numbers[-1])


# --------------------------------------------------------------------------------------------------
# IDF


class DocumentFrequencies:
    """Counts, over the training texts of one side, how many texts hold each id."""

    def __init__(self, size: int):
        self.counts = np.zeros(size, dtype=np.int64)
        self.documents = 0
        self._pending = array("q")
        self._last: np.ndarray | None = None  # add_packed's scratch: the last text that counted each id

    def add(self, ids: Sequence[int]) -> None:
        self._pending.extend(set(ids))  # a text's distinct ids; counted in bulk (a np.unique per text cost 4x)
        self.documents += 1
        if len(self._pending) >= 1 << 20:
            self._count()

    def add_packed(self, ids: np.ndarray, ends: np.ndarray) -> None:
        """:meth:`add` for many texts, packed as :meth:`Features.expand_many` returns them."""
        from ..native import kernels

        if self._last is None:
            self._last = np.full(len(self.counts), -1, dtype=np.int64)
        if kernels.document_frequencies(ids, ends, self.documents, self.counts, self._last):  # texts numbered on
            self.documents += len(ends)
            return
        for text in np.split(ids, ends[:-1]) if len(ends) else []:
            self.add(text.tolist())

    def _count(self) -> None:
        if self._pending:
            self.counts += np.bincount(np.frombuffer(self._pending, dtype=np.int64), minlength=len(self.counts))
            self._pending = array("q")

    def idf(self) -> np.ndarray:
        """scikit-learn's smooth IDF, ``ln((1 + n) / (1 + df)) + 1``, one float32 per id."""
        self._count()
        return (np.log((1 + self.documents) / (1 + self.counts)) + 1).astype(np.float32)


def load_idf(path: Path, size: int, where: str) -> np.ndarray:
    """An ``encX_idf.npy`` table: one finite float >= 0 per id of a side of ``size`` ids."""
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot be read ({e}); expected the IDF table written by object2vec prepare") from None
    if table.ndim != 1 or len(table) != size or not np.isfinite(table).all() or (table < 0).any():
        raise ValueError(f"{where}: {path.name} holds {table.shape} values; expected {size} finite weights >= 0, one per id")
    return table.astype(np.float32, copy=False)
