"""Text to token ids: tokenizers, vocabularies, and the settings that make inference tokenize as training did.

SageMaker Object2Vec takes token ids only and leaves tokenization to the user; a vocabulary file
(``encX_vocab_file``, JSON ``{"word": id}``) only maps pretrained vectors to rows. Here the same file
also lets a trained model read raw strings, so a model must remember *how* its text was split. That
recipe lives in ``tokenization.json`` beside the vocabularies (written by ``object2vec prepare``,
copied into the model folder by ``save``)::

    {"format": "object2vec-tokenization", "format_version": 1,
     "tokenizer": {"type": "default", "version": 1, "lowercase": true},
     "unknown_token": "<unk>"}

Encoding one text (the only rule, shared by ``prepare``, ``predict`` and ``embed``):

1. split it with the tokenizer;
2. map each token through the side's vocabulary; a token not in it becomes the unknown token's id,
   or is dropped when the vocabulary has no unknown token (a SageMaker-style vocabulary);
3. a text with no token left (empty, or all dropped) becomes ``[unknown id]``, because Object2Vec
   sequences cannot be empty; without an unknown token that is an error.

Sequences are not truncated here: training and inference cut them at ``encX_max_seq_len``, as
SageMaker does.

A side may also have *features* (an extension, :mod:`object2vec.text.features`): hashed word n-grams
and subwords added after step 2, and per-token weights; ``tokenization.json`` then has format version
2 and a ``"features"`` object per side, so an older object2vec refuses it instead of reading the text
differently.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import DataError, Line, Location, Object2VecError, Problem, Problems, relocate
from .features import Features, load_idf

UNKNOWN_TOKEN = "<unk>"
SETTINGS_FILE = "tokenization.json"
SETTINGS_FORMAT = "object2vec-tokenization"
SETTINGS_VERSION = 2  # 2: optional "features" (hashed n-grams, subwords, token weights; object2vec.text.features)
DEFAULT_TOKENIZER_VERSION = 1  # bump when the default split changes, so old models keep their own


class AuxiliaryFileError(Object2VecError, ValueError):
    """A vocabulary, tokenizer, settings or pretrained-vector file is missing, unreadable or inconsistent."""


class TextError(Object2VecError, ValueError):
    """A text cannot be turned into token ids (for example no known token and no unknown token)."""


# --------------------------------------------------------------------------------------------------
# Tokenizers


class Tokenizer(Protocol):
    def __call__(self, text: str) -> list[str]: ...

    def settings(self) -> dict[str, Any]: ...


# CJK ideographs become one token each (as in BERT's basic tokenizer): those scripts put no spaces
# between words, so a run of ideographs is a phrase, and single characters are what a vocabulary
# built from a modest corpus can cover.
_IDEOGRAPHS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FFFF))


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _ranges(codepoints: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in codepoints:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


@functools.cache
def _default_patterns() -> tuple[re.Pattern[str], re.Pattern[str], dict[int, None]]:
    """The split pattern, the same pattern for text without characters past U+FFFF, and the table
    of invisible characters to delete, built once (~20 ms).

    A punctuation (P*) or symbol (S*) character or an ideograph is a token by itself; any other run
    of non-space characters is a word. Letters, digits and combining marks of every script are
    therefore kept together ("naïve", "हिन्दी"), which ``\\w`` alone would not do for marks. Format and
    control characters (zero-width space, soft hyphen, ...) are deleted; whitespace separates.

    Why two patterns: a character class with members past U+FFFF is matched by ``re`` as a list of
    ranges, scanned one by one (a few hundred here); a class within U+0000-U+FFFF becomes a lookup
    table. On text without such characters the two split alike (the members past U+FFFF can never
    match), and the second is 4.5x faster (AG News: 0.65 -> 0.14 s); ``tests/test_text.py`` compares
    them on random text.
    """
    singles: list[int] = []
    invisible: dict[int, None] = {}  # str.translate table: delete
    for cp in range(0x20000):  # planes 0-1; planes 2-3 are ideographs, handled by _IDEOGRAPHS
        ch = chr(cp)
        category = unicodedata.category(ch)
        if category[0] in "PS":
            singles.append(cp)
        elif category in ("Cc", "Cf") and not ch.isspace():
            invisible[cp] = None
    split = _char_class(_ranges(singles)) + _char_class(list(_IDEOGRAPHS))
    basic = _char_class(_ranges(cp for cp in singles if cp <= 0xFFFF)) + _char_class([r for r in _IDEOGRAPHS if r[1] <= 0xFFFF])
    return re.compile(f"[{split}]|[^\\s{split}]+"), re.compile(f"[{basic}]|[^\\s{basic}]+"), invisible


@dataclass(frozen=True)
class DefaultTokenizer:
    """Unicode NFKC, optional lowercasing, then words and single punctuation marks.

    >>> DefaultTokenizer()("Don't stop — it's 3.5 km!")
    ['don', "'", 't', 'stop', '—', 'it', "'", 's', '3', '.', '5', 'km', '!']
    >>> DefaultTokenizer(lowercase=False)("Ｃａｆé\u200b au lait")  # NFKC folds full-width letters
    ['Café', 'au', 'lait']
    >>> DefaultTokenizer()("东京 Tokyo")
    ['东', '京', 'tokyo']
    """

    lowercase: bool = True

    def __call__(self, text: str) -> list[str]:
        pattern, basic, invisible = _default_patterns()
        text = unicodedata.normalize("NFKC", text).translate(invisible)
        if self.lowercase:
            text = text.lower()
        if text.isascii() or max(text) <= "\uffff":
            return basic.findall(text)
        return pattern.findall(text)

    def settings(self) -> dict[str, Any]:
        return {"type": "default", "version": DEFAULT_TOKENIZER_VERSION, "lowercase": self.lowercase}


class HuggingFaceTokenizer:
    """The tokens (strings) of a Hugging Face ``tokenizers`` file, e.g. a WordPiece ``tokenizer.json``.

    Only the token *strings* are used; ids come from the Object2Vec vocabulary built over them, so
    ``min_count`` and pretrained vectors work as with the default tokenizer. Special tokens
    (``[CLS]``...) are not added. Needs the optional ``tokenizers`` package
    (``pip install 'object2vec[text]'``), imported only when such a tokenizer is used.
    """

    def __init__(self, path: str | os.PathLike, *, lowercase: bool = False, name: str | None = None):
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise AuxiliaryFileError(
                f"{path}: reading a Hugging Face tokenizer file needs the 'tokenizers' package; "
                "install it with: pip install 'object2vec[text]'"
            ) from None
        self.path = Path(path)
        self.name = name or self.path.name
        self.lowercase = lowercase
        try:
            self.raw = self.path.read_bytes()
            self._tokenizer = HFTokenizer.from_str(self.raw.decode("utf-8"))
        except OSError as e:
            raise AuxiliaryFileError(f"{path}: cannot be read ({e.strerror}); expected a Hugging Face tokenizer.json") from None
        except Exception as e:  # tokenizers raises its own exception type for a bad file
            raise AuxiliaryFileError(f"{path}: is not a Hugging Face tokenizer file ({e}); expected a tokenizer.json") from None

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def settings(self) -> dict[str, Any]:
        return {"type": "huggingface", "file": self.name, "lowercase": self.lowercase}


def tokenizer_from_settings(settings: Mapping[str, Any], folder: Path, where: str) -> Tokenizer:
    """Rebuild the tokenizer that ``settings`` (the ``"tokenizer"`` object) describes; files are in ``folder``."""
    kind = settings.get("type")
    lowercase = settings.get("lowercase", kind == "default")
    if not isinstance(lowercase, bool):
        raise AuxiliaryFileError(f"{where}: tokenizer.lowercase is {lowercase!r}; expected true or false")
    if kind == "default":
        version = settings.get("version", DEFAULT_TOKENIZER_VERSION)
        if version != DEFAULT_TOKENIZER_VERSION:
            raise AuxiliaryFileError(
                f"{where}: default tokenizer version {version!r} is not known to this object2vec "
                f"(it has version {DEFAULT_TOKENIZER_VERSION}); use the object2vec that prepared the data"
            )
        return DefaultTokenizer(lowercase=lowercase)
    if kind == "huggingface":
        name = settings.get("file")
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise AuxiliaryFileError(f"{where}: tokenizer.file is {name!r}; expected the name of a tokenizer file beside it")
        return HuggingFaceTokenizer(folder / name, lowercase=lowercase, name=name)
    raise AuxiliaryFileError(f"{where}: tokenizer.type is {kind!r}; expected 'default' or 'huggingface'")


# --------------------------------------------------------------------------------------------------
# Vocabularies


@dataclass(frozen=True)
class Vocabulary:
    """A word -> id map in SageMaker's ``vocab.json`` format, plus the unknown token (if any).

    ``size`` (largest id + 1) is the ``encX_vocab_size`` the vocabulary needs. Several words may share
    an id (a hand-made vocabulary may fold variants); ids need not be contiguous.
    """

    ids: dict[str, int]
    unknown_token: str | None = UNKNOWN_TOKEN
    unknown_id: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.unknown_token is not None and self.unknown_token not in self.ids:
            object.__setattr__(self, "unknown_token", None)
        object.__setattr__(self, "unknown_id", None if self.unknown_token is None else self.ids[self.unknown_token])

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def size(self) -> int:
        """Largest id + 1 (computed once: the ids never change)."""
        return max(self.ids.values(), default=-1) + 1

    @classmethod
    def build(
        cls,
        counts: Mapping[str, int],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        unknown_token: str = UNKNOWN_TOKEN,
        extra: Iterable[str] = (),
    ) -> Vocabulary:
        """Id 0 is ``unknown_token``; then words seen ``min_count`` times, most frequent first
        (ties by code point, so the result never depends on input order); then ``extra`` words in
        their order (e.g. the most frequent words of a pretrained vector file). ``max_size``
        counts every id, the unknown one included.

        >>> Vocabulary.build({"b": 2, "a": 2, "c": 5, "d": 1}, min_count=2).ids
        {'<unk>': 0, 'c': 1, 'a': 2, 'b': 3}
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1; got {min_count}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (the unknown token and one word); got {max_size}")
        kept = sorted((w for w, c in counts.items() if c >= min_count and w != unknown_token), key=lambda w: (-counts[w], w))
        ids = {unknown_token: 0}
        for word in [*kept, *extra]:
            if max_size is not None and len(ids) >= max_size:
                break
            ids.setdefault(word, len(ids))
        return cls(ids, unknown_token)

    @classmethod
    def load(cls, path: str | Path, unknown_token: str | None = UNKNOWN_TOKEN) -> Vocabulary:
        """Read a SageMaker-style ``vocab.json`` (a JSON object word -> non-negative integer id)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise AuxiliaryFileError(f"{path}: cannot be read ({e.strerror}); expected a JSON object of word -> id") from None
        try:
            ids = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AuxiliaryFileError(f"{path}: is not valid JSON ({e}); expected a JSON object of word -> id") from None
        if not isinstance(ids, dict) or not ids:
            what = "an empty object" if ids == {} else type(ids).__name__
            raise AuxiliaryFileError(f'{path}: holds {what}; expected a JSON object of word -> id such as {{"the": 0}}')
        bad = [(w, i) for w, i in ids.items() if type(i) is not int or i < 0]
        if bad:
            shown = ", ".join(f"{w!r}: {json.dumps(i)}" for w, i in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise AuxiliaryFileError(f"{path}: {len(bad)} ids are not non-negative integers: {shown}{more}")
        return cls(ids, unknown_token)

    def to_json(self) -> bytes:
        """The SageMaker ``vocab.json`` bytes (ids in increasing order, UTF-8, not ASCII-escaped)."""
        ordered = dict(sorted(self.ids.items(), key=lambda kv: (kv[1], kv[0])))
        return (json.dumps(ordered, ensure_ascii=False, indent=0) + "\n").encode()

    def check_size(self, vocab_size: int, where: str, hp_name: str) -> None:
        """Every id must be a row of the token table: ``id < vocab_size``."""
        if self.size > vocab_size:
            word = max(self.ids, key=lambda w: self.ids[w])
            raise AuxiliaryFileError(
                f"{where}: word {word!r} has id {self.ids[word]}, not less than {hp_name}={vocab_size}; "
                f"expected every id in [0, {vocab_size}) (set {hp_name}={self.size}, or use the matching vocabulary)"
            )

    def encode(self, tokens: Sequence[str]) -> tuple[list[int], int]:
        """Ids of ``tokens`` and how many were out of vocabulary (rules in the module docstring)."""
        get, unknown = self.ids.get, self.unknown_id
        ids: list[int] = []
        oov = 0
        for token in tokens:
            i = get(token)
            if i is None:
                oov += 1
                if unknown is not None:
                    ids.append(unknown)
            else:
                ids.append(i)
        if not ids and unknown is not None:
            ids.append(unknown)
        return ids, oov


# --------------------------------------------------------------------------------------------------
# The recipe of one model: tokenizer + a vocabulary per side


@dataclass(frozen=True)
class Encoded:
    """One text as ids: its ids, their weights (``None`` without weights), its tokens and how many were OOV."""

    ids: list[int]
    weights: Sequence[float] | None  # a list, or a float32 array of IDF weights
    tokens: int
    oov: int


def encode_text(text: str, tokenizer: Tokenizer, vocab: Vocabulary, features: Features | None = None, idf: Any = None) -> Encoded:
    """The module docstring's rule, plus a side's features: hashed ids after each word, and weights.

    Raises :class:`TextError` for an inline weight that is not a number >= 0.
    """
    if features is None:
        tokens = tokenizer(text)
        ids, oov = vocab.encode(tokens)
        return Encoded(ids, None, len(tokens), oov)
    try:
        tokens, weights = features.split(text, tokenizer)
    except ValueError as e:
        raise TextError(str(e)) from None
    return encode_tokens(tokens, weights, vocab, features, idf)


def encode_texts(
    texts: Sequence[str], tokenizer: Tokenizer, vocab: Vocabulary, features: Features | None = None, idf: Any = None
) -> list[Encoded | TextError]:
    """:func:`encode_text` of each text (its :class:`TextError` in its place where it has one); the
    hashed features of all of them in one call of the compiled kernel where they have no inline
    weights (``Features.expand_many``), which is what makes this faster than a loop."""
    if features is None or not features.hashed or features.weights == "inline" or vocab.unknown_id is None:
        out: list[Encoded | TextError] = []
        for text in texts:
            try:
                out.append(encode_text(text, tokenizer, vocab, features, idf))
            except TextError as e:
                out.append(e)
        return out
    tokens = [tokenizer(text) for text in texts]
    packed, ends, counts = expand_token_texts(tokens, vocab, features)
    result: list[Encoded | TextError] = []
    for (n, oov), ids in zip(counts, np.split(packed, ends[:-1]) if len(ends) else [], strict=True):
        weights: Any = None  # as encode_tokens: an empty text's [unknown id] weighs 1, other ids their IDF
        if features.weights == "idf":
            weights = [1.0] * len(ids) if not n else None if idf is None else idf[ids]
        result.append(Encoded(ids.tolist(), weights, n, oov))
    return result


def expand_token_texts(
    texts: Sequence[Sequence[str]], vocab: Vocabulary, features: Features
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Many tokenized texts to ids at once, as :func:`encode_tokens` gives them without weights: the
    ids packed (``Features.expand_many``), each text's end, and each text's (tokens, OOV tokens). An
    empty text is the unknown id alone (nothing without an unknown token)."""
    by_vocab = [vocab.encode(tokens) for tokens in texts]
    word_ids = [ids if tokens else [] for tokens, (ids, _) in zip(texts, by_vocab, strict=True)]
    empty_id = -1 if vocab.unknown_id is None else vocab.unknown_id
    packed, ends = features.expand_many(texts, word_ids, vocab.size, empty_id=empty_id)
    return packed, ends, [(len(tokens), oov) for tokens, (_, oov) in zip(texts, by_vocab, strict=True)]


