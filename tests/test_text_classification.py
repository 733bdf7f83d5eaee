"""Text classification end to end: prepare's tasks and features, label-embedding prediction, the sampling extensions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import epoch_batches
from object2vec.errors import HyperparameterError
from object2vec.hyperparameters import Hyperparameters
from object2vec.retrieval.labels import label_catalogue, predict_labels, top_labels
from object2vec.retrieval.recommend import pair_scores
from object2vec.text.prepare import PrepareError, Table, prepare

TOPICS = {
    "sport": ["match", "goal", "team", "coach", "league"],
    "money": ["bank", "stocks", "market", "profit", "shares"],
    "tech": ["chip", "phone", "software", "laptop", "robot"],
}


def write_documents(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    with path.open("w") as fh:
        for i in range(n):
            topic = names[i % 3]
            words = rng.choice(TOPICS[topic], 4).tolist() + rng.choice(["the", "a", "today", "news"], 3).tolist()
            fh.write(json.dumps({"text": " ".join(rng.permutation(words)), "topic": topic}) + "\n")
    return path


ONE_TEXT = Table(left="text", right=None, label="topic")
TRAIN = dict(enc_dim=8, mlp_dim=8, mlp_layers=0, epochs=12, learning_rate=0.05, token_embedding_storage_type="row_sparse")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_classify_writes_one_text_per_record_with_a_constant_in1(tmp_path):
    report = prepare(tmp_path / "out", ONE_TEXT, train=write_documents(tmp_path / "t.jsonl", 30), task="classify")
    first = read_jsonl(tmp_path / "out" / "train.jsonl")[0]
    assert first["in1"] == [0] and first["label"] in (0, 1, 2) and "in0_weights" not in first
    hp = report.hyperparameters
    assert (hp["enc1_vocab_size"], hp["enc1_max_seq_len"], hp["num_classes"]) == ("2", "1", "3")
    assert hp["enc0_network"] == hp["enc1_network"] == "pooled_embedding"
    assert not any(name.startswith(("enc0_pooling", "negative_sampling")) for name in hp)  # plain SageMaker


def test_label_pairs_write_positive_pairs_with_the_label_token_and_the_labels_file(tmp_path):
    report = prepare(tmp_path / "out", ONE_TEXT, train=write_documents(tmp_path / "t.jsonl", 30), task="label-pairs")
    out = tmp_path / "out"
    classes = json.loads((out / "labels.json").read_text())
    records = read_jsonl(out / "train.jsonl")
    assert {r["label"] for r in records} == {1}
    assert records[0]["in1"] == [classes["sport"]]
    assert read_jsonl(out / "labels.jsonl") == [{"id": name, "in1": [i]} for name, i in classes.items()]
    hp = report.hyperparameters
    assert (hp["num_classes"], hp["negative_sampling_rate"]) == ("2", "2")
    assert hp["negative_sampling_distinct"] == hp["negative_sampling_grouped"] == "True"


def test_features_add_hashed_ids_after_the_vocabulary_and_idf_weights(tmp_path):
    report = prepare(
        tmp_path / "out", ONE_TEXT, train=write_documents(tmp_path / "t.jsonl", 30), task="classify",
        word_ngrams=2, subwords=(3, 4), buckets=50, token_weights="idf",
    )  # fmt: skip
    out = tmp_path / "out"
    vocab_size = len(json.loads((out / "vocab.json").read_text()))
    record = read_jsonl(out / "train.jsonl")[0]
    assert report.hyperparameters["enc0_vocab_size"] == str(vocab_size + 50)
    assert report.hyperparameters["enc0_pooling"] == "weighted_mean"
    assert max(record["in0"]) >= vocab_size and max(record["in0"]) < vocab_size + 50
    assert len(record["in0_weights"]) == len(record["in0"]) and min(record["in0_weights"]) >= 1.0
    settings = json.loads((out / "tokenization.json").read_text())
    assert settings["format_version"] == 2
    assert settings["features"]["in0"] == {
        "word_ngrams": 2, "subwords": [3, 4], "buckets": 50, "weights": "idf", "idf_file": "enc0_idf.npy",
    }  # fmt: skip
    assert np.load(out / "enc0_idf.npy").shape == (vocab_size + 50,)


@pytest.mark.parametrize(
    "table, kwargs, message",
    [
        (Table(left="text", right="text", label="topic"), {"task": "classify"}, "--right is not used"),
        (Table(left="text", right=None), {"task": "classify"}, "needs the label column"),
        (Table(left="text", right=None, label="topic"), {}, "--task pairs reads two texts"),
        (ONE_TEXT, {"task": "classify", "buckets": 10}, "give --word-ngrams 2 or more, or --subwords"),
        (ONE_TEXT, {"task": "sort"}, "task must be one of pairs, classify, label-pairs"),
    ],
)
def test_task_and_feature_options_that_do_not_fit_are_refused(tmp_path, table, kwargs, message):
    with pytest.raises(PrepareError, match=message):
        prepare(tmp_path / "out", table, train=write_documents(tmp_path / "t.jsonl", 6), **kwargs)


@pytest.fixture(scope="module")
def label_model(tmp_path_factory) -> tuple[Object2Vec, Path]:
    tmp = tmp_path_factory.mktemp("labels")
    out = tmp / "data"
    prepare(out, ONE_TEXT, train=write_documents(tmp / "t.jsonl", 90), task="label-pairs", word_ngrams=2, buckets=64,
            token_weights="idf")  # fmt: skip
    hp = json.loads((out / "hyperparameters.json").read_text())
    model = Object2Vec(device="cpu", seed=0, **{**hp, **TRAIN}).fit(out / "train.jsonl", auxiliary=out)
    model.save(tmp / "model")
    return Object2Vec.load(tmp / "model", device="cpu"), out


def test_every_label_is_scored_and_the_top_k_come_best_first(label_model):
    model, out = label_model
    labels = label_catalogue(model, out / "labels.jsonl")
    u = model.embed(in0=["goal goal team", "bank profit market", "chip robot phone"])
    scores = 1 / (1 + np.exp(-pair_scores(model, u, labels.vectors(model)).astype(np.float64)))
    best = top_labels(model, u, labels, k=2)
    for row, (ids, values) in zip(scores, best, strict=True):
        order = np.argsort(-row, kind="stable")[:2]
        assert ids == [labels.ids[j] for j in order]
        np.testing.assert_allclose(values, row[order])
        assert values[0] >= values[1]
    assert [ids[0] for ids, _ in best] == ["sport", "money", "tech"]
    assert len(top_labels(model, u, labels, k=10)[0][0]) == 3  # k beyond the labels: every label


def test_predict_labels_reads_text_with_the_prepared_features(label_model):
    model, out = label_model
    ((ids, scores),) = predict_labels(model, ["the coach of the team"], out / "labels.jsonl", k=1)
    assert ids == ["sport"] and 0.5 < scores[0] <= 1.0


def test_predict_labels_on_the_command_line_writes_top_k_per_line(label_model, tmp_path):
    model, out = label_model
    model.save(tmp_path / "model")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "d1", "in0": "market shares stocks"}\n{"id": "d2", "in0": "laptop software"}\n')
    result = CliRunner().invoke(
        main, ["predict", str(tmp_path / "model"), str(docs), "--labels", str(out / "labels.jsonl"), "--top-k", "3"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["id"], r["labels"][0], len(r["scores"])) for r in lines] == [("d1", "money", 3), ("d2", "tech", 3)]
    assert all(r["scores"] == sorted(r["scores"], reverse=True) for r in lines)


def pairs(n: int, in1: list[int], lengths: list[int] | None = None) -> PairData:
    lengths = lengths or [1] * n
    return PairData(Side.from_lists([[1] * k for k in lengths]), Side.from_lists([[t] for t in in1]), np.ones(n, np.int8))


def test_distinct_negatives_never_repeat_the_positives_in1():
    data = pairs(60, [i % 3 for i in range(60)])
    hp = Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=5, negative_sampling_rate=4, negative_sampling_distinct=True)
    plain = hp.replace(negative_sampling_distinct=False)
    for epoch in (1, 2):
        for chosen, same_allowed in ((hp, False), (plain, True)):
            batch = epoch_batches(data, chosen, epoch, seed=0)
            left = np.concatenate([b.left for b in batch])
            right = np.concatenate([b.right for b in batch])
            labels = np.concatenate([b.labels for b in batch])
            negatives = labels == 0
            assert negatives.sum() == 240
            same = (left[negatives] % 3) == (right[negatives] % 3)
            assert same.any() == same_allowed


def test_distinct_negatives_need_negative_sampling():
    with pytest.raises(HyperparameterError, match="negative_sampling_distinct=True changes how negatives are drawn"):
        Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=5, negative_sampling_distinct=True).resolve()


def test_token_budget_batches_hold_at_most_the_budget_and_every_pair_once():
    lengths = [1, 9, 3, 3, 20, 2, 2, 2, 5, 7]
    data = pairs(10, [0] * 10, lengths)
    hp = Hyperparameters(enc0_max_seq_len=30, enc0_vocab_size=5, mini_batch_tokens=12, mini_batch_size=3)
    batches = epoch_batches(data, hp, 1, seed=0)
    seen = np.sort(np.concatenate([b.left for b in batches]))
    assert seen.tolist() == list(range(10))
    for b in batches:
        tokens = sum(lengths[i] + 1 for i in b.left)
        assert len(b.left) <= 3 and (tokens <= 12 or len(b.left) == 1)


def test_grouped_negatives_follow_their_positive_pair():
    labels = np.array([1, 0, 1, 1, 0, 1], np.int8)
    data = PairData(Side.from_lists([[i] for i in range(6)]), Side.from_lists([[i % 3] for i in range(6)]), labels)
    hp = Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=6, negative_sampling_rate=2, negative_sampling_grouped=True)
    (batch,) = epoch_batches(data, hp.replace(mini_batch_size=100), 1, seed=0)
    starts = np.flatnonzero(np.diff(batch.left, prepend=-1) != 0)
    assert sorted(batch.left[starts].tolist()) == list(range(6))  # each record's pairs are one run
    for s, e in zip(starts, [*starts[1:], len(batch.left)], strict=True):
        record = batch.left[s]
        assert batch.right[s] == record and batch.labels[s] == labels[record]
        assert e - s == (3 if labels[record] == 1 else 1)
        assert (batch.labels[s + 1 : e] == 0).all() and (batch.right[s + 1 : e] != record).all()


def test_a_grouped_batch_encodes_each_document_once_and_scores_every_pair_alike():
    from object2vec.data.sampling import Batch
    from object2vec.nn.model import Object2VecNet
    from object2vec.training.batches import batch_inputs

    data = pairs(4, [0, 1, 2, 0], [2, 3, 1, 2])
    hp = Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=5, enc0_network="pooled_embedding", enc_dim=4, mlp_dim=4)
    net = Object2VecNet(hp).eval()
    batch = Batch(np.array([2, 2, 0, 2, 0]), np.array([2, 0, 0, 1, 3]), np.zeros(5, np.int8))
    once = batch_inputs(data, batch, torch.device("cpu"), once=True)
    assert once[1].tolist() == [2, 1]  # the lengths of records 0 and 2, each once
    assert torch.equal(net(*once), net(*batch_inputs(data, batch, torch.device("cpu"))))
