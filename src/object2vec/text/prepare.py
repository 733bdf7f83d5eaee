"""``object2vec prepare``: raw text pairs to Object2Vec JSON Lines, a vocabulary and the hyperparameters to use.

Input is CSV, TSV or JSON Lines with a left text, a right text and (optionally) a label, chosen by
column name or 0-based index. The output folder is an auxiliary channel and a data folder at once::

    out/train.jsonl, validation.jsonl, test.jsonl   {"label": 1, "in0": [4, 12], "in1": [4, 7, 9]}
    out/vocab.json                                  SageMaker's word -> id (or enc0_vocab.json + enc1_vocab.json)
    out/tokenization.json                           how text was split (read again at inference)
    out/labels.json                                 class label -> id (classification only)
    out/vectors.txt.gz                              the --vectors rows of vocabulary words (GloVe text)
    out/hyperparameters.json                        the values to train with (SageMaker string form)

Text classification (an extension; ``docs/text_classification.md``): ``task="classify"`` reads one
text and a label (``{"label": 2, "in0": [...], "in1": [0]}``: in1 is one constant token, softmax over
the classes); ``task="label-pairs"`` writes StarSpace's document-label pairs (``{"label": 1, "in0":
[...], "in1": [2]}``, negatives drawn in training) and ``labels.jsonl``, the candidates that
``object2vec predict --labels`` scores. ``word_ngrams``, ``subwords``, ``buckets`` and
``token_weights`` add hashed features and per-token weights (``in0_weights``) to the text sides
(:mod:`object2vec.text.features`); IDF weights cost one more pass over the training split.

The vocabulary is built from the training split only (validation and test words it lacks count as
out-of-vocabulary, as they would for new data), or taken from an earlier run (``vocab_from``).
Sequences are written whole; training truncates them at ``encX_max_seq_len``, whose suggested value
is a percentile of the training lengths. Every output file is written under a temporary name and
renamed only when all splits were read without a problem.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson

from .. import console
from ..data.pairs import open_lines
from ..errors import Line, Problem, Problems
from ..files import atomic_path, atomic_write_bytes, atomic_write_json
from .auxiliary import VectorFile
from .features import DEFAULT_BUCKETS, DocumentFrequencies, Features
from .prepare_options import MAX_SEQ_LEN, PrepareError, PrepareOptions
from .tokenize import (
    SETTINGS_FILE,
    AuxiliaryFileError,
    DefaultTokenizer,
    Encoded,
    HuggingFaceTokenizer,
    TextCodec,
    TextError,
    Tokenizer,
    Vocabulary,
    encode_text,
    encode_texts,
    expand_token_texts,
    idf_file,
    read_features,
    read_settings,
    tokenizer_from_settings,
)

__all__ = ["PrepareError", "PrepareOptions", "PrepareReport", "Table", "prepare"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
MAX_CLASSES = 30  # SageMaker's num_classes limit
VECTORS_FILE = "vectors.txt.gz"
LABEL_ITEMS_FILE = "labels.jsonl"  # label-pairs: every label as an in1 item, for predict --labels


# --------------------------------------------------------------------------------------------------
# Reading rows


@dataclass(frozen=True)
class Table:
    """How to read one kind of input file, and which columns hold the left text, right text and label."""

    left: str | int
    right: str | int | None  # None: one text per record (the classify and label-pairs tasks)
    label: str | int | None = None
    format: str = "auto"  # auto (from the extension), csv, tsv or jsonl
    quoting: bool = True  # False: csv.QUOTE_NONE (quote characters are text, as in STS Benchmark)
    header: bool | None = None  # None: a header row exists iff a column is given by name

    def file_format(self, path: Path) -> str:
        if self.format != "auto":
            return self.format
        suffixes = [s for s in path.suffixes if s != ".gz"]
        kind = FORMATS.get(suffixes[-1].lower()) if suffixes else None
        if kind is None:
            raise PrepareError(f"{path}: cannot tell the format from the name; pass --format csv, tsv or jsonl")
        return kind

    def rows(self, path: Path, problems: Problems, doing: str = "reading") -> Iterator[tuple[Line, str, str, Any]]:
        """``(where, left, right, label)`` per record; ``label`` is None without a label column.

        At a terminal a bar follows the file's bytes, described as ``doing`` the file."""
        kind = self.file_format(path)
        try:
            fh = open_lines(path)
        except OSError as e:
            raise PrepareError(f"{path}: cannot be read ({e.strerror})") from None
        with fh, console.FileProgress(fh, f"{doing} {path.name}") as bar:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
            try:
                if kind == "jsonl":
                    rows = self._json_rows(path, text, problems)
                else:
                    rows = self._csv_rows(path, text, "\t" if kind == "tsv" else ",", problems)
                for n, row in enumerate(rows):
                    if not n & 1023:
                        bar.update()
                    yield row
            except UnicodeDecodeError as e:
                problems.add(Problem(Line(str(path)), None, f"is not UTF-8 text ({e})", "UTF-8"))
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                problems.add(Problem(Line(str(path)), None, f"cannot be read ({e})", "a complete file"))

    def _csv_rows(
        self, path: Path, text: io.TextIOWrapper, delimiter: str, problems: Problems
    ) -> Iterator[tuple[Line, str, str, Any]]:
        csv.field_size_limit(2**31 - 1)  # a long document is a valid field
        reader = csv.reader(text, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE)
        named = [c for c in (self.left, self.right, self.label) if isinstance(c, str)]
        header = bool(named) if self.header is None else self.header
        index: dict[str | int | None, int] = {c: c for c in (self.left, self.right, self.label) if isinstance(c, int)}
        try:
            if header:
                names = next(reader, None)
                if names is None:
                    problems.add(Problem(Line(str(path)), None, "is empty", "a header row"))
                    return
                missing = [c for c in named if c not in names]
                if missing:
                    raise PrepareError(f"{path}:1: no column {', '.join(map(repr, missing))}; the header has {', '.join(names)}")
                index.update({c: names.index(c) for c in named})
            elif named:
                raise PrepareError(
                    f"columns {', '.join(map(repr, named))} are names, but --no-header was given; use 0-based indices"
                )
            need = max(index.values()) + 1
            for row in reader:
                where = Line(str(path), reader.line_num)
                if not row or row == [""]:
                    continue
                if len(row) < need:
                    problems.add(
                        Problem(where, None, f"has {len(row)} fields", f"at least {need}", "check --delimiter and --no-quoting")
                    )
                    continue
                label = row[index[self.label]].strip() if self.label is not None else None
                if label == "":
                    problems.add(Problem(where, None, f"the label column {self.label!r} is empty", "a label"))
                    continue
                yield where, row[index[self.left]], row[index[self.right]] if self.right is not None else "", label
        except csv.Error as e:
            problems.add(Problem(Line(str(path), reader.line_num), None, str(e)))

    def _json_rows(self, path: Path, text: io.TextIOWrapper, problems: Problems) -> Iterator[tuple[Line, str, str, Any]]:
        columns = [c for c in (self.left, self.right, self.label) if c is not None]
        if any(isinstance(c, int) for c in columns):
            raise PrepareError(f"{path}: JSON Lines columns are keys; got an index among {columns}")
        for lineno, line in enumerate(text, 1):
            if not line.strip():
                continue
            where = Line(str(path), lineno)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                problems.add(Problem(where, None, f"malformed JSON ({e})", "one JSON object per line"))
                continue
            if not isinstance(rec, dict):
                problems.add(Problem(where, None, "is not a JSON object", "one object per line"))
                continue
            texts: list[Any] = []  # strings once the check below passes
            for key in (self.left, self.right) if self.right is not None else (self.left,):
                value = rec.get(key)
                if not isinstance(value, str):
                    problems.add(Problem(where, str(key), f"got {json.dumps(value)}", "a string"))
                texts.append(value)
            label = rec.get(self.label) if self.label is not None else None
            if self.label is not None and (label is None or isinstance(label, (bool, dict, list))):
                problems.add(Problem(where, str(self.label), f"got {json.dumps(label)}", "a number or a string"))
                continue
            if all(isinstance(t, str) for t in texts):
                yield where, texts[0], texts[1] if len(texts) > 1 else "", label


