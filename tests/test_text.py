"""Tokenizers and vocabularies: the rules that turn text into token ids, in training and at inference."""

from __future__ import annotations

import builtins
import json
import random

import pytest

from object2vec.errors import Object2VecError
from object2vec.text.tokenize import (
    AuxiliaryFileError,
    DefaultTokenizer,
    HuggingFaceTokenizer,
    TextCodec,
    TextError,
    Vocabulary,
    count_tokens,
)

tokenize = DefaultTokenizer()


# --------------------------------------------------------------------------------------------------
# The default tokenizer


def test_default_tokenizer_lowercases_and_splits_words_from_punctuation():
    assert tokenize("Hello, World! It's 9:30.") == ["hello", ",", "world", "!", "it", "'", "s", "9", ":", "30", "."]


def test_empty_and_blank_texts_have_no_tokens():
    assert tokenize("") == [] and tokenize(" \t\n ") == []


def test_accents_and_combining_marks_stay_inside_their_word():
    assert tokenize("naïve cafe\u0301 हिन्दी") == ["naïve", "café", "हिन्दी"]  # NFKC composes e + U+0301


def test_each_cjk_ideograph_is_a_token_and_kana_runs_stay_together():
    assert tokenize("東京タワーへ") == ["東", "京", "タワーへ"]


def test_full_width_forms_fold_and_invisible_characters_disappear():
    assert tokenize("ＡＢＣ\u200bdef\u00ad") == ["abcdef"]


def test_symbols_and_emoji_are_single_tokens():
    assert tokenize("5€ + 3$ 🙂🙂") == ["5", "€", "+", "3", "$", "🙂", "🙂"]


def test_text_within_the_basic_plane_splits_as_the_full_pattern_splits_it():
    from object2vec.text.tokenize import _default_patterns

    full, basic, _ = _default_patterns()
    rng = random.Random(7)
    pools = [range(0x20, 0x80), range(0x80, 0x800), range(0x2000, 0x2100), range(0x3000, 0x3100), range(0xF000, 0x10000)]
    for _ in range(300):
        text = "".join(chr(rng.choice(rng.choice(pools))) if rng.random() > 0.15 else " " for _ in range(rng.randint(0, 60)))
        assert basic.findall(text) == full.findall(text)
    # and text with a character past U+FFFF takes the full pattern: symbols there stay single tokens
    assert tokenize("a\U0001f600b \U00010400x") == ["a", "\U0001f600", "b", "\U00010400x".lower()]


def test_lowercasing_can_be_turned_off():
    assert DefaultTokenizer(lowercase=False)("The END") == ["The", "END"]


def test_a_very_long_line_is_tokenized_whole():
    text = " ".join(f"w{i % 100}" for i in range(200_000))
    tokens = tokenize(text)
    assert len(tokens) == 200_000 and tokens[-1] == "w99"


# --------------------------------------------------------------------------------------------------
# Vocabularies


def test_unknown_token_is_id_zero_then_words_by_frequency_then_code_point():
    vocab = Vocabulary.build({"b": 3, "a": 3, "z": 7, "y": 1})
    assert vocab.ids == {"<unk>": 0, "z": 1, "a": 2, "b": 3, "y": 4}
    assert vocab.unknown_id == 0 and vocab.size == 5


def test_vocabulary_does_not_depend_on_the_order_of_the_corpus():
    texts = [f"w{i % 13} w{i % 7} w{i % 3}" for i in range(200)]
    shuffled = texts[:]
    random.Random(4).shuffle(shuffled)
    a = Vocabulary.build(count_tokens(texts, tokenize))
    b = Vocabulary.build(count_tokens(shuffled, tokenize))
    assert a.to_json() == b.to_json()


def test_min_count_drops_rare_words_and_max_size_counts_the_unknown_id():
    counts = {"a": 5, "b": 4, "c": 1}
    assert set(Vocabulary.build(counts, min_count=2).ids) == {"<unk>", "a", "b"}
    assert Vocabulary.build(counts, max_size=2).ids == {"<unk>": 0, "a": 1}


def test_extra_words_follow_the_training_words_once_each():
    vocab = Vocabulary.build({"cat": 2}, extra=["the", "cat", "dog"])
    assert vocab.ids == {"<unk>": 0, "cat": 1, "the": 2, "dog": 3}


def test_out_of_vocabulary_tokens_map_to_the_unknown_id_and_are_counted():
    vocab = Vocabulary.build({"a": 1, "b": 1})
    assert vocab.encode(["a", "x", "b", "y"]) == ([1, 0, 2, 0], 2)


def test_an_all_oov_text_is_all_unknown_and_an_empty_text_is_one_unknown():
    vocab = Vocabulary.build({"a": 1})
    assert vocab.encode(["x", "y"]) == ([0, 0], 2)
    assert vocab.encode([]) == ([0], 0)


def test_without_an_unknown_token_oov_tokens_are_dropped():
    vocab = Vocabulary({"the": 0, "cat": 1}, unknown_token="<unk>")  # a SageMaker vocabulary: no <unk>
    assert vocab.unknown_id is None
    assert vocab.encode(["the", "gnu", "cat"]) == ([0, 1], 1)
    assert vocab.encode(["gnu"]) == ([], 1)


