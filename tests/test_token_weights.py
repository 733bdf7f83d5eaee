"""Per-token weights in the data (``in0_weights``, for the weighted_mean pooling): read by every reader, or refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_lines
from object2vec import Object2Vec
from object2vec.data import jsonl as data_module
from object2vec.data.pairs import Schema, read_pairs
from object2vec.errors import DataError
from object2vec.native import kernels

WEIGHTED = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=False, num_classes=3, weighted=(True, False))


def lines(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        size = int(rng.integers(1, 6))
        ids, weights = rng.integers(0, 10, size).tolist(), [round(float(w), 3) + (i % 3) for w in rng.random(size)]
        out.append(json.dumps({"label": i % 3, "in0": ids, "in0_weights": weights, "in1": [i % 5]}))
    return out


def expected_weights(records: list[dict], limit: int = 4) -> np.ndarray:
    return np.asarray([w for r in records for w in r["in0_weights"][:limit]], dtype=np.float32)


def test_weights_are_read_beside_the_ids_and_truncated_with_them(tmp_path):
    text = lines(50)
    data = read_pairs(write_lines(tmp_path / "a.jsonl", *text), WEIGHTED)
    assert data.in0.weights is not None and data.in1.weights is None
    assert np.array_equal(data.in0.weights, expected_weights([json.loads(t) for t in text]))
    assert len(data.in0.weights) == len(data.in0.tokens)
    assert np.array_equal(data.in0.take_weights(np.array([2])), data.in0.weights[data.in0.offsets[2] : data.in0.offsets[3]])


@pytest.mark.parametrize("reader", ["compiled scanner", "pyarrow", "per-record fast", "per-record slow", "records", "cache"])
def test_every_reader_gives_the_same_weights(tmp_path, monkeypatch, reader):
    text = lines(300)
    path = write_lines(tmp_path / "a.jsonl", *text)
    want = expected_weights([json.loads(t) for t in text])
    if reader == "compiled scanner" and not kernels.available():
        pytest.skip("no C compiler here")
    if reader in ("compiled scanner", "pyarrow"):
        monkeypatch.setattr(data_module.Parser, "block", lambda *a: pytest.fail("read record by record"))
    if reader == "compiled scanner":
        monkeypatch.setattr(data_module.arrow_lines, "parse", lambda *a: pytest.fail("read by pyarrow"))
    if reader != "compiled scanner":
        monkeypatch.setattr(kernels, "parse_pairs", lambda *a: None)
    if reader.startswith("per-record"):
        monkeypatch.setattr(data_module.arrow_lines, "read_table", lambda *a: None)
    if reader == "per-record slow":
        monkeypatch.setattr(data_module.Parser, "_fast", lambda self, recs, where: None)
    if reader == "records":
        data = read_pairs([json.loads(t) for t in text], WEIGHTED)
    elif reader == "cache":
        read_pairs(path, WEIGHTED, cache=True)
        monkeypatch.setattr(data_module, "parse_file", lambda *a: pytest.fail("parsed again"))
        data = read_pairs(path, WEIGHTED, cache=True)
    else:
        data = read_pairs(path, WEIGHTED)
    assert np.array_equal(data.in0.weights, want)


def test_the_compiled_scanner_reads_weights_only_for_a_model_that_pools_by_them(tmp_path):
    if not kernels.available():
        pytest.skip("no C compiler here")
    block = ("\n".join(lines(3)) + "\n").encode()
    assert kernels.parse_pairs(block) is None  # a key beside label, in0 and in1: the whole block is refused
    scanned = kernels.parse_pairs(block, ("in0",))
    assert scanned is not None
    assert scanned[4]["in0"].tolist() == [w for t in lines(3) for w in json.loads(t)["in0_weights"]]


def test_weights_are_ignored_when_the_model_does_not_pool_by_them(tmp_path):
    unweighted = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=False, num_classes=3)
    data = read_pairs(write_lines(tmp_path / "a.jsonl", *lines(20)), unweighted)
    assert data.in0.weights is None


@pytest.mark.parametrize(
    "record, expected",
    [
        (
            {"in0": [1, 2]},
            "in0_weights: missing; expected a list of one weight (a finite number >= 0) per in0 token, not all 0 (in0 is pooled by a weighted mean)",
        ),
        ({"in0": [1, 2], "in0_weights": [1.0]}, "in0_weights: has 1 weights for 2 tokens"),
        ({"in0": [1, 2], "in0_weights": [1.0, -2]}, "in0_weights: weight 1 is -2"),
        ({"in0": [1, 2], "in0_weights": [1.0, "2"]}, 'in0_weights: weight 1 is "2"'),
        ({"in0": [1, 2], "in0_weights": [0, 0.0]}, "in0_weights: every weight is 0"),
        ({"in0": [1, 2], "in0_weights": "1 1"}, 'in0_weights: got "1 1" (a string)'),
        (
            {"in0": [1, 2, 3, 4, 5, 6], "in0_weights": [0, 0, 0, 0, 1, 1]},
            "in0_weights: the first 4 weights (max_seq_len) are all 0",
        ),
    ],
)
def test_bad_weights_are_named_with_file_line_and_field(tmp_path, record, expected):
    path = write_lines(tmp_path / "a.jsonl", json.dumps({"label": 1, "in1": [0], **record}))
    with pytest.raises(DataError) as err:
        read_pairs(path, WEIGHTED)
    (problem,) = err.value.problems
    assert problem.startswith(f"{path}:1: {expected}")


def test_a_weighted_mean_model_trains_on_the_weights_and_predicts_with_them():
    rng = np.random.default_rng(1)
    records = []
    for i in range(120):  # the class is in the heavy token; the light ones are noise from every class
        heavy = int(i % 2)
        noise = rng.integers(0, 2, 6).tolist()
        records.append({"label": heavy, "in0": [heavy, *noise], "in0_weights": [50.0] + [1.0] * 6, "in1": [0]})
    hp = dict(enc0_network="pooled_embedding", enc1_network="pooled_embedding", enc0_vocab_size=2, enc1_vocab_size=2,
              enc0_max_seq_len=8, enc1_max_seq_len=1, enc_dim=8, mlp_dim=8, epochs=8, learning_rate=0.05)  # fmt: skip
    weighted = Object2Vec(device="cpu", enc0_pooling="weighted_mean", **hp).fit(records)
    assert weighted.score(records) == 1.0
    with pytest.raises(DataError, match="in0_weights: missing"):
        weighted.predict([{"in0": [1, 0], "in1": [0]}])