def parse_column(value: str | int | None) -> str | int | None:
    """A column given on the command line: digits are a 0-based index, anything else a name."""
    if value is None or isinstance(value, int):
        return value
    return int(value) if value.strip().isdigit() else value


# --------------------------------------------------------------------------------------------------
# Labels


@dataclass(frozen=True)
class Labels:
    """``number`` (regression) or ``class`` with a label -> id map."""

    kind: str
    classes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def infer(cls, values: list[Any], kind: str = "auto", limit: int | None = MAX_CLASSES) -> Labels:
        """``auto``: numbers if every label is a number and one is not a whole number, else classes.

        Classes that are all integers in [0, 30) keep their value as id (so 0/1 data stays 0/1, and
        all-positive data keeps label 1 for negative sampling); otherwise ids follow the sorted labels.
        """
        keys = [_label_key(v) for v in values]
        numbers = [_as_number(k) for k in keys]
        if kind == "auto":
            numeric = all(n is not None for n in numbers)
            kind = "number" if numeric and any(not n.is_integer() for n in numbers if n is not None) else "class"
        if kind == "number":
            return cls("number")
        distinct = sorted(set(keys), key=lambda k: (_as_number(k) is None, _as_number(k) or 0, k))
        if all(k.isdigit() and int(k) < MAX_CLASSES for k in distinct):
            return cls("class", {k: int(k) for k in distinct})
        if limit is not None and len(distinct) > limit:
            raise PrepareError(
                f"the training labels have {len(distinct)} classes; Object2Vec takes at most {MAX_CLASSES} "
                "(use --label-type number for a numeric target)"
            )
        return cls("class", {k: i for i, k in enumerate(distinct)})

    @property
    def num_classes(self) -> int:
        return max(2, max(self.classes.values(), default=0) + 1)

    def encode(self, value: Any, where: Line, problems: Problems) -> float | int | None:
        key = _label_key(value)
        if self.kind == "number":
            number = _as_number(key)
            if number is None or not math.isfinite(number):
                problems.add(Problem(where, None, f"label {key!r} is not a finite number", "a number (regression)"))
            return number
        if key not in self.classes:
            problems.add(
                Problem(where, None, f"label {key!r} is not a training class", f"one of {', '.join(list(self.classes)[:10])}")
            )
            return None
        return self.classes[key]


