"""Pretrained vectors from the auxiliary channel: reading, initialising rows, freezing them, and every error."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from object2vec import Object2Vec
from object2vec.errors import Object2VecError
from object2vec.text.auxiliary import VectorFile
from object2vec.text.tokenize import AuxiliaryFileError

DIM = 8
WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "park"]
MISSING = {"park"}  # a vocabulary word the vector file lacks
VOCAB = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}  # ids 0..8


def vector_of(word: str) -> list[float]:
    rng = np.random.default_rng(sum(map(ord, word)))
    return [round(float(x), 4) for x in rng.normal(0, 0.5, DIM)]


def glove_lines(words=WORDS) -> list[str]:
    lines = [f"{w} {' '.join(map(str, vector_of(w)))}" for w in words if w not in MISSING]
    # "zebra" is not in the vocabulary: the reader skips its line without parsing the values
    return [*lines[:1], "zebra this line is not parsed", *lines[1:]]


def make_channel(folder: Path, *, gz: bool = False, lines: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    text = "\n".join(glove_lines() if lines is None else lines) + "\n"
    if gz:
        with gzip.open(folder / "glove.txt.gz", "wt") as fh:
            fh.write(text)
    else:
        (folder / "glove.txt").write_text(text)
    return folder


def pairs(n: int = 48) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        a, b = rng.integers(0, 9, 3).tolist(), rng.integers(0, 9, 2).tolist()
        out.append({"label": i % 2, "in0": a, "in1": b})
    return out


def hyperparameters(**changes) -> dict:
    hp = {
        "enc0_network": "pooled_embedding",
        "enc0_max_seq_len": 4,
        "enc0_vocab_size": 12,  # ids 9-11 have no word: they start random and train
        "enc0_vocab_file": "vocab.json",
        "enc0_pretrained_embedding_file": "glove.txt",
        "enc_dim": DIM,
        "mlp_dim": 8,
        "mlp_layers": 1,
        "epochs": 2,
        "mini_batch_size": 16,
        "learning_rate": 0.05,
    }
    hp.update(changes)
    return hp


def table(model: Object2Vec, side: int = 0) -> torch.Tensor:
    return model.model_.encoders[side].embedding.weight.detach().cpu().clone()


FOUND = [VOCAB[w] for w in WORDS if w not in MISSING]
EXPECTED = torch.tensor([vector_of(w) for w in WORDS if w not in MISSING])


# --------------------------------------------------------------------------------------------------
# Reading vector files


def test_glove_and_gzip_files_give_the_same_vectors(tmp_path):
    plain = VectorFile(make_channel(tmp_path / "a") / "glove.txt")
    packed = VectorFile(make_channel(tmp_path / "b", gz=True) / "glove.txt.gz")
    want = lambda w, _k: w in VOCAB  # noqa: E731
    assert plain.dim == packed.dim == DIM
    a, b = list(plain.scan(want)), list(packed.scan(want))
    assert [w for w, _ in a] == [w for w, _ in b] == [w for w in WORDS if w not in MISSING]
    np.testing.assert_array_equal(np.stack([v for _, v in a]), np.stack([v for _, v in b]))


def test_word2vec_text_header_is_skipped(tmp_path):
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\ncat 1 2 3\ndog 4 5 6\n")
    vf = VectorFile(path)
    assert vf.dim == 3 and [w for w, _ in vf.scan(lambda w, k: True)] == ["cat", "dog"]


def test_a_word_containing_spaces_is_read_whole(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a 1 2\n. . . 3 4\nb 5 6\n")  # glove.840B has entries like ". . ."
    assert {w: v.tolist() for w, v in VectorFile(path).scan(lambda w, k: True)} == {"a": [1, 2], ". . .": [3, 4], "b": [5, 6]}


def test_the_first_vector_of_a_repeated_word_wins(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("cat 1 1\ncat 2 2\n")
    rows, vectors = VectorFile(path).lookup(__import__("object2vec.text.tokenize").text.tokenize.Vocabulary({"cat": 3}))
    assert rows.tolist() == [3] and vectors.tolist() == [[1, 1]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no vectors"),
        ("cat\n", r"v.txt:1: 'cat' has no values"),
        ("cat 1 2 3\ndog 1 2\n", r"v.txt:2: 'dog' has 2 values; expected 3 like the first vector"),
        ("cat 1 2\ndog 1 x\n", r"v.txt:2: 'dog' has value 'x'; expected a number"),
        ("cat 1 2\ndog 1 nan\n", r"v.txt:2: 'dog' has a non-finite value"),
    ],
)
def test_a_malformed_vector_file_is_refused_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "v.txt"
    path.write_text(content)
    with pytest.raises(AuxiliaryFileError, match=message):
        list(VectorFile(path).scan(lambda w, k: True))


def test_a_truncated_gzip_file_is_reported_not_a_traceback(tmp_path):
    data = gzip.compress(("\n".join(glove_lines() * 50) + "\n").encode())
    path = tmp_path / "v.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AuxiliaryFileError, match=r"v.txt.gz:\d+: cannot be read .*expected a complete file"):
        list(VectorFile(path).scan(lambda w, k: w in VOCAB))


# --------------------------------------------------------------------------------------------------
# Initialising and freezing rows


def test_found_words_start_from_their_vectors_and_coverage_is_logged(tmp_path, caplog):
    aux = make_channel(tmp_path)
    with caplog.at_level(logging.INFO, logger="object2vec"):
        model = Object2Vec(**hyperparameters()).fit(pairs(), auxiliary=aux, max_steps=1)
    assert torch.equal(table(model)[FOUND], EXPECTED)  # frozen, so still exactly the file's values
    assert "enc0_pretrained_embedding_file=glove.txt: 7 of 9 vocabulary rows found (77.8%) and frozen" in caplog.text


OPTIMIZERS = [("dense", name) for name in ("adam", "adagrad", "rmsprop", "sgd", "adadelta")] + [
    ("row_sparse", name) for name in ("adam", "adagrad", "sgd")
]


@pytest.mark.parametrize(("storage", "optimizer"), OPTIMIZERS)
def test_frozen_rows_stay_bit_identical_under_weight_decay(tmp_path, storage, optimizer):
    # weight decay adds wd * w to a zero gradient, so freezing must do more than zero the gradient
    hp = hyperparameters(token_embedding_storage_type=storage, optimizer=optimizer, weight_decay=0.1)
    trained = table(Object2Vec(**hp).fit(pairs(), auxiliary=make_channel(tmp_path)))
    assert torch.equal(trained[FOUND], EXPECTED)


@pytest.mark.parametrize(("storage", "optimizer"), OPTIMIZERS)
def test_rows_not_taken_from_the_file_keep_training_while_pretrained_ones_are_frozen(tmp_path, storage, optimizer):
    aux = make_channel(tmp_path)
    hp = hyperparameters(token_embedding_storage_type=storage, optimizer=optimizer, weight_decay=0.1)
    one_step = table(Object2Vec(**hp).fit(pairs(), auxiliary=aux, max_steps=1))
    trained = table(Object2Vec(**hp).fit(pairs(), auxiliary=aux))
    unknown_and_park = [0, VOCAB["park"]]  # rows the data uses that the file does not cover
    assert not torch.equal(trained[unknown_and_park], one_step[unknown_and_park])
    assert torch.equal(trained[FOUND], one_step[FOUND])


def test_tied_tables_are_initialised_and_frozen_once(tmp_path):
    aux = make_channel(tmp_path)
    hp = hyperparameters(
        tied_token_embedding_weight=True, enc1_network="pooled_embedding", enc1_max_seq_len=4, enc1_vocab_size=12
    )
    model = Object2Vec(**hp).fit(pairs(), auxiliary=aux)
    assert model.model_.encoders[0].embedding is model.model_.encoders[1].embedding
    assert torch.equal(table(model, 1)[FOUND], EXPECTED)


def test_unfrozen_pretrained_rows_train(tmp_path):
    aux = make_channel(tmp_path)
    model = Object2Vec(**hyperparameters(enc0_freeze_pretrained_embedding=False)).fit(pairs(), auxiliary=aux)
    assert not torch.equal(table(model)[FOUND], EXPECTED)


def test_gzip_vectors_train_like_plain_ones(tmp_path):
    a = Object2Vec(**hyperparameters()).fit(pairs(), auxiliary=make_channel(tmp_path / "a"))
    b = Object2Vec(**hyperparameters(enc0_pretrained_embedding_file="glove.txt.gz")).fit(
        pairs(), auxiliary=make_channel(tmp_path / "b", gz=True)
    )
    assert torch.equal(table(a), table(b))


def test_a_saved_model_needs_no_vector_file_to_load(tmp_path):
    aux = make_channel(tmp_path / "aux")
    model = Object2Vec(**hyperparameters()).fit(pairs(), auxiliary=aux)
    model.save(tmp_path / "model")
    (aux / "glove.txt").unlink()
    again = Object2Vec.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(again.predict(pairs()[:5]), model.predict(pairs()[:5]))


# --------------------------------------------------------------------------------------------------
# Errors, each before training starts


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"enc_dim": 4}, r"glove.txt: vectors have 8 dimensions, but enc0's token embeddings have 4; set enc_dim=8"),
        ({"enc0_network": "hcnn", "enc0_token_embedding_dim": 300}, r"have 300; set enc0_token_embedding_dim=8"),
        ({"enc0_vocab_size": 5}, r"word 'park' has id 8, not less than enc0_vocab_size=5"),
        ({"enc0_vocab_file": ""}, r"enc0_pretrained_embedding_file=glove.txt needs enc0_vocab_file"),
        ({"enc0_pretrained_embedding_file": "missing.txt"}, r"missing.txt: cannot be read \(No such file or directory\)"),
        (
            {"tied_token_embedding_weight": True, "enc1_network": "pooled_embedding", "enc1_max_seq_len": 4, "enc1_vocab_size": 12,
             "enc1_pretrained_embedding_file": "other.txt"},
            r"tied_token_embedding_weight=True shares one token table.*enc1_pretrained_embedding_file='other.txt'",
        ),
    ],
)  # fmt: skip
def test_auxiliary_file_problems_are_clear_errors(tmp_path, changes, message):
    aux = make_channel(tmp_path)
    with pytest.raises(AuxiliaryFileError, match=message) as err:
        Object2Vec(**hyperparameters(**changes)).fit(pairs(), auxiliary=aux)
    assert isinstance(err.value, Object2VecError)


def test_naming_auxiliary_files_without_a_channel_says_how_to_pass_one():
    with pytest.raises(AuxiliaryFileError, match=r"enc0_vocab_file=vocab.json.*pass --auxiliary DIR"):
        Object2Vec(**hyperparameters()).fit(pairs())


def test_a_malformed_line_of_a_vocabulary_word_stops_training_with_its_line(tmp_path):
    lines = glove_lines()
    lines[2] = "cat 0.1 0.2"  # line 3
    aux = make_channel(tmp_path, lines=lines)
    with pytest.raises(AuxiliaryFileError, match=r"glove.txt:3: 'cat' has 2 values; expected 8"):
        Object2Vec(**hyperparameters()).fit(pairs(), auxiliary=aux)