def test_vocab_json_is_sagemakers_word_to_id_object(tmp_path):
    vocab = Vocabulary.build({"é": 2, "b": 1})
    path = tmp_path / "vocab.json"
    path.write_bytes(vocab.to_json())
    assert json.loads(path.read_text("utf-8")) == {"<unk>": 0, "é": 1, "b": 2}
    assert Vocabulary.load(path).ids == vocab.ids


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a", "b"]', "holds list; expected a JSON object of word -> id"),
        ("{}", "holds an empty object"),
        ('{"a": 0, "b": -1, "c": "2", "d": 1.5}', "3 ids are not non-negative integers: 'b': -1, 'c': \"2\", 'd': 1.5"),
    ],
)
def test_a_bad_vocab_file_is_refused_with_its_name_and_the_problem(tmp_path, content, message):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(AuxiliaryFileError, match=r"vocab\.json") as err:
        Vocabulary.load(path)
    assert message in str(err.value) and isinstance(err.value, Object2VecError)


def test_a_missing_vocab_file_is_named(tmp_path):
    with pytest.raises(AuxiliaryFileError, match=r"nope\.json: cannot be read"):
        Vocabulary.load(tmp_path / "nope.json")


def test_a_vocabulary_larger_than_vocab_size_names_the_word_and_the_fix():
    vocab = Vocabulary({"a": 0, "b": 7})
    with pytest.raises(AuxiliaryFileError, match=r"word 'b' has id 7, not less than enc0_vocab_size=5.*set enc0_vocab_size=8"):
        vocab.check_size(5, "enc0_vocab_file=vocab.json", "enc0_vocab_size")


# --------------------------------------------------------------------------------------------------
# The codec of a model


def test_codec_refuses_text_for_a_side_without_vocabulary():
    codec = TextCodec(tokenize, (Vocabulary.build({"a": 1}), None), ("vocab.json", ""))
    assert codec.encode("A b", 0) == [1, 0]
    with pytest.raises(TextError, match="no vocabulary for in1"):
        codec.encode("a", 1)


def test_codec_without_unknown_token_refuses_a_text_with_no_known_word():
    codec = TextCodec(tokenize, (Vocabulary({"cat": 0}), None), ("v.json", ""))
    with pytest.raises(TextError, match=r"none of the 2 tokens of 'dog bird' is in enc0_vocab_file=v\.json"):
        codec.encode("dog bird", 0)


def test_codec_settings_and_vocabularies_round_trip_through_a_folder(tmp_path):
    vocab = Vocabulary.build({"hello": 2, "world": 1})
    codec = TextCodec(DefaultTokenizer(lowercase=False), (vocab, vocab), ("vocab.json", "vocab.json"))
    for name, data in codec.assets().items():
        (tmp_path / name).write_bytes(data)
    again = TextCodec.from_folder(tmp_path, ("vocab.json", "vocab.json"))
    assert again is not None and again.encode("hello World", 1) == codec.encode("hello World", 1) == [1, 0]


def test_a_folder_without_tokenization_json_uses_the_default_tokenizer(tmp_path):
    (tmp_path / "v.json").write_text('{"the": 0, "cat": 1}')
    codec = TextCodec.from_folder(tmp_path, ("v.json", ""))
    assert codec is not None and codec.encode("The CAT", 0) == [0, 1]


def test_an_unknown_default_tokenizer_version_is_refused(tmp_path):
    (tmp_path / "v.json").write_text('{"a": 0}')
    settings = {"format": "object2vec-tokenization", "format_version": 1, "tokenizer": {"type": "default", "version": 99}}
    (tmp_path / "tokenization.json").write_text(json.dumps(settings))
    with pytest.raises(AuxiliaryFileError, match="default tokenizer version 99 is not known"):
        TextCodec.from_folder(tmp_path, ("v.json", ""))


# --------------------------------------------------------------------------------------------------
# Hugging Face tokenizers (optional extra)


def _word_level_tokenizer(path):
    tokenizers = pytest.importorskip("tokenizers")
    model = tokenizers.models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2, "!": 3}, unk_token="[UNK]")
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_a_hugging_face_tokenizer_file_supplies_the_token_strings(tmp_path):
    tok = HuggingFaceTokenizer(_word_level_tokenizer(tmp_path / "tokenizer.json"))
    assert tok("Hello World!") == ["hello", "world", "!"]
    assert tok.settings() == {"type": "huggingface", "file": "tokenizer.json", "lowercase": False}


def test_a_hugging_face_tokenizer_without_the_package_says_how_to_install_it(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tokenizers(name, *args, **kwargs):
        if name == "tokenizers":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tokenizers)
    with pytest.raises(AuxiliaryFileError, match=r"needs the 'tokenizers' package.*pip install 'object2vec\[text\]'"):
        HuggingFaceTokenizer(tmp_path / "tokenizer.json")


def test_a_file_that_is_not_a_hugging_face_tokenizer_is_named(tmp_path):
    pytest.importorskip("tokenizers")
    path = tmp_path / "tokenizer.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(AuxiliaryFileError, match=r"tokenizer\.json: is not a Hugging Face tokenizer file"):
        HuggingFaceTokenizer(path)