def encode_tokens(
    tokens: list[str], weights: list[float] | None, vocab: Vocabulary, features: Features, idf: Any = None
) -> Encoded:
    """:func:`encode_text` after its split: a text's ``tokens`` (and inline ``weights``) to ids."""
    ids, oov = vocab.encode(tokens)
    if features.hashed and vocab.unknown_id is None:
        raise TextError("hashed features need one id per token: a vocabulary with an unknown token")
    if not tokens:  # an empty text: [unknown id], weight 1
        return Encoded(ids, [1.0] * len(ids) if features.weights != "none" else None, 0, 0)
    if weights is not None and len(ids) != len(tokens):  # OOV tokens dropped (no unknown token): drop their weights
        weights = [w for t, w in zip(tokens, weights, strict=True) if t in vocab.ids]
    ids, weights = features.expand(tokens, ids, vocab.size, weights) if features.hashed else (ids, weights)
    if features.weights == "idf":
        weights = idf[ids] if idf is not None else None  # float32, as the table
    return Encoded(ids, weights, len(tokens), oov)


@dataclass
class TextCodec:
    """How one model turns text into ids: one tokenizer, a vocabulary per side (``None``: ids only),
    and optionally a side's features (hashed n-grams and subwords, token weights; an extension)."""

    tokenizer: Tokenizer
    vocabs: tuple[Vocabulary | None, Vocabulary | None]
    vocab_files: tuple[str, str] = ("", "")
    features: tuple[Features | None, Features | None] = (None, None)
    idf: tuple[Any, Any] = (None, None)  # per side: float32 (vocab_size,) IDF table, for features.weights == "idf"

    def encode(self, text: str, side: int) -> list[int]:
        """Token ids of ``text`` for encoder ``side``; raises :class:`TextError` when nothing is left."""
        return self.encode_weighted(text, side)[0]

    def encode_weighted(self, text: str, side: int) -> tuple[list[int], list[float] | None]:
        """Token ids of ``text`` for encoder ``side`` and their weights (``None`` when the side has none)."""
        vocab = self.vocabs[side]
        if vocab is None:
            raise TextError(
                f"got a string, but this model has no vocabulary for in{side} (enc{side}_vocab_file is empty); "
                "expected a list of token ids"
            )
        encoded = encode_text(text, self.tokenizer, vocab, self.features[side], self.idf[side])
        if not encoded.ids:
            raise TextError(
                f"none of the {encoded.tokens} tokens of {_clip(text)!r} is in enc{side}_vocab_file={self.vocab_files[side]} "
                "and it has no unknown token; expected at least one known word"
            )
        return encoded.ids, None if encoded.weights is None else list(encoded.weights)

    def settings(self) -> dict[str, Any]:
        unknown = {v.unknown_token for v in self.vocabs if v is not None}
        settings = {
            "format": SETTINGS_FORMAT,
            "format_version": SETTINGS_VERSION if any(self.features) else 1,
            "tokenizer": self.tokenizer.settings(),
            "unknown_token": next(iter(unknown)) if len(unknown) == 1 else UNKNOWN_TOKEN,
        }
        if any(self.features):
            settings["features"] = {
                f"in{side}": {**f.settings(), **({"idf_file": idf_file(side)} if f.weights == "idf" else {})}
                for side, f in enumerate(self.features)
                if f is not None
            }
        return settings

    def assets(self) -> dict[str, bytes]:
        """Files a model folder needs to read text again: settings, vocabularies, tokenizer file, IDF tables."""
        import io

        files = {SETTINGS_FILE: (json.dumps(self.settings(), indent=2) + "\n").encode()}
        for name, vocab in zip(self.vocab_files, self.vocabs, strict=True):
            if vocab is not None:
                files[name] = vocab.to_json()
        if isinstance(self.tokenizer, HuggingFaceTokenizer):
            files[self.tokenizer.name] = self.tokenizer.raw
        for side, table in enumerate(self.idf):
            if table is not None:
                buffer = io.BytesIO()
                np.save(buffer, table)
                files[idf_file(side)] = buffer.getvalue()
        return files

    @classmethod
    def from_folder(cls, folder: str | Path, vocab_files: tuple[str, str]) -> TextCodec | None:
        """The codec of an auxiliary channel or model folder, for the vocabulary files the model names.

        ``tokenization.json`` is optional: without it (a vocabulary made for SageMaker) the default
        tokenizer is used and ``<unk>`` is the unknown token if the vocabulary has it.
        Returns ``None`` when neither side names a vocabulary.
        """
        if not any(vocab_files):
            return None
        folder = Path(folder)
        settings = read_settings(folder)
        where = str(folder / SETTINGS_FILE)
        tokenizer = tokenizer_from_settings(settings["tokenizer"], folder, where)
        unknown = settings["unknown_token"]
        cache: dict[str, Vocabulary] = {}
        for name in vocab_files:
            if name and name not in cache:
                cache[name] = Vocabulary.load(folder / name, unknown)
        vocabs = (cache.get(vocab_files[0]), cache.get(vocab_files[1]))
        features, idf = read_features(settings.get("features"), folder, where, vocabs)
        return cls(tokenizer, vocabs, vocab_files, features, idf)