def _label_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Statistics


@dataclass
class SideStats:
    """Token counts of one side of one split."""

    tokens: int = 0
    oov: int = 0
    empty: int = 0  # texts with no token at all (written as [unknown id])
    all_oov: int = 0  # texts whose every token is out of vocabulary
    lengths: list[int] = field(default_factory=list)

    def truncated(self, max_seq_len: int) -> int:
        return int((np.asarray(self.lengths) > max_seq_len).sum())

    @property
    def oov_rate(self) -> float:
        return self.oov / max(self.tokens, 1)


@dataclass
class SplitStats:
    name: str
    path: Path
    pairs: int = 0
    sides: tuple[SideStats, SideStats] = field(default_factory=lambda: (SideStats(), SideStats()))


@dataclass
class PrepareReport:
    """What ``prepare`` read, built and wrote; :meth:`lines` is what the CLI prints."""

    out: Path
    splits: list[SplitStats]
    vocab_files: tuple[str, str]
    vocabs: tuple[Vocabulary, Vocabulary | None]
    labels: Labels | None
    hyperparameters: dict[str, str]
    max_seq_len: tuple[int, int]
    percentile: float | None
    vectors: tuple[str, int, int] | None = None  # (source, rows written, dimensions)
    written: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{'split':<11}{'pairs':>9}  side {'tokens':>11} {'OOV':>7} {'empty':>6} {'all-OOV':>8}  longer than max_seq_len"]
        for s in self.splits:
            for k, side in enumerate(s.sides):
                cut = side.truncated(self.max_seq_len[k])
                share = f"{cut:,} ({100 * cut / max(s.pairs, 1):.1f}%)"
                first = f"{s.name:<11}{s.pairs:>9,}" if k == 0 else " " * 20
                out.append(
                    f"{first}  in{k} {side.tokens:>11,} {100 * side.oov_rate:>6.2f}% {side.empty:>6,} {side.all_oov:>8,}  {share}"
                )
        shared = self.vocab_files[0] == self.vocab_files[1]
        for k in (0,) if shared else (0, 1):
            v = self.vocabs[k]
            if v is None:  # in1 is a constant or a label token (classify, label-pairs)
                continue
            whose = "in0 and in1" if shared else f"in{k}"
            out.append(
                f"vocabulary {self.vocab_files[k]}: {len(v):,} words for {whose}; unknown token {v.unknown_token!r} = id {v.unknown_id}"
            )
        if self.labels is not None:
            kinds = (
                "regression (numeric labels)"
                if self.labels.kind == "number"
                else f"{len(self.labels.classes)} classes {self.labels.classes}"
            )
            out.append(f"labels: {kinds}")
        if self.vectors is not None:
            out.append(
                f"vectors: {self.vectors[1]:,} vocabulary rows of {self.vectors[0]} ({self.vectors[2]} dimensions) -> {VECTORS_FILE}"
            )
        if self.percentile is not None:
            out.append(
                f"max_seq_len: the {self.percentile:g}th percentile of training lengths; longer sequences are truncated in training"
            )
        out.append(f"wrote {', '.join(self.written)} to {self.out}")
        out.append("hyperparameters (also in hyperparameters.json):")
        out += [f"  {k}={v}" for k, v in self.hyperparameters.items()]
        return out


# --------------------------------------------------------------------------------------------------
# The pipeline


