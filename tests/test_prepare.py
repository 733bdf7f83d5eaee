"""``object2vec prepare`` and raw text at inference: from text pairs to a model that reads strings."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from object2vec import DataError, Object2Vec
from object2vec.cli import main
from object2vec.text.prepare import PrepareError, PrepareOptions, Table, prepare

ANIMALS = ["cat", "dog", "cow", "owl"]
PLACES = ["park", "barn", "field", "lake"]


def sentence(i: int) -> str:
    return f"The {ANIMALS[i % 4]} sat in the {PLACES[i % 4]}."


def write_csv(path: Path, n: int, *, offset: int = 0, sep: str = ",", header: bool = True, label=lambda i: i % 2) -> Path:
    lines = [sep.join(["id", "left", "right", "label"])] if header else []
    for i in range(offset, offset + n):
        same = label(i)
        right = sentence(i) if same else sentence(i + 1)
        lines.append(sep.join([str(i), sentence(i), right, str(same)]))
    path.write_text("\n".join(lines) + "\n")
    return path


COLUMNS = Table(left="left", right="right", label="label")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------------------------------
# Files in, files out


def test_csv_pairs_become_object2vec_json_lines_with_a_sagemaker_vocabulary(tmp_path):
    report = prepare(tmp_path / "out", COLUMNS, train=write_csv(tmp_path / "train.csv", 8), shared_vocab=True)
    out = tmp_path / "out"
    vocab = json.loads((out / "vocab.json").read_text())
    second = read_jsonl(out / "train.jsonl")[1]  # "The dog sat in the barn." twice, label 1
    assert vocab["<unk>"] == 0 and vocab["the"] == 1  # most frequent word first
    assert second == {
        "label": 1,
        "in0": [vocab[w] for w in ["the", "dog", "sat", "in", "the", "barn", "."]],
        "in1": second["in0"],
    }
    assert report.hyperparameters == {
        "enc0_vocab_size": str(len(vocab)),
        "enc0_max_seq_len": "7",
        "enc0_vocab_file": "vocab.json",
        "output_layer": "softmax",
        "num_classes": "2",
    }
    assert json.loads((out / "hyperparameters.json").read_text()) == report.hyperparameters


def test_tsv_without_quoting_reads_quote_characters_as_text(tmp_path):
    path = tmp_path / "sts.tsv"
    path.write_text('genre\tsrc\t3.5\tHe said "hi\tShe said "bye"\n' + 'genre\tsrc\t0.25\tA "quoted" word\tnothing\n')
    table = Table(left=3, right=4, label=2, quoting=False)
    prepare(tmp_path / "out", table, train=path)
    vocab = json.loads((tmp_path / "out" / "enc0_vocab.json").read_text())
    assert '"' in vocab and len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 2


def test_json_lines_input_takes_columns_by_key(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"q": "Is it red?", "a": "It is red.", "y": "yes"}\n{"q": "Is it blue?", "a": "No.", "y": "no"}\n')
    report = prepare(tmp_path / "out", Table(left="q", right="a", label="y"), train=path)
    assert report.labels is not None and report.labels.classes == {"no": 0, "yes": 1}
    assert [r["label"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")] == [1, 0]
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == {"no": 0, "yes": 1}


def test_fractional_labels_mean_regression_and_integer_labels_keep_their_class_id(tmp_path):
    numbers = prepare(tmp_path / "a", COLUMNS, train=write_csv(tmp_path / "a.csv", 4, label=lambda i: i * 1.25))
    positives = prepare(tmp_path / "b", COLUMNS, train=write_csv(tmp_path / "b.csv", 4, label=lambda i: 1))
    assert numbers.hyperparameters["output_layer"] == "mean_squared_error"
    assert [r["label"] for r in read_jsonl(tmp_path / "a" / "train.jsonl")] == [0.0, 1.25, 2.5, 3.75]
    # all-positive data (for negative sampling) keeps label 1, with two classes
    assert positives.hyperparameters["num_classes"] == "2" and read_jsonl(tmp_path / "b" / "train.jsonl")[0]["label"] == 1


def test_gzip_input_is_read_like_plain_text(tmp_path):
    plain = write_csv(tmp_path / "t.csv", 6)
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    prepare(tmp_path / "a", COLUMNS, train=plain)
    prepare(tmp_path / "b", COLUMNS, train=packed)
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()


# --------------------------------------------------------------------------------------------------
# Vocabulary: training split only, reused for the others


def test_the_vocabulary_comes_from_training_data_and_validation_oov_is_reported(tmp_path):
    train = write_csv(tmp_path / "train.csv", 4)  # animals and places 0-3
    valid = tmp_path / "valid.csv"
    valid.write_text("id,left,right,label\n1,The yak sat in the tundra.,The cat sat.,0\n")
    report = prepare(tmp_path / "out", COLUMNS, train=train, validation=valid)
    stats = {s.name: s for s in report.splits}
    assert stats["train"].sides[0].oov == 0
    assert stats["validation"].sides[0].oov == 2 and stats["validation"].sides[0].tokens == 7
    assert read_jsonl(tmp_path / "out" / "validation.jsonl")[0]["in0"][1] == 0  # yak -> <unk>


def test_an_empty_text_and_an_all_oov_text_become_the_unknown_id_and_are_counted(tmp_path):
    train = write_csv(tmp_path / "train.csv", 4)
    test = tmp_path / "test.csv"
    test.write_text('id,left,right,label\n1,"",zebra gnu,0\n')
    report = prepare(tmp_path / "out", COLUMNS, train=train, test=test)
    side0, side1 = report.splits[1].sides
    assert read_jsonl(tmp_path / "out" / "test.jsonl")[0] == {"label": 0, "in0": [0], "in1": [0, 0]}
    assert (side0.empty, side1.all_oov) == (1, 1)


def test_idf_weighted_training_lines_are_what_encoding_each_text_afresh_gives(tmp_path):
    # prepare keeps the IDF pass's ids for train.jsonl instead of tokenizing again; the lines must not differ
    train = write_csv(tmp_path / "train.csv", 12)
    with open(train, "a") as fh:
        fh.write('99,"",the owl,1\n')  # an empty text: the unknown id, weight 1
    out = tmp_path / "out"
    prepare(out, COLUMNS, train=train, validation=train, word_ngrams=2, subwords=(2, 3), buckets=50, token_weights="idf")
    assert (out / "train.jsonl").read_bytes() == (out / "validation.jsonl").read_bytes()  # validation is encoded afresh
    last = read_jsonl(out / "train.jsonl")[-1]
    assert (last["in0"], last["in0_weights"]) == ([0], [1.0])


def test_idf_tables_from_the_kept_tokens_equal_those_of_reading_the_file_again(tmp_path, monkeypatch):
    # the vocabulary pass keeps each training text's tokens for the IDF pass, up to a limit; past it the
    # IDF pass reads and tokenizes the file again: every written byte must be the same either way
    from object2vec.text import prepare as module

    train = write_csv(tmp_path / "train.csv", 12)
    options = {"word_ngrams": 2, "subwords": (2, 3), "buckets": 50, "token_weights": "idf"}
    prepare(tmp_path / "kept", COLUMNS, train=train, **options)
    monkeypatch.setattr(module._KeptTokens, "__init__", lambda self, limit=0: _keep_none(self))
    prepare(tmp_path / "read", COLUMNS, train=train, **options)
    written = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert {"train.jsonl", "enc0_idf.npy", "enc1_idf.npy"} <= set(written)
    assert written == sorted(p.name for p in (tmp_path / "read").iterdir())
    for name in written:
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "read" / name).read_bytes(), name


def _keep_none(kept):
    kept.texts, kept.strings, kept.kept, kept.limit = [], {}, 0, -1


def test_min_count_max_size_and_truncation_counts(tmp_path):
    train = write_csv(tmp_path / "train.csv", 16)
    report = prepare(tmp_path / "out", COLUMNS, train=train, min_count=5, max_seq_len=5)
    vocab = report.vocabs[0]
    assert set(vocab.ids) == {"<unk>", "the", "sat", "in", "."}  # each animal and place is seen only 4 times
    assert report.splits[0].sides[0].truncated(5) == 16 and report.hyperparameters["enc0_max_seq_len"] == "5"
    small = prepare(tmp_path / "small", COLUMNS, train=train, max_size=3)
    assert small.vocabs[0].ids == {"<unk>": 0, "the": 1, ".": 2}


def test_separate_vocabularies_set_enc1_explicitly(tmp_path):
    report = prepare(tmp_path / "out", COLUMNS, train=write_csv(tmp_path / "t.csv", 4))
    hp = report.hyperparameters
    assert hp["enc0_vocab_file"] == "enc0_vocab.json" and hp["enc1_vocab_file"] == "enc1_vocab.json"
    assert hp["enc1_network"] == "hcnn"  # enc1_network=enc0 would copy enc0's vocabulary


def test_an_earlier_vocabulary_is_applied_to_new_files(tmp_path):
    prepare(tmp_path / "first", COLUMNS, train=write_csv(tmp_path / "train.csv", 8), shared_vocab=True)
    later = write_csv(tmp_path / "later.csv", 3, offset=100)
    report = prepare(tmp_path / "second", COLUMNS, test=later, vocab_from=tmp_path / "first")
    assert not (tmp_path / "second" / "vocab.json").exists()
    assert report.vocabs[0].ids == json.loads((tmp_path / "first" / "vocab.json").read_text())
    assert read_jsonl(tmp_path / "second" / "test.jsonl")[0]["in0"] == read_jsonl(tmp_path / "first" / "train.jsonl")[0]["in0"]


def test_vectors_are_trimmed_to_the_vocabulary_and_can_add_their_frequent_words(tmp_path):
    vectors = tmp_path / "glove.txt"
    vectors.write_text("the 1 0\nzebra 0 1\ncat 0.5 0.5\nyak 2 2\n")
    report = prepare(
        tmp_path / "out", COLUMNS, train=write_csv(tmp_path / "t.csv", 4), shared_vocab=True, vectors=vectors, vector_words=2
    )
    assert "zebra" in report.vocabs[0].ids and "yak" not in report.vocabs[0].ids
    with gzip.open(tmp_path / "out" / "vectors.txt.gz", "rt") as fh:
        assert fh.read() == "the 1 0\nzebra 0 1\ncat 0.5 0.5\n"
    assert report.hyperparameters["enc0_pretrained_embedding_file"] == "vectors.txt.gz"
    assert report.hyperparameters["enc0_token_embedding_dim"] == "2"


# --------------------------------------------------------------------------------------------------
# Problems: named, and nothing half-written


def test_an_unknown_validation_label_is_reported_with_its_line_and_nothing_is_written(tmp_path):
    train = write_csv(tmp_path / "train.csv", 4)
    valid = tmp_path / "valid.csv"
    valid.write_text("id,left,right,label\n1,a,b,1\n2,a,b,7\n3,a\n")
    with pytest.raises(DataError) as err:
        prepare(tmp_path / "out", COLUMNS, train=train, validation=valid)
    assert err.value.problems == [
        f"{valid}:3: label '7' is not a training class; expected one of 0, 1",
        f"{valid}:4: has 2 fields; expected at least 4 (check --delimiter and --no-quoting)",
    ]
    assert not list((tmp_path / "out").glob("*.jsonl")) and not list((tmp_path / "out").glob(".*"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (Table(left="question", right="right"), r"no column 'question'; the header has id, left, right, label"),
        (Table(left="left", right="right", header=False), "are names, but --no-header was given"),
        (Table(left="left", right="right", format="auto"), "cannot tell the format"),
    ],
)
def test_bad_column_choices_are_refused_with_the_choices_at_hand(tmp_path, table, message):
    path = write_csv(tmp_path / "train.csv", 2)
    if "format" in message:
        path = path.rename(tmp_path / "train.data")
    with pytest.raises(PrepareError, match=message):
        prepare(tmp_path / "out", table, train=path)


def test_vocab_from_or_train_is_required(tmp_path):
    with pytest.raises(PrepareError, match="give --train, or --vocab-from"):
        prepare(tmp_path / "out", COLUMNS, test=write_csv(tmp_path / "t.csv", 2))


# --------------------------------------------------------------------------------------------------
# Options: one frozen value, the command line's defaults included


def test_an_options_object_and_keyword_changes_prepare_the_same_files(tmp_path):
    train = write_csv(tmp_path / "train.csv", 8)
    prepare(tmp_path / "a", COLUMNS, PrepareOptions(train=train, shared_vocab=True, min_count=2))
    prepare(tmp_path / "b", COLUMNS, train=str(train), shared_vocab=True, min_count=2)
    prepare(tmp_path / "c", COLUMNS, PrepareOptions(train=train), shared_vocab=True, min_count=2)
    for name in ("train.jsonl", "vocab.json", "hyperparameters.json", "tokenization.json"):
        assert (
            (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
        )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("min_count", 0, "an integer >= 1"),
        ("max_size", 1, "an integer >= 2"),
        ("label_type", "ordinal", "one of auto, class, number"),
        ("length_percentile", 0.5, "a number in [1, 100]"),
        ("max_seq_len", 5001, "an integer in [1, 5000]"),
        ("vector_words", -1, "an integer >= 0"),
        ("lowercase", "yes", "true, false or None"),
    ],
)
def test_an_invalid_option_is_refused_naming_the_field_and_the_range(field, value, expected):
    with pytest.raises(PrepareError, match=rf"^{field} must be {re.escape(expected)}.*; got {re.escape(repr(value))}$"):
        PrepareOptions(**{field: value})


def test_an_unknown_option_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(TypeError, match=r"unknown prepare option.* min_counts; the options are train, validation"):
        prepare(tmp_path / "out", COLUMNS, train=write_csv(tmp_path / "t.csv", 2), min_counts=2)


def test_every_option_is_a_flag_of_the_command_with_the_same_default():
    command = main.commands["prepare"]
    flags = command.make_context("prepare", ["-o", "out", "--left", "a", "--right", "b"]).params  # nothing else given
    for field in dataclasses.fields(PrepareOptions):
        assert field.name in flags, field.name
        assert flags[field.name] == field.default, field.name


# --------------------------------------------------------------------------------------------------
# End to end: prepare, train with --auxiliary, read strings after loading


TINY = ["-p", "enc0_network=pooled_embedding", "-p", "enc_dim=8", "-p", "mlp_dim=8", "-p", "epochs=2", "-p", "learning_rate=0.05"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A model prepared and trained through the command line, as a user would."""
    tmp = tmp_path_factory.mktemp("e2e")
    runner = CliRunner()
    write_csv(tmp / "train.csv", 64)
    result = runner.invoke(
        main,
        [
            "prepare",
            "--train",
            str(tmp / "train.csv"),
            "--left",
            "left",
            "--right",
            "right",
            "--label",
            "label",
            "--shared-vocab",
            "-o",
            str(tmp / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "vocabulary vocab.json" in result.output and "enc0_vocab_size=" in result.output
    result = runner.invoke(
        main,
        [
            "train",
            "--train",
            str(tmp / "data" / "train.jsonl"),
            "--auxiliary",
            str(tmp / "data"),
            "--hyperparameters",
            str(tmp / "data" / "hyperparameters.json"),
            *TINY,
            "-o",
            str(tmp / "model"),
        ],
    )
    assert result.exit_code == 0, result.output
    return tmp


def test_a_loaded_model_reads_strings_exactly_as_prepare_tokenized_them(trained):
    model = Object2Vec.load(trained / "model", device="cpu")
    ids = read_jsonl(trained / "data" / "train.jsonl")[:5]
    texts = [{"in0": sentence(i), "in1": sentence(i) if i % 2 else sentence(i + 1)} for i in range(5)]
    np.testing.assert_array_equal(model.predict(texts), model.predict([{"in0": r["in0"], "in1": r["in1"]} for r in ids]))
    np.testing.assert_array_equal(model.embed(in1=[sentence(3)]), model.embed(in1=[ids[3]["in0"]]))
    assert sorted(p.name for p in (trained / "model" / "auxiliary").iterdir()) == ["tokenization.json", "vocab.json"]


def test_strings_and_ids_mix_and_text_files_keep_their_line_numbers(trained, tmp_path):
    model = Object2Vec.load(trained / "model", device="cpu")
    assert model.predict([{"in0": "the cat", "in1": [1, 2]}]).shape == (1, 2)
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"label": 1, "in0": "the cat", "in1": "the dog"}\n\n{"label": 5, "in0": "a", "in1": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:3: label: 5 is out of range"):
        model.evaluate(path)


def test_a_model_without_vocabulary_refuses_strings_with_the_reason(tmp_path):
    from object2vec.data.synthetic import make_pairs

    model = Object2Vec(enc0_max_seq_len=10, enc0_vocab_size=200, enc0_network="pooled_embedding", enc_dim=8, epochs=1)
    model.fit(make_pairs(64, seed=1))
    with pytest.raises(DataError, match=r"in0: got \"a sentence\" \(a string\)"):
        model.predict([{"in0": "a sentence", "in1": [1]}])


def test_id_files_and_text_files_evaluate_alike(trained, tmp_path):
    model = Object2Vec.load(trained / "model", device="cpu")
    texts = tmp_path / "texts.jsonl"
    with open(trained / "train.csv") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh][1:]
    texts.write_text("".join(json.dumps({"label": int(r[3]), "in0": r[1], "in1": r[2]}) + "\n" for r in rows))
    assert model.evaluate(texts) == model.evaluate(trained / "data" / "train.jsonl")


def test_a_hugging_face_tokenizer_is_copied_and_rebuilt_with_the_vocabulary(tmp_path):
    from object2vec.text.tokenize import TextCodec
    from test_text import _word_level_tokenizer

    tokenizer = _word_level_tokenizer(tmp_path / "my-tokenizer.json")
    path = tmp_path / "t.csv"
    path.write_text("left,right,label\nHello world!,hello,1\nworld,Hello hello,0\n")
    prepare(tmp_path / "out", COLUMNS, train=path, shared_vocab=True, tokenizer_file=tokenizer)
    settings = json.loads((tmp_path / "out" / "tokenization.json").read_text())
    assert settings["tokenizer"] == {"type": "huggingface", "file": "tokenizer.json", "lowercase": False}
    codec = TextCodec.from_folder(tmp_path / "out", ("vocab.json", "vocab.json"))
    assert codec is not None and codec.encode("Hello world!", 0) == read_jsonl(tmp_path / "out" / "train.jsonl")[0]["in0"]


def test_prepare_errors_are_one_line_on_the_command_line(tmp_path):
    path = write_csv(tmp_path / "train.csv", 2)
    result = CliRunner().invoke(
        main, ["prepare", "--train", str(path), "--left", "question", "--right", "right", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2 and result.output.startswith("error: ") and "no column 'question'" in result.output
    assert "Traceback" not in result.output


def test_the_endpoint_and_batch_transform_read_strings_too(trained, tmp_path):
    from fastapi.testclient import TestClient

    from object2vec.serving.app import ServeSettings, create_app
    from object2vec.serving.predictor import Predictor
    from object2vec.serving.transform import transform

    model = Object2Vec.load(trained / "model", device="cpu")
    predictor = Predictor(model)
    client = TestClient(create_app(predictor, ServeSettings(model_dir=str(trained / "model"))))
    body = {"instances": [{"in0": sentence(1), "in1": sentence(2)}, {"in1": sentence(3)}]}
    predictions = client.post("/invocations", json=body).json()["predictions"]
    np.testing.assert_allclose(predictions[0]["scores"], model.predict([body["instances"][0]])[0], rtol=1e-6)
    np.testing.assert_allclose(predictions[1]["embeddings"], model.embed(in1=[sentence(3)])[0], rtol=1e-6)
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps({"id": 7, "in0": sentence(1), "in1": sentence(2)}) + "\n")
    transform(predictor, path, tmp_path / "out.jsonl")
    (line,) = read_jsonl(tmp_path / "out.jsonl")
    assert line["id"] == 7 and line["scores"] == predictions[0]["scores"]