def idf_file(side: int) -> str:
    """The IDF table of a side, beside its vocabulary: ``enc0_idf.npy``."""
    return f"enc{side}_idf.npy"


def read_features(
    settings: Any, folder: Path, where: str, vocabs: tuple[Vocabulary | None, Vocabulary | None]
) -> tuple[tuple[Features | None, Features | None], tuple[Any, Any]]:
    """Each side's :class:`Features` and IDF table from ``tokenization.json``'s ``"features"``."""
    if settings is None:
        return (None, None), (None, None)
    if not isinstance(settings, dict) or not set(settings) <= {"in0", "in1"}:
        raise AuxiliaryFileError(f'{where}: "features" is {settings!r}; expected an object with "in0" and/or "in1"')
    features: list[Features | None] = [None, None]
    tables: list[Any] = [None, None]
    for side in (0, 1):
        raw = settings.get(f"in{side}")
        if raw is None:
            continue
        try:
            features[side] = found = Features.from_settings(raw, f"{where}: in{side}")
        except ValueError as e:
            raise AuxiliaryFileError(str(e)) from None
        if found.weights == "idf":
            vocab = vocabs[side]
            size = (vocab.size if vocab is not None else 0) + found.extra_ids
            try:
                tables[side] = load_idf(folder / raw.get("idf_file", idf_file(side)), size, where)
            except ValueError as e:
                raise AuxiliaryFileError(str(e)) from None
    return (features[0], features[1]), (tables[0], tables[1])