def prepare(out: str | os.PathLike, table: Table, options: PrepareOptions | None = None, **changes: Any) -> PrepareReport:
    """Tokenize raw pairs, build (or reuse) the vocabulary, and write the output folder (module docstring).

    Args:
        out: the output folder (created).
        table: input format and columns.
        options: inputs, vocabulary, labels, vectors and lengths (:class:`PrepareOptions`; its
            defaults when left out); ``train`` is needed unless ``vocab_from`` is given.
        **changes: fields of ``options`` to change, for short calls:
            ``prepare(out, table, train="train.csv", shared_vocab=True)``.

    Returns:
        What was read, built and written (:meth:`PrepareReport.lines` is what the command prints).

    Raises:
        PrepareError: options that do not fit together or do not fit the input.
        DataError: every problem of every split, each with its ``file:line``; nothing is written.
    """
    opts = (options or PrepareOptions()).changed(**changes)
    out = Path(out)
    inputs = opts.inputs()
    features = _features(opts, table)
    for name, path in inputs.items():
        if not path.is_file():
            raise PrepareError(f"--{name} {path}: no such file")

    idf: tuple[Any, Any] = (None, None)
    train_ids: tuple[_EncodedSide | None, _EncodedSide | None] = (None, None)
    vocabs: tuple[Vocabulary, Vocabulary | None]
    if opts.vocab_from is not None:
        tokenizer, vocabs, vocab_files, labels, old_hp, features, idf = _load_previous(opts.vocab_from, opts.task)
        if table.label is not None and labels is None:
            raise PrepareError(f"{opts.vocab_from}: was prepared without labels, but --label was given")
    else:
        tokenizer = _make_tokenizer(opts.tokenizer_file, opts.lowercase)
        if opts.task != "pairs":
            vocab_files = ("vocab.json", "")  # in1 is a constant or a label token: no text, no vocabulary
        else:
            vocab_files = ("vocab.json", "vocab.json") if opts.shared_vocab else ("enc0_vocab.json", "enc1_vocab.json")
        old_hp = {}

    problems = Problems()
    vector_file = VectorFile(opts.vectors) if opts.vectors is not None else None
    if opts.vocab_from is None:
        idf_sides = [f is not None and f.weights == "idf" for f in features]
        kept_tokens = (_KeptTokens() if idf_sides[0] else None, _KeptTokens() if idf_sides[1] else None)
        vocabs, labels = _build_vocabularies(
            inputs["train"], table, tokenizer, vector_file, opts, features, problems, kept_tokens
        )
        if any(idf_sides):
            idf, train_ids = _idf_tables(table, inputs["train"], tokenizer, vocabs, features, problems, kept_tokens)
    codec = TextCodec(tokenizer, vocabs, vocab_files, features, idf)

    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as written_if_all_valid:  # every split is renamed into place, or none
        stats = []
        for name, path in inputs.items():
            problems.expect(path)
            tmp = written_if_all_valid.enter_context(atomic_path(out / f"{name}.jsonl"))
            reuse = train_ids if name == "train" else (None, None)
            stats.append(_write_split(name, path, tmp, table, codec, labels, opts.task, problems, reuse))
        problems.raise_if_any()
    written = [f"{name}.jsonl" for name in inputs]

    lengths, percentile = _suggested_lengths(stats, opts, old_hp)
    report_vectors = None
    if opts.vocab_from is None:
        written += _write_text_files(out, codec, labels, opts.task)
        if vector_file is not None:
            found = _write_vectors(vector_file, vocabs, out / VECTORS_FILE)
            written.append(VECTORS_FILE)
            report_vectors = (str(opts.vectors), found, vector_file.dim)
        hp = _hyperparameters(vocabs, vocab_files, lengths, labels, vector_file, opts.task, features)
        atomic_write_json(out / "hyperparameters.json", hp)
        written.append("hyperparameters.json")
    else:
        hp = dict(old_hp)
    return PrepareReport(out, stats, vocab_files, vocabs, labels, hp, lengths, percentile, report_vectors, written)


def _build_vocabularies(
    train: Path,
    table: Table,
    tokenizer: Tokenizer,
    vector_file: VectorFile | None,
    opts: PrepareOptions,
    features: tuple[Features | None, Features | None],
    problems: Problems,
    kept_tokens: tuple[_KeptTokens | None, _KeptTokens | None] = (None, None),
) -> tuple[tuple[Vocabulary, Vocabulary | None], Labels | None]:
    """The vocabularies (one per side, or one shared; none for in1 with one text a record) and the
    labels of the training split; each text's tokens go to ``kept_tokens`` where a side has one."""
    counts: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    label_values: list[Any] = []
    problems.expect(train)
    pairs = opts.task == "pairs"
    for where, left, right, label in table.rows(train, problems, "counting words in"):
        for k, text in enumerate((left, right) if pairs else (left,)):
            tokens = _split(text, tokenizer, features[k], where, k, problems)
            counts[k].update(tokens)
            if (kept := kept_tokens[k]) is not None:
                kept.add(tokens)
        if label is not None:
            label_values.append(label)
    problems.raise_if_any()
    if not label_values and table.label is not None:
        raise PrepareError(f"--train {train}: has no records")
    if opts.shared_vocab:
        counts = (counts[0] + counts[1],) * 2
    first_words: list[str] = []
    if vector_file is not None and opts.vector_words:
        first_words = [w for w, _ in vector_file.scan(lambda _w, k: k < opts.vector_words)]
    built = [
        Vocabulary.build(c, min_count=opts.min_count, max_size=opts.max_size, unknown_token=opts.unknown_token, extra=first_words)
        for c in (counts[0],) + (() if opts.shared_vocab or not pairs else (counts[1],))
    ]
    labels = None
    if table.label is not None:  # label-pairs: labels are in1 tokens, not softmax classes (no limit of 30)
        labels = Labels.infer(
            label_values, opts.label_type if pairs else "class", None if opts.task == "label-pairs" else MAX_CLASSES
        )
    return (built[0], built[-1] if pairs else None), labels


