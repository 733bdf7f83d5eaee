"""Hashed word n-grams, subwords and token weights (the text-classification extension of prepare)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from object2vec.text.features import DocumentFrequencies, Features, fnv1a, parse_subwords
from object2vec.text.tokenize import DefaultTokenizer, TextError, Vocabulary, encode_text

VOCAB = Vocabulary.build({"new": 3, "york": 2, "city": 1})  # <unk> 0, new 1, york 2, city 3
TOKENS = ["new", "york", "city", "zzz"]
IDS = [1, 2, 3, 0]


def test_fnv1a_is_the_32_bit_fnv_1a_hash_of_utf8_bytes():
    assert fnv1a("") == 2166136261
    assert fnv1a("a") == 0xE40C292C  # the published FNV-1a test vector
    assert fnv1a("foobar") == 0xBF9CF968
    assert fnv1a("é") == fnv1a("\u00e9") != fnv1a("e")


def test_word_ngrams_follow_each_word_and_lie_within_the_buckets():
    ids, weights = Features(word_ngrams=3, buckets=7).expand(TOKENS, IDS, vocab_size=4)
    # word 0; word 1, its bigram; word 2, bigram, trigram; word 3, bigram, trigram
    assert [ids[i] for i in (0, 1, 3, 6)] == IDS
    hashed = [i for k, i in enumerate(ids) if k not in (0, 1, 3, 6)]
    assert len(hashed) == 5 and all(4 <= i < 11 for i in hashed)
    assert weights is None


def test_a_word_ngram_id_is_fasttexts_hash_mixing_modulo_the_buckets():
    ids, _ = Features(word_ngrams=2, buckets=1000).expand(["new", "york"], [1, 2], vocab_size=4)
    h = (fnv1a("new") * 116049371 + fnv1a("york")) % 2**64
    assert ids == [1, 2, 4 + h % 1000]


def test_subwords_are_the_character_ngrams_of_the_marked_word():
    ids, _ = Features(subwords=(2, 3), buckets=10**6).expand(["ab"], [0], vocab_size=10)
    grams = ["<a", "ab", "b>", "<ab", "ab>"]  # of "<ab>": lengths 2 and 3 (the lone marks are never grams)
    assert sorted(ids[1:]) == sorted(10 + fnv1a(g) % 10**6 for g in grams)


def test_features_are_deterministic_and_depend_only_on_the_text():
    f = Features(word_ngrams=2, subwords=(3, 5), buckets=5000)
    first = f.expand(TOKENS, IDS, vocab_size=4)
    assert f.expand(list(TOKENS), list(IDS), vocab_size=4) == first
    assert Features.from_settings(f.settings(), "here") == f


def _expand_by_the_definition(f, tokens, ids, vocab_size, weights):
    """The module docstring's rules spelt out slowly: each word, its subwords (every character n-gram of
    ``<word>`` by start, then length; not the lone marks), then the n-grams of 2.. words ending at it."""
    out, out_weights = [], []
    for i, token in enumerate(tokens):
        marked = f"<{token}>"
        subs = []
        if f.subwords:
            for start in range(len(marked)):
                for n in range(f.subwords[0], f.subwords[1] + 1):
                    if start + n <= len(marked) and not (n == 1 and (start == 0 or start + n == len(marked))):
                        subs.append(vocab_size + fnv1a(marked[start : start + n]) % f.buckets)
        grams = []
        for n in range(2, min(f.word_ngrams, i + 1) + 1):
            h = fnv1a(tokens[i - n + 1])
            for word in tokens[i - n + 2 : i + 1]:
                h = (h * 116049371 + fnv1a(word)) % 2**64
            grams.append(vocab_size + h % f.buckets)
        out += [ids[i], *subs, *grams]
        out_weights += [weights[i]] * (1 + len(subs)) + [sum(weights[i - n + 1 : i + 1]) / n for n in range(2, 2 + len(grams))]
    return out, out_weights


@pytest.mark.parametrize(("ngrams", "subwords"), [(1, (1, 3)), (2, (3, 5)), (3, None), (4, (2, 2))])
def test_the_fast_expansion_gives_the_ids_and_weights_of_the_definition(ngrams, subwords):
    rng = np.random.default_rng(ngrams)
    alphabet = [*"abcdeé日-'", "ñ", "\U0001f600"]
    for _ in range(30):
        tokens = ["".join(rng.choice(alphabet, size=rng.integers(1, 9))) for _ in range(rng.integers(1, 12))]
        ids = [int(i) for i in rng.integers(0, 50, size=len(tokens))]
        weights = [float(w) for w in rng.random(len(tokens))]
        f = Features(word_ngrams=ngrams, subwords=subwords, buckets=997)
        got = f.expand(tokens, ids, 50, weights)
        want = _expand_by_the_definition(f, tokens, ids, 50, weights)
        assert got[0] == want[0]
        assert got[1] == pytest.approx(want[1])


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
@pytest.mark.parametrize(("ngrams", "subwords"), [(1, (1, 3)), (2, (3, 5)), (3, None), (4, (2, 2))])
def test_many_texts_expand_at_once_to_the_ids_of_the_definition(ngrams, subwords, compiled, monkeypatch):
    from object2vec.native import kernels

    if not compiled:
        monkeypatch.setattr(kernels, "expand_features", lambda *a, **k: None)
    elif not kernels.available():
        pytest.skip("no compiled kernels here")
    rng = np.random.default_rng(ngrams)
    alphabet = [*"abcdeé日-'<>", "ñ", "\U0001f600", "\u0800", "\uffff"]
    texts = [["".join(rng.choice(alphabet, size=rng.integers(1, 9))) for _ in range(rng.integers(0, 12))] for _ in range(40)]
    ids = [[int(i) for i in rng.integers(0, 50, size=len(t))] for t in texts]
    f = Features(word_ngrams=ngrams, subwords=subwords, buckets=997)
    packed, ends = f.expand_many(texts, ids, 50, empty_id=0)
    got = np.split(packed, ends[:-1])
    for tokens, text_ids, mine in zip(texts, ids, got, strict=True):
        want = _expand_by_the_definition(f, tokens, text_ids, 50, [1.0] * len(tokens))[0] if tokens else [0]
        assert mine.tolist() == want
        if len(tokens) > 1:  # one text alone, as at inference, through the same kernel
            assert f.expand(tokens, text_ids, 50)[0] == want


def test_a_token_without_utf8_is_left_to_the_python_path_which_names_it():
    f = Features(word_ngrams=2, buckets=10)
    with pytest.raises(UnicodeEncodeError):
        f.expand(["a", "\ud800"], [1, 2], vocab_size=4)


def test_document_frequencies_count_each_text_once_per_id():
    df = DocumentFrequencies(5)
    for ids in ([1, 1, 2], [2, 4], [4, 4, 4, 0]):
        df.add(ids)
    assert df.documents == 3
    assert df.idf().tolist() == pytest.approx([math.log(4 / (1 + c)) + 1 for c in (1, 1, 2, 0, 2)])


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_packed_texts_are_counted_as_one_at_a_time(compiled, monkeypatch):
    from object2vec.native import kernels

    if not compiled:
        monkeypatch.setattr(kernels, "document_frequencies", lambda *a: False)
    texts = [[1, 1, 2], [2, 4], [], [4, 4, 4, 0]]
    one, packed = DocumentFrequencies(5), DocumentFrequencies(5)
    for ids in texts:
        one.add(ids)
    ends = np.cumsum([len(t) for t in texts])
    for _ in range(2):  # twice: each call counts its own texts from the first
        packed.add_packed(np.array([i for t in texts for i in t], dtype=np.int64), ends)
    for ids in texts:
        one.add(ids)
    assert packed.documents == one.documents == 8
    assert packed.idf().tolist() == one.idf().tolist()


def test_inline_weights_go_to_every_token_of_their_piece_and_default_to_one():
    f = Features(weights="inline")
    tokens, weights = f.split("economy:2.5 New-York:0.5 plain", DefaultTokenizer())
    assert tokens == ["economy", "new", "-", "york", "plain"]
    assert weights == [2.5, 0.5, 0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="finite number >= 0"):
        f.split("bad:-1", DefaultTokenizer())


def test_subwords_carry_their_words_weight_and_ngrams_the_mean_of_theirs():
    f = Features(word_ngrams=2, subwords=(3, 3), buckets=100, weights="inline")
    ids, weights = f.expand(["ab", "cd"], [1, 2], vocab_size=4, weights=[2.0, 4.0])
    # ab, <ab, ab>, cd, <cd, cd>, bigram(ab cd)
    assert weights == [2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 3.0]
    assert len(ids) == 7


def test_idf_is_scikit_learns_smooth_idf():
    frequencies = DocumentFrequencies(4)
    for doc in ([1, 1, 2], [1], [3]):
        frequencies.add(doc)
    idf = frequencies.idf()
    assert idf[1] == pytest.approx(math.log(4 / 3) + 1)  # in 2 of 3 texts (twice in one: counted once)
    assert idf[0] == pytest.approx(math.log(4) + 1)  # never seen: the largest weight
    assert idf.dtype == np.float32


def test_encoding_text_with_features_gives_ids_after_the_vocabulary_and_their_idf():
    f = Features(word_ngrams=2, buckets=3, weights="idf")
    idf = np.arange(VOCAB.size + 3, dtype=np.float32)
    encoded = encode_text("new york", DefaultTokenizer(), VOCAB, f, idf)
    assert encoded.ids[:2] == [1, 2] and VOCAB.size <= encoded.ids[2] < VOCAB.size + 3
    assert list(encoded.weights) == [float(i) for i in encoded.ids]
    empty = encode_text("", DefaultTokenizer(), VOCAB, f, idf)
    assert empty.ids == [0] and list(empty.weights) == [1.0]


def test_hashed_features_need_a_vocabulary_with_an_unknown_token():
    no_unknown = Vocabulary({"new": 0, "york": 1}, unknown_token=None)
    with pytest.raises(TextError, match="unknown token"):
        encode_text("new york", DefaultTokenizer(), no_unknown, Features(word_ngrams=2, buckets=3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"word_ngrams": 2}, "buckets must be >= 1"),
        ({"subwords": (5, 3), "buckets": 9}, "1 <= MIN <= MAX"),
        ({"weights": "tfidf"}, "one of none, inline, idf"),
        ({"word_ngrams": 0}, r"word_ngrams must be an integer in \[1, 10\]"),
    ],
)
def test_bad_feature_settings_are_refused_with_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Features(**kwargs)


def test_subwords_option_takes_min_max_or_one_length():
    assert parse_subwords("3,6") == (3, 6)
    assert parse_subwords("4") == (4, 4)
    assert parse_subwords(None) is None
    with pytest.raises(ValueError, match="MIN,MAX"):
        parse_subwords("3-6")