def read_settings(folder: Path) -> dict[str, Any]:
    """``tokenization.json`` of ``folder``, checked; the defaults when the file does not exist."""
    path = folder / SETTINGS_FILE
    if not path.exists():
        return {"tokenizer": DefaultTokenizer().settings(), "unknown_token": UNKNOWN_TOKEN}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AuxiliaryFileError(
            f"{path}: cannot be read ({e}); expected the tokenization.json written by object2vec prepare"
        ) from None
    if not isinstance(settings, dict) or settings.get("format") != SETTINGS_FORMAT:
        raise AuxiliaryFileError(f'{path}: has wrong file format; expected "format": "{SETTINGS_FORMAT}"')
    version = settings.get("format_version")
    if not isinstance(version, int) or version > SETTINGS_VERSION:
        raise AuxiliaryFileError(f"{path}: format_version {version!r} is newer than this object2vec reads ({SETTINGS_VERSION})")
    if not isinstance(settings.get("tokenizer"), dict):
        raise AuxiliaryFileError(f'{path}: "tokenizer" is {settings.get("tokenizer")!r}; expected an object with a "type"')
    unknown = settings.get("unknown_token", UNKNOWN_TOKEN)
    if unknown is not None and not isinstance(unknown, str):
        raise AuxiliaryFileError(f'{path}: "unknown_token" is {unknown!r}; expected a string or null')
    return {"tokenizer": settings["tokenizer"], "unknown_token": unknown, "features": settings.get("features")}