def _features(opts: PrepareOptions, table: Table) -> tuple[Features | None, Features | None]:
    """Each side's features: the text sides get them (both for pairs, in0 otherwise); ``None``: none asked."""
    task = opts.task
    if task == "pairs" and table.right is None:
        raise PrepareError("--task pairs reads two texts: give --right (or --task classify / label-pairs for one text)")
    if task != "pairs":
        if table.right is not None:
            raise PrepareError(f"--task {task} reads one text (--left) and its label; --right is not used: leave it out")
        if table.label is None:
            raise PrepareError(f"--task {task} needs the label column: give --label")
    hashed = opts.word_ngrams > 1 or opts.subwords is not None
    if opts.buckets is not None and not hashed:
        raise PrepareError("--buckets holds hashed word n-grams and subwords; give --word-ngrams 2 or more, or --subwords")
    buckets = (DEFAULT_BUCKETS if opts.buckets is None else opts.buckets) if hashed else 0
    features = Features(opts.word_ngrams, opts.subwords, buckets, opts.token_weights)
    if not features.active:
        return None, None
    if opts.vocab_from is not None:
        raise PrepareError(
            "--vocab-from applies the earlier folder's features; leave out --word-ngrams, --subwords, --buckets and --token-weights"
        )
    return features, features if task == "pairs" else None


def _split(text: str, tokenizer: Tokenizer, features: Features | None, where: Line, side: int, problems: Problems) -> list[str]:
    """The tokens a text contributes to its vocabulary (inline weights stripped)."""
    if features is None:
        return tokenizer(text)
    try:
        return features.split(text, tokenizer)[0]
    except ValueError as e:
        problems.add(Problem(where, f"in{side}", str(e)))
        return []


class _Bounded:
    """What a pass keeps for a later one, up to ``limit`` ids or tokens (memory): ``complete`` while
    everything was kept; past the limit the later pass does its own work again."""

    def __init__(self, limit: int):
        self.kept = 0
        self.limit = limit

    @property
    def complete(self) -> bool:
        return self.kept <= self.limit


class _KeptTokens(_Bounded):
    """One side's training texts as the vocabulary pass tokenized them, for the IDF pass (which then
    neither reads nor tokenizes the file again). A token string is stored once and referenced by
    every text that has it."""

    def __init__(self, limit: int = 16_000_000):
        super().__init__(limit)
        self.texts: list[list[str]] = []
        self.strings: dict[str, str] = {}

    def add(self, tokens: list[str]) -> None:
        if self.complete:
            self.kept += len(tokens)
            if self.complete:
                same = self.strings.setdefault
                self.texts.append([same(t, t) for t in tokens])
            else:
                self.texts, self.strings = [], {}


class _EncodedSide(_Bounded):
    """One side of the training texts as the IDF pass encoded them (ids packed with offsets, and each
    text's token and OOV counts), so that writing ``train.jsonl`` does not tokenize and hash them
    again: an IDF weight depends only on the id."""

    def __init__(self, limit: int = 64_000_000):
        super().__init__(limit)
        self.ids: list[np.ndarray] = []
        self.counts: list[tuple[int, int]] = []  # (tokens, oov) per text

    def add(self, encoded: Encoded) -> None:
        if self.complete:
            ids = np.asarray(encoded.ids, dtype=np.int64)
            self.kept += len(ids)
            self.ids.append(ids)
            self.counts.append((encoded.tokens, encoded.oov))

    def add_packed(self, ids: np.ndarray, ends: np.ndarray, counts: list[tuple[int, int]]) -> None:
        """:meth:`add` for many texts: their ids packed with each text's end (``Features.expand_many``)."""
        if self.complete:
            self.kept += len(ids)
            self.ids += np.split(ids, ends[:-1]) if len(ends) else []
            self.counts += counts

    def encoded(self, row: int, idf: np.ndarray) -> Encoded:
        ids = self.ids[row]
        tokens, oov = self.counts[row]
        weights = idf[ids] if tokens else [1.0] * len(ids)  # an empty text's [unknown id] weighs 1, as encode_text
        return Encoded(ids.tolist(), weights, tokens, oov)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    rest = iter(items)
    while batch := list(itertools.islice(rest, size)):
        yield batch


