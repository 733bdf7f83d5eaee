"""What ``object2vec prepare`` can be told, as one frozen value: :class:`PrepareOptions`.

The defaults live here once: :func:`object2vec.text.prepare.prepare` takes a ``PrepareOptions`` (or
keyword changes to the defaults), and the ``object2vec prepare`` command builds its flags' defaults
from the same fields. This module imports nothing heavy, so the command line can read it at start.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Object2VecError
from .tokenize import UNKNOWN_TOKEN

LABEL_TYPES = ("auto", "class", "number")
TASKS = ("pairs", "classify", "label-pairs")  # an extension: one text and its label (docs/text_classification.md)
TOKEN_WEIGHTS = ("none", "inline", "idf")
MAX_SEQ_LEN = 5000  # SageMaker's encX_max_seq_len limit
SPLITS = ("train", "validation", "test")
PATHS = (*SPLITS, "vocab_from", "tokenizer_file", "vectors")  # fields that name a file or folder


class PrepareError(Object2VecError, ValueError):
    """The options of ``prepare`` do not fit together or do not fit the input."""


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """Inputs, vocabulary, labels, vectors and length settings of one ``prepare`` run.

    Every value is checked when the options are made (``PrepareError`` names the field); whether they
    fit together (something to prepare, a vocabulary to use) is checked by :meth:`inputs`.

    >>> PrepareOptions(train="train.csv", min_count=2).min_count
    2
    >>> PrepareOptions(min_count=0)
    Traceback (most recent call last):
    ...
    object2vec.text.prepare_options.PrepareError: min_count must be an integer >= 1; got 0
    """

    train: Path | None = None  # the vocabulary and the labels are built from this split
    validation: Path | None = None
    test: Path | None = None
    vocab_from: Path | None = None  # an earlier output folder whose tokenizer, vocabularies and labels to apply
    tokenizer_file: Path | None = None  # a Hugging Face tokenizer.json instead of the default tokenizer
    lowercase: bool | None = None  # None: yes for the default tokenizer, no for a tokenizer file
    min_count: int = 1  # keep words seen at least this often in training
    max_size: int | None = None  # at most this many ids, the unknown token's included
    shared_vocab: bool = False  # one vocabulary for both sides (vocab.json), else one per side
    unknown_token: str = UNKNOWN_TOKEN  # the word of id 0, which stands for every out-of-vocabulary token
    label_type: str = "auto"  # auto, class or number (see Labels.infer)
    vectors: Path | None = None  # GloVe/word2vec text vectors: vocabulary rows go to vectors.txt.gz
    vector_words: int = 0  # also add the first N words of `vectors` to the vocabulary
    length_percentile: float = 99.0  # the suggested max_seq_len: this percentile of training lengths
    max_seq_len: int | None = None  # suggest this max_seq_len instead of the percentile
    # -- extensions: text classification (object2vec.text.features, docs/text_classification.md)
    task: str = "pairs"  # pairs (two texts), classify (one text, softmax) or label-pairs (one text paired with its label)
    word_ngrams: int = 1  # add hashed word n-grams of 2..word_ngrams tokens
    subwords: tuple[int, int] | None = None  # add hashed character n-grams of (min, max) characters
    buckets: int | None = None  # ids for the hashed features (None: 200,000 when any is on)
    token_weights: str = "none"  # per-token weights (in0_weights): none, inline (word:weight) or idf

    def __post_init__(self) -> None:
        for name in PATHS:
            value = getattr(self, name)
            if isinstance(value, (str, os.PathLike)):
                object.__setattr__(self, name, Path(value))
        for name, (valid, expected) in _CONSTRAINTS.items():
            value = getattr(self, name)
            if not valid(value):
                raise PrepareError(f"{name} must be {expected}; got {value!r}")

    def inputs(self) -> dict[str, Path]:
        """The splits to prepare, by name; refuses options that leave nothing to do or no vocabulary."""
        inputs = {name: path for name in SPLITS if (path := getattr(self, name)) is not None}
        if not inputs:
            raise PrepareError("nothing to prepare: give --train, --validation or --test")
        if self.vocab_from is None and "train" not in inputs:
            raise PrepareError(
                "the vocabulary is built from the training split: give --train, or --vocab-from an earlier output folder"
            )
        if self.vector_words and self.vectors is None:
            raise PrepareError("--vector-words adds words of the --vectors file; give --vectors too")
        return inputs

    def changed(self, **changes: Any) -> PrepareOptions:
        """A copy with some fields changed; an unknown name is refused with the known ones."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(f"unknown prepare option(s) {', '.join(unknown)}; the options are {known}")
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# field -> (is the value valid, what a valid value is); the command line's flags enforce the same ranges
_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lowercase": (lambda v: v is None or isinstance(v, bool), "true, false or None"),
    "min_count": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "max_size": (lambda v: v is None or (_is_int(v) and v >= 2), "an integer >= 2 (the unknown token and one word) or None"),
    "shared_vocab": (lambda v: isinstance(v, bool), "true or false"),
    "unknown_token": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "label_type": (lambda v: v in LABEL_TYPES, f"one of {', '.join(LABEL_TYPES)}"),
    "vector_words": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "length_percentile": (lambda v: _is_number(v) and 1 <= v <= 100, "a number in [1, 100]"),
    "max_seq_len": (lambda v: v is None or (_is_int(v) and 1 <= v <= MAX_SEQ_LEN), f"an integer in [1, {MAX_SEQ_LEN}] or None"),
    "task": (lambda v: v in TASKS, f"one of {', '.join(TASKS)}"),
    "word_ngrams": (lambda v: _is_int(v) and 1 <= v <= 10, "an integer in [1, 10]"),
    "subwords": (
        lambda v: v is None or (isinstance(v, tuple) and len(v) == 2 and all(map(_is_int, v)) and 1 <= v[0] <= v[1] <= 20),
        "(MIN, MAX) with 1 <= MIN <= MAX <= 20, or None",
    ),
    "buckets": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 or None"),
    "token_weights": (lambda v: v in TOKEN_WEIGHTS, f"one of {', '.join(TOKEN_WEIGHTS)}"),
}