def count_tokens(texts: Iterable[str], tokenizer: Tokenizer) -> Counter[str]:
    """Token frequencies over ``texts`` (what :meth:`Vocabulary.build` takes)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenizer(text))
    return counts


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Records that may hold text


def read_text_pairs(source: Any, schema: Any, codec: TextCodec | None, **kwargs: Any) -> Any:
    """:func:`object2vec.data.pairs.read_pairs`, where ``in0``/``in1`` may also be strings (encoded by ``codec``).

    Without a codec, or for a :class:`~object2vec.data.PairData`, this is ``read_pairs`` itself. With
    one, records (in memory, or read from JSON Lines files) have their strings encoded first, and
    every problem is still reported with its ``file:line`` or ``records[i]``, in input order. Files
    are first read the fast way (packed arrays, no Python records) and only re-read record by
    record when they turn out to hold strings.
    """
    from ..data.pairs import PairData, read_pairs

    if codec is None or isinstance(source, PairData):
        return read_pairs(source, schema, **kwargs)
    if not (isinstance(source, (list, tuple)) and (not source or isinstance(source[0], Mapping))):
        try:
            return read_pairs(source, schema, **kwargs)
        except DataError as e:
            if not any("(a string)" in p.value for p in e.found):
                raise
    sides = kwargs.get("sides", ("in0", "in1"))
    records: list[Any] = []
    where: list[Location] = []  # where records[j] is in the caller's input
    problems = Problems()
    for place, rec in _located_records(source, problems):
        if isinstance(rec, dict) and any(isinstance(rec.get(s), str) for s in sides):
            rec = dict(rec)
            failed = False
            for s in sides:
                if isinstance(rec.get(s), str):
                    side = 0 if s == "in0" else 1
                    try:
                        rec[s], weights = codec.encode_weighted(rec[s], side)
                    except TextError as e:
                        problems.add(Problem(place, s, str(e)))
                        failed = True
                        continue
                    if getattr(schema, "weighted", (False, False))[side]:  # a weighted mean reads these weights
                        rec[f"{s}_weights"] = [float(w) for w in weights] if weights is not None else [1.0] * len(rec[s])
            if failed:
                continue
        records.append(rec)
        where.append(place)
    try:
        data = read_pairs(records, schema, **kwargs)
    except DataError as e:
        if records or not problems.count:  # with no record left, "no records" is already explained by the problems
            for problem in relocate(e.found, where):
                problems.add(problem)
            problems.count += e.count - len(e.found)
        problems.raise_if_any()
        raise
    problems.raise_if_any()
    return data


def _located_records(source: Any, problems: Problems) -> Iterator[tuple[Location, Any]]:
    """``(place, record)`` pairs from a list of records (place: its index), a path, or a list of paths."""
    import orjson

    from ..data.pairs import list_files, open_lines

    if isinstance(source, (list, tuple)) and (not source or isinstance(source[0], Mapping)):
        yield from enumerate(source)
        return
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    for path in paths:
        for file in list_files(path):
            problems.expect(file)
            try:
                fh = open_lines(file)
            except OSError as e:
                problems.add(Problem(Line(str(file)), None, f"cannot be read ({e.strerror})"))
                continue
            with fh:
                for lineno, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    at = Line(str(file), lineno)
                    try:
                        yield at, orjson.loads(raw)
                    except orjson.JSONDecodeError as e:
                        try:  # the stdlib parser reads NaN/Infinity, which read_pairs then names precisely
                            yield at, json.loads(raw)
                        except (json.JSONDecodeError, UnicodeDecodeError):
                            problems.add(Problem(at, None, f"malformed JSON ({e})", "one JSON object per line"))