def _idf_tables(
    table: Table,
    path: Path,
    tokenizer: Tokenizer,
    vocabs: tuple[Vocabulary, Vocabulary | None],
    features: tuple[Features | None, Features | None],
    problems: Problems,
    kept_tokens: tuple[_KeptTokens | None, _KeptTokens | None] = (None, None),
) -> tuple[tuple[Any, Any], tuple[_EncodedSide | None, _EncodedSide | None]]:
    """Each IDF-weighted side's IDF table over the training texts (one more pass over them, or over
    the tokens the vocabulary pass kept), and those texts' ids for the write (:class:`_EncodedSide`;
    ``None`` where it did not keep them all)."""
    counters: list[tuple[DocumentFrequencies, Features, Vocabulary] | None] = []
    kept = [
        None if f is None or f.weights != "idf" or v is None else _EncodedSide() for f, v in zip(features, vocabs, strict=True)
    ]
    for f, vocab in zip(features, vocabs, strict=True):
        if f is None or f.weights != "idf" or vocab is None:
            counters.append(None)
        else:  # the ids as the features make them, without weights
            counters.append(
                (DocumentFrequencies(vocab.size + f.extra_ids), Features(f.word_ngrams, f.subwords, f.buckets), vocab)
            )
    sides = [(k, c, kept_tokens[k]) for k, c in enumerate(counters) if c is not None]
    # the kept tokens serve when the vocabulary pass kept them all and encoding cannot fail (hashed
    # features need an unknown token; without one the file's pass names the problem on each line)
    if all(t is not None and t.complete and (c[2].unknown_id is not None or not c[1].hashed) for _, c, t in sides):
        for k, (frequencies, plain, vocab), texts in sides:
            for chunk in _batches(texts.texts, 4096):  # type: ignore[union-attr]
                ids, ends, counts = expand_token_texts(chunk, vocab, plain)
                frequencies.add_packed(ids, ends)
                kept[k].add_packed(ids, ends, counts)  # type: ignore[union-attr]  # set wherever counters[k] is
    else:
        for where, left, right, _label in table.rows(path, problems, "counting documents in"):
            for k, text in enumerate((left, right)):
                counter = counters[k]
                if counter is None:
                    continue
                frequencies, plain, vocab = counter
                try:
                    encoded = encode_text(text, tokenizer, vocab, plain)
                except TextError as e:
                    problems.add(Problem(where, f"in{k}", str(e)))
                    continue
                frequencies.add(encoded.ids)
                kept[k].add(encoded)  # type: ignore[union-attr]  # set wherever counters[k] is
        problems.raise_if_any()
    tables = [None if c is None else c[0].idf() for c in counters]
    reuse = [k if k is not None and k.complete else None for k in kept]
    return (tables[0], tables[1]), (reuse[0], reuse[1])


def _suggested_lengths(
    stats: list[SplitStats], opts: PrepareOptions, old_hp: dict[str, str]
) -> tuple[tuple[int, int], float | None]:
    """The ``encX_max_seq_len`` to suggest, and the percentile it came from (``None``: not from one)."""
    train_stats = next((s for s in stats if s.name == "train"), None)
    if opts.max_seq_len is not None:
        return (opts.max_seq_len, opts.max_seq_len if opts.task == "pairs" else 1), None
    if train_stats is not None and opts.vocab_from is None:
        first, second = (_percentile_length(s.lengths, opts.length_percentile) for s in train_stats.sides)
        if opts.shared_vocab:
            first = second = max(first, second)
        return (first, second), opts.length_percentile
    enc0 = int(old_hp.get("enc0_max_seq_len", 1))
    return (enc0, int(old_hp.get("enc1_max_seq_len", enc0))), None


def _write_text_files(out: Path, codec: TextCodec, labels: Labels | None, task: str) -> list[str]:
    """The vocabularies, ``tokenization.json`` (with the features), the IDF tables, the tokenizer file,
    ``labels.json`` and, for label pairs, ``labels.jsonl``; returns their names."""
    written = []
    for name in dict.fromkeys(f for f in codec.vocab_files if f):
        vocab = codec.vocabs[codec.vocab_files.index(name)]
        if vocab is not None:
            atomic_write_bytes(out / name, vocab.to_json())
            written.append(name)
    assets = codec.assets()
    atomic_write_bytes(out / SETTINGS_FILE, assets[SETTINGS_FILE])
    written.append(SETTINGS_FILE)
    for side, table in enumerate(codec.idf):
        if table is not None:
            atomic_write_bytes(out / idf_file(side), assets[idf_file(side)])
            written.append(idf_file(side))
    if isinstance(codec.tokenizer, HuggingFaceTokenizer):
        atomic_write_bytes(out / codec.tokenizer.name, codec.tokenizer.raw)
        written.append(codec.tokenizer.name)
    if labels is not None and labels.kind == "class":
        atomic_write_bytes(out / "labels.json", (json.dumps(labels.classes, indent=2, ensure_ascii=False) + "\n").encode())
        written.append("labels.json")
        if task == "label-pairs":
            items = b"".join(orjson.dumps({"id": name, "in1": [i]}) + b"\n" for name, i in labels.classes.items())
            atomic_write_bytes(out / LABEL_ITEMS_FILE, items)
            written.append(LABEL_ITEMS_FILE)
    return written


def _make_tokenizer(tokenizer_file: Path | None, lowercase: bool | None) -> Tokenizer:
    if tokenizer_file is None:
        return DefaultTokenizer(lowercase=True if lowercase is None else lowercase)
    return HuggingFaceTokenizer(tokenizer_file, lowercase=bool(lowercase), name="tokenizer.json")


def _load_previous(folder: Path, task: str) -> tuple[Any, ...]:
    """Tokenizer, vocabularies, vocabulary files, labels, hyperparameters, features and IDF tables of an
    earlier ``prepare`` output folder."""
    hp_path = folder / "hyperparameters.json"
    try:
        hp = json.loads(hp_path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(
            f"{hp_path}: cannot be read ({e}); --vocab-from expects a folder written by object2vec prepare"
        ) from None
    one_text = task != "pairs"
    files = (hp.get("enc0_vocab_file", ""), "" if one_text else hp.get("enc1_vocab_file") or hp.get("enc0_vocab_file", ""))
    if not files[0] or not (one_text or files[1]):
        raise PrepareError(f"{hp_path}: names no enc0_vocab_file; --vocab-from expects a folder written by object2vec prepare")
    settings = read_settings(folder)
    where = str(folder / SETTINGS_FILE)
    tokenizer = tokenizer_from_settings(settings["tokenizer"], folder, where)
    vocab0 = Vocabulary.load(folder / files[0], settings["unknown_token"])
    vocabs = (vocab0, None if one_text else Vocabulary.load(folder / files[1], settings["unknown_token"]))
    features, idf = read_features(settings.get("features"), folder, where, vocabs)
    labels = None
    if hp.get("output_layer") == "mean_squared_error":
        labels = Labels("number")
    elif (folder / "labels.json").is_file():
        try:
            labels = Labels("class", json.loads((folder / "labels.json").read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AuxiliaryFileError(f"{folder / 'labels.json'}: is not valid JSON ({e})") from None
    return tokenizer, vocabs, files, labels, hp, features, idf


def _write_split(
    name: str,
    path: Path,
    tmp: Path,
    table: Table,
    codec: TextCodec,
    labels: Labels | None,
    task: str,
    problems: Problems,
    reuse: tuple[_EncodedSide | None, _EncodedSide | None] = (None, None),
) -> SplitStats:
    """Encode one split into ``tmp`` (only while no problem was found: the files are dropped then);
    a side in ``reuse`` takes its ids from the IDF pass instead of encoding the text again."""
    stats = SplitStats(name, path)
    sides = (0, 1) if task == "pairs" else (0,)
    rows = enumerate(table.rows(path, problems, f"writing {name}.jsonl from"))
    with open(tmp, "wb") as fh:
        for chunk in _batches(rows, 1024):
            encodings = [_encode_side(chunk, k, codec, reuse[k]) for k in sides]  # a kernel call per side and chunk
            for (_, (where, _left, _right, label)), encoded_sides in zip(chunk, zip(*encodings, strict=True), strict=True):
                _write_record(fh, where, label, encoded_sides, stats, labels, task, problems)
    return stats


def _encode_side(
    chunk: list[tuple[int, tuple[Line, str, str, Any]]], k: int, codec: TextCodec, kept: _EncodedSide | None
) -> list[Encoded | TextError]:
    """Side ``k`` of a chunk of rows, from what the IDF pass kept or encoded now (all in one go)."""
    if kept is not None:
        return [kept.encoded(row, codec.idf[k]) for row, _ in chunk]
    vocab = codec.vocabs[k]
    assert vocab is not None  # a text side always has one
    texts = [cast(str, fields[1 + k]) for _, fields in chunk]  # fields: (where, left, right, label)
    return encode_texts(texts, codec.tokenizer, vocab, codec.features[k], codec.idf[k])


def _write_record(
    fh: Any,
    where: Line,
    label: Any,
    encoded_sides: tuple[Encoded | TextError, ...],
    stats: SplitStats,
    labels: Labels | None,
    task: str,
    problems: Problems,
) -> None:
    """One line of a split (written only while no problem was found), and its counts in ``stats``."""
    dump = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE  # float32 weights in their shortest form
    record: dict[str, Any] = {}
    if labels is not None:
        record["label"] = labels.encode(label, where, problems)
    for k, encoded in enumerate(encoded_sides):
        side = stats.sides[k]
        if isinstance(encoded, TextError):
            problems.add(Problem(where, f"in{k}", str(encoded)))
            continue
        if not encoded.ids:
            problems.add(Problem(where, f"in{k}", "no token is in the vocabulary and it has no unknown token", "a known word"))
        side.tokens += encoded.tokens
        side.oov += encoded.oov
        side.empty += not encoded.tokens
        side.all_oov += bool(encoded.tokens) and encoded.oov == encoded.tokens
        side.lengths.append(len(encoded.ids))
        record[f"in{k}"] = encoded.ids
        if encoded.weights is not None:
            record[f"in{k}_weights"] = np.asarray(encoded.weights, dtype=np.float32)
    if task != "pairs":  # in1: one constant token (classify), or the label's token (label-pairs)
        record["in1"] = [0] if task == "classify" else [record.get("label")]
        if task == "label-pairs":
            record["label"] = 1
        stats.sides[1].tokens += 1
        stats.sides[1].lengths.append(1)
    stats.pairs += 1
    if not problems.count:
        fh.write(orjson.dumps(record, option=dump))


def _percentile_length(lengths: list[int], percentile: float) -> int:
    if not lengths:
        return 1
    return int(min(max(math.ceil(np.percentile(lengths, percentile)), 1), MAX_SEQ_LEN))


def _write_vectors(vector_file: VectorFile, vocabs: tuple[Vocabulary, Vocabulary | None], target: Path) -> int:
    """The rows of every vocabulary word found in ``vector_file``, as GloVe text (gzip); returns the count."""
    words = set().union(*(v.ids for v in vocabs if v is not None))
    found = 0
    with atomic_path(target) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for word, vector in vector_file.scan(lambda w, _k: w in words):
            words.discard(word)  # keep the first vector of a repeated word, as training does
            fh.write(word + " " + " ".join(f"{x:.6g}" for x in vector.tolist()) + "\n")
            found += 1
    return found


def _hyperparameters(
    vocabs: tuple[Vocabulary, Vocabulary | None],
    files: tuple[str, str],
    lengths: tuple[int, int],
    labels: Labels | None,
    vector_file: VectorFile | None,
    task: str = "pairs",
    features: tuple[Features | None, Features | None] = (None, None),
) -> dict[str, str]:
    """The values that make the written data trainable, in SageMaker's string form."""
    sizes = [None if v is None else v.size + (f.extra_ids if f is not None else 0) for v, f in zip(vocabs, features, strict=True)]
    hp = {"enc0_vocab_size": str(sizes[0]), "enc0_max_seq_len": str(lengths[0]), "enc0_vocab_file": files[0]}
    if vector_file is not None:
        hp["enc0_pretrained_embedding_file"] = VECTORS_FILE
        hp["enc0_token_embedding_dim"] = str(vector_file.dim)  # pooled_embedding needs enc_dim equal to it instead
    if task != "pairs":  # in1 is one token: the constant 0 (classify) or the label (label-pairs)
        in1_size = 2 if task == "classify" else max(2, labels.num_classes if labels is not None else 2)
        hp.update({"enc0_network": "pooled_embedding", "enc1_network": "pooled_embedding"})
        hp.update({"enc1_vocab_size": str(in1_size), "enc1_max_seq_len": "1"})
    elif files[0] != files[1] or lengths[0] != lengths[1]:
        # enc1_network=enc0 would copy enc0's vocabulary and lengths, so enc1 is set explicitly
        network = "pooled_embedding" if any(features) else "hcnn"  # hashed features and weights are bags of tokens
        hp.update({"enc0_network": network, "enc1_network": network})
        hp.update({"enc1_vocab_size": str(sizes[1]), "enc1_max_seq_len": str(lengths[1]), "enc1_vocab_file": files[1]})
        if vector_file is not None:
            hp["enc1_pretrained_embedding_file"] = VECTORS_FILE
            hp["enc1_token_embedding_dim"] = str(vector_file.dim)
    elif any(features):
        hp["enc0_network"] = "pooled_embedding"
    for side, f in enumerate(features):
        if f is not None and f.weights != "none":
            hp[f"enc{side}_pooling"] = "weighted_mean"  # an extension: the data carries in0_weights
    if labels is not None:
        if labels.kind == "number":
            hp["output_layer"] = "mean_squared_error"
        elif task == "label-pairs":  # StarSpace: each document-label pair is a positive, negatives are drawn
            hp.update({"output_layer": "softmax", "num_classes": "2"})
            hp["negative_sampling_rate"] = str(min(5, max(1, len(labels.classes) - 1)))
            hp["negative_sampling_distinct"] = "True"  # extensions: a label is never its own negative, and a
            hp["negative_sampling_grouped"] = "True"  # document is encoded once for its label and its negatives
        else:
            hp["output_layer"] = "softmax"
            hp["num_classes"] = str(labels.num_classes)
    return hp
