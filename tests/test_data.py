"""Reading pairs: formats, packed storage, truncation, and one clear message per bad record."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import write_lines
from object2vec.data.pairs import PairData, Schema, Side, read_pairs
from object2vec.errors import DataError
from object2vec.hyperparameters import Hyperparameters

SCHEMA = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=False, num_classes=3)
REGRESSION = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=True, num_classes=2)


def problems_of(path: Path, schema: Schema = SCHEMA) -> list[str]:
    with pytest.raises(DataError) as err:
        read_pairs(path, schema)
    return err.value.problems


def test_reads_pairs_into_packed_arrays(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl", '{"label": 1, "in0": [0, 9, 3], "in1": [4]}', '{"label": 2, "in0": [5], "in1": [0, 1]}'
    )
    data = read_pairs(path, SCHEMA)
    assert len(data) == 2
    assert data.in0.tokens.dtype == np.uint16 and data.in0.offsets.dtype == np.int64  # ids < 65,536
    assert data.in0.offsets.tolist() == [0, 3, 4]
    assert data.in0[0].tolist() == [0, 9, 3] and data.in1[1].tolist() == [0, 1]
    assert data.labels.tolist() == [1, 2] and data.labels.dtype == np.int8


def test_token_zero_is_an_ordinary_token(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 0, "in0": [0, 0], "in1": [0]}')
    data = read_pairs(path, SCHEMA)
    assert data.in0.lengths.tolist() == [2] and data.in0[0].tolist() == [0, 0]


def test_sequences_longer_than_max_seq_len_are_truncated(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 0, "in0": [1, 2, 3, 4, 5, 6], "in1": [1, 2, 3, 4]}')
    data = read_pairs(path, SCHEMA)
    assert data.in0[0].tolist() == [1, 2, 3, 4] and data.in1[0].tolist() == [1, 2, 3]


def test_gzip_files_and_channel_directories_are_read_in_name_order(tmp_path):
    channel = tmp_path / "train"
    channel.mkdir()
    write_lines(channel / "part-0.jsonl", '{"label": 0, "in0": [1], "in1": [1]}')
    (channel / "part-1.jsonl.gz").write_bytes(gzip.compress(b'{"label": 1, "in0": [2], "in1": [2]}\n'))
    (channel / ".hidden").write_text("not data")
    data = read_pairs(channel, SCHEMA)
    assert data.in0.tokens.tolist() == [1, 2] and data.labels.tolist() == [0, 1]


def test_extra_keys_and_blank_lines_are_tolerated(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1], "in1": [2], "id": "x7"}', "", "  ")
    assert len(read_pairs(path, SCHEMA)) == 1


def test_in_memory_records_are_validated_the_same_way():
    with pytest.raises(DataError, match=r"records\[1\]: in0: empty list"):
        read_pairs([{"label": 0, "in0": [1], "in1": [1]}, {"label": 0, "in0": [], "in1": [1]}], SCHEMA)


def test_regression_labels_are_float32(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 3.5, "in0": [1], "in1": [2]}', '{"label": 4, "in0": [1], "in1": [2]}')
    data = read_pairs(path, REGRESSION)
    assert data.labels.dtype == np.float32 and data.labels.tolist() == [3.5, 4.0]


def test_labels_are_optional_for_prediction(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"in0": [1], "in1": [2]}')
    assert read_pairs(path, SCHEMA, require_label=False).labels is None


def test_the_spec_example_lines_are_valid(tmp_path):
    path = write_lines(
        tmp_path / "spec.jsonl",
        '{"label": 0, "in0": [6, 17, 606, 19, 53, 67, 52, 12, 5, 10, 15, 10178, 7, 33, 652, 80, 15, 69, 821, 4], '
        '"in1": [16, 21, 13, 45, 14, 9, 80, 59, 164, 4]}',
        '{"label": 1, "in0": [22, 1016, 32, 13, 25, 11, 5, 64, 573, 45, 5, 80, 15, 67, 21, 7, 9, 107, 4], '
        '"in1": [22, 32, 13, 25, 1016, 573, 3252, 4]}',
    )
    hp = Hyperparameters(enc0_max_seq_len=20, enc0_vocab_size=10179)
    assert len(read_pairs(path, Schema.from_hyperparameters(hp))) == 2


# -- one message per kind of bad input: file:line: field: what is wrong; what was expected ------------


@pytest.mark.parametrize(
    "line,expected",
    [
        ('{"label": 1, "in0": [1], "in1": [2]', "a.jsonl:1: malformed JSON"),
        ("[1, 2]", "a.jsonl:1: record is a list; expected a JSON object"),
        ('"text"', "a.jsonl:1: record is a string; expected a JSON object"),
        ('{"label": 1, "in1": [2]}', "a.jsonl:1: in0: missing; expected a non-empty list of integer token ids"),
        ('{"label": 1, "in0": [1]}', "a.jsonl:1: in1: missing"),
        ('{"in0": [1], "in1": [2]}', "a.jsonl:1: label: missing; expected an integer class in [0, 3)"),
        (
            '{"label": 1, "in0": 5, "in1": [2]}',
            "a.jsonl:1: in0: got 5 (an integer); expected a non-empty list of integer token ids",
        ),
        ('{"label": 1, "in0": "1 2", "in1": [2]}', 'a.jsonl:1: in0: got "1 2" (a string)'),
        ('{"label": 1, "in0": [], "in1": [2]}', "a.jsonl:1: in0: empty list; expected at least one token id"),
        (
            '{"label": 1, "in0": [1, 10], "in1": [2]}',
            "a.jsonl:1: in0: token 1 is 10, not less than enc0_vocab_size=10; expected a token id in [0, 10) (raise enc0_vocab_size or re-index)",
        ),
        ('{"label": 1, "in0": [1], "in1": [5]}', "a.jsonl:1: in1: token 0 is 5, not less than enc1_vocab_size=5"),
        ('{"label": 1, "in0": [-1], "in1": [2]}', "a.jsonl:1: in0: token 0 is -1; expected a token id in [0, 10)"),
        ('{"label": 1, "in0": [1.5], "in1": [2]}', "a.jsonl:1: in0: token 0 is 1.5 (a float); expected an integer token id"),
        ('{"label": 1, "in0": [1.0], "in1": [2]}', "a.jsonl:1: in0: token 0 is 1.0 (a float)"),
        ('{"label": 1, "in0": [true], "in1": [2]}', "a.jsonl:1: in0: token 0 is true (a boolean)"),
        ('{"label": 1, "in0": [[1]], "in1": [2]}', "a.jsonl:1: in0: token 0 is [1] (a list)"),
        ('{"label": 1, "in0": [1e30], "in1": [2]}', "a.jsonl:1: in0: token 0 is 1e+30 (a float)"),
        (
            '{"label": 1, "in0": [18446744073709551615], "in1": [2]}',
            "a.jsonl:1: in0: token 0 does not fit in 64 bits; expected a token id in [0, 10)",
        ),
        ('{"label": 3, "in0": [1], "in1": [2]}', "a.jsonl:1: label: 3 is out of range; expected an integer class in [0, 3)"),
        ('{"label": -1, "in0": [1], "in1": [2]}', "a.jsonl:1: label: -1 is out of range"),
        ('{"label": 1.5, "in0": [1], "in1": [2]}', "a.jsonl:1: label: 1.5 is out of range"),
        ('{"label": "1", "in0": [1], "in1": [2]}', 'a.jsonl:1: label: got "1" (a string)'),
        ('{"label": true, "in0": [1], "in1": [2]}', "a.jsonl:1: label: got true (a boolean)"),
        ('{"label": NaN, "in0": [1], "in1": [2]}', "a.jsonl:1: label: nan is not a finite number"),
        ('{"label": null, "in0": [1], "in1": [2]}', "a.jsonl:1: label: got null (null)"),
    ],
)
def test_each_bad_input_class_gets_a_message_naming_file_line_and_field(tmp_path, line, expected):
    path = write_lines(tmp_path / "a.jsonl", line)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(str(tmp_path / expected.split(":", 1)[0]) + ":" + expected.split(":", 1)[1]), problems[0]


def test_regression_rejects_infinite_labels(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": Infinity, "in0": [1], "in1": [2]}')
    assert "label: inf is not a finite number; expected a finite number" in problems_of(path, REGRESSION)[0]


def test_integral_float_labels_are_accepted_as_classes(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1.0, "in0": [1], "in1": [2]}')
    assert read_pairs(path, SCHEMA).labels.tolist() == [1]


def test_empty_file_is_an_error(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl")
    assert problems_of(path) == [f"{path}: no records; expected at least one JSON object per line"]


def test_missing_file_and_empty_directory_are_errors(tmp_path):
    assert "no such file or directory" in problems_of(tmp_path / "nope.jsonl")[0]
    (tmp_path / "channel").mkdir()
    assert "holds no data files" in problems_of(tmp_path / "channel")[0]


def test_truncated_gzip_is_reported_not_raised(tmp_path):
    blob = gzip.compress(b'{"label": 0, "in0": [1], "in1": [1]}\n' * 1000)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    assert "cannot be read" in problems_of(path)[0]


def test_first_20_problems_are_listed_and_all_are_counted(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", *(['{"label": 9, "in0": [1], "in1": [2]}'] * 25))
    with pytest.raises(DataError) as err:
        read_pairs(path, SCHEMA)
    assert err.value.count == 25 and len(err.value.problems) == 20
    assert "... and 5 more" in str(err.value)
    assert str(err.value).startswith("25 data problems:")


def test_problems_in_late_chunks_name_the_right_line(tmp_path):
    good = '{"label": 0, "in0": [1], "in1": [2]}'
    lines = [good] * 70000
    lines[66000] = '{"label": 0, "in0": [1, 2, 11], "in1": [2]}'
    path = write_lines(tmp_path / "big.jsonl", *lines)
    assert problems_of(path) == [
        f"{path}:66001: in0: token 2 is 11, not less than enc0_vocab_size=10; expected a token id in [0, 10) "
        "(raise enc0_vocab_size or re-index)"
    ]


def test_take_gathers_rows_without_python_loops():
    side = Side.from_lists([[1, 2, 3], [4], [5, 6]])
    tokens, lengths = side.take(np.array([2, 0, 2]))
    assert tokens.tolist() == [5, 6, 1, 2, 3, 5, 6] and lengths.tolist() == [2, 3, 2]


def test_a_million_pairs_of_twenty_tokens_take_under_200_megabytes():
    n, length = 1_000_000, 20
    side = Side(np.zeros(n * length, np.int32), np.arange(0, (n + 1) * length, length, dtype=np.int64))
    data = PairData(side, side, np.zeros(n, np.int64))
    # two sides of 80 MB tokens + 8 MB offsets, plus 8 MB labels: ~10 million pairs fit in 2 GB
    assert data.nbytes < 200e6 * 1.0


# -- the binary cache ---------------------------------------------------------------------------------


def test_a_cached_file_is_not_parsed_again(tmp_path, monkeypatch):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1, 2], "in1": [3]}', '{"label": 0, "in0": [4], "in1": [0, 1]}')
    first = read_pairs(path, SCHEMA, cache=True)
    monkeypatch.setattr("object2vec.data.jsonl.parse_file", lambda *a: pytest.fail("parsed again"))
    again = read_pairs(path, SCHEMA, cache=True)
    for a, b in ((first.in0, again.in0), (first.in1, again.in1)):
        assert a.tokens.tolist() == b.tokens.tolist() and a.offsets.tolist() == b.offsets.tolist()
    assert first.labels.tolist() == again.labels.tolist()


def test_a_changed_file_is_parsed_again(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1], "in1": [3]}')
    read_pairs(path, SCHEMA, cache=True)
    write_lines(path, '{"label": 2, "in0": [5, 6], "in1": [3]}', '{"label": 0, "in0": [7], "in1": [1]}')
    data = read_pairs(path, SCHEMA, cache=True)
    assert data.labels.tolist() == [2, 0] and data.in0.tokens.tolist() == [5, 6, 7]


def test_schema_checks_and_truncation_still_apply_to_cached_data(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1, 2, 3, 4, 5, 9], "in1": [3]}')
    read_pairs(path, SCHEMA, cache=True)
    assert read_pairs(path, SCHEMA, cache=True).in0.tokens.tolist() == [1, 2, 3, 4]
    narrow = Schema(vocab_size=(5, 5), max_seq_len=(10, 3), regression=False, num_classes=3)
    with pytest.raises(DataError, match=r"a.jsonl:1: in0: token 4 is 5, not less than enc0_vocab_size=5"):
        read_pairs(path, narrow, cache=True)


def test_files_with_problems_are_not_cached(tmp_path):
    import os

    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [], "in1": [3]}')
    with pytest.raises(DataError):
        read_pairs(path, SCHEMA, cache=True)
    assert not any(Path(os.environ["OBJECT2VEC_CACHE_DIR"]).glob("*/*.npy"))


def test_an_unwritable_cache_folder_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("OBJECT2VEC_CACHE_DIR", str(blocker / "cache"))
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1], "in1": [3]}')
    assert len(read_pairs(path, SCHEMA, cache=True)) == 1


# -- shards for distributed training -----------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("gz", [False, True])
def test_shards_partition_the_file_exactly(tmp_path, world, gz):
    lines = [f'{{"label": {i % 3}, "in0": [{i % 10}], "in1": [{i % 5}], "id": {i}}}' for i in range(101)]
    path = write_lines(tmp_path / "a.jsonl", *lines)
    if gz:
        path = tmp_path / "a.jsonl.gz"
        path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    whole = read_pairs(path, SCHEMA)
    pieces = [read_pairs(path, SCHEMA, shard=(rank, world)) for rank in range(world)]
    assert sum(len(p) for p in pieces) == len(whole) == 101
    seen = sorted((int(p.in0[i][0]), int(p.in1[i][0]), int(p.labels[i])) for p in pieces for i in range(len(p)))
    assert seen == sorted((int(whole.in0[i][0]), int(whole.in1[i][0]), int(whole.labels[i])) for i in range(len(whole)))


def test_a_problem_in_a_shard_names_its_real_line(tmp_path):
    lines = ['{"label": 0, "in0": [1], "in1": [2]}'] * 50
    lines[40] = '{"label": 0, "in0": [99], "in1": [2]}'
    path = write_lines(tmp_path / "a.jsonl", *lines)
    with pytest.raises(DataError, match=r"a.jsonl:41: in0: token 0 is 99"):
        read_pairs(path, SCHEMA, shard=(1, 2))


def test_in_memory_records_are_sharded_by_position():
    records = [{"label": 0, "in0": [i], "in1": [1]} for i in range(7)]
    assert read_pairs(records, SCHEMA, shard=(1, 3)).in0.tokens.tolist() == [1, 4]


# -- narrow token storage and the block-by-block reader -------------------------------------------------


def test_ids_below_65536_are_stored_as_uint16_and_round_trip(tmp_path):
    wide = Schema(vocab_size=(65536, 65536), max_seq_len=(4, 4), regression=False, num_classes=2)
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [0, 65535, 7], "in1": [65535]}')
    data = read_pairs(path, wide)
    assert data.in0.tokens.dtype == np.uint16 and data.in0[0].tolist() == [0, 65535, 7]
    assert data.in1.tokens.tolist() == [65535]


def test_ids_from_65536_are_stored_as_int32_and_round_trip(tmp_path):
    wide = Schema(vocab_size=(70000, 70000), max_seq_len=(4, 4), regression=False, num_classes=2)
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1, 65536], "in1": [69999]}')
    data = read_pairs(path, wide)
    assert data.in0.tokens.dtype == np.int32 and data.in0[0].tolist() == [1, 65536]
    assert data.in1.tokens.tolist() == [69999]


def test_an_id_equal_to_a_65536_vocabulary_is_rejected_not_wrapped(tmp_path):
    wide = Schema(vocab_size=(65536, 65536), max_seq_len=(4, 4), regression=False, num_classes=2)
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [3, 65536], "in1": [65535]}')
    assert problems_of(path, wide) == [
        f"{path}:1: in0: token 1 is 65536, not less than enc0_vocab_size=65536; expected a token id in [0, 65536) "
        "(raise enc0_vocab_size or re-index)"
    ]


def test_uint16_batches_reach_the_model_as_int64():
    from object2vec.training.batches import side_tensors

    side = Side.from_lists([[65535, 0], [7]])
    assert side.tokens.dtype == np.uint16
    tokens, lengths = side_tensors(side, np.array([1, 0]), torch_cpu())
    assert str(tokens.dtype) == "torch.int64" and tokens.tolist() == [7, 65535, 0] and lengths.tolist() == [1, 2]


def torch_cpu():
    import torch

    return torch.device("cpu")


def _random_lines(rng: np.random.Generator, n: int, high: int, extra_fields: bool = True) -> list[str]:
    lines = []
    for i in range(n):
        in0 = rng.integers(0, high, rng.integers(1, 8)).tolist()
        in1 = rng.integers(0, high, rng.integers(1, 5)).tolist()
        label = int(rng.integers(0, 3)) if i % 7 else float(rng.integers(0, 3))  # some integral floats
        extra = ', "id": "x"' if extra_fields and i % 11 == 0 else ""
        lines.append(f'{{"label": {label}, "in0": {in0}, "in1": {in1}{extra}}}')
    return lines


@pytest.mark.parametrize("high", [10, 70000])
def test_reading_block_by_block_gives_the_same_arrays_as_record_by_record(tmp_path, monkeypatch, high):
    from object2vec.data import jsonl as data_module

    schema = Schema(vocab_size=(high, high), max_seq_len=(5, 4), regression=False, num_classes=3)
    lines = _random_lines(np.random.default_rng(high), 3000, high)
    lines[1234] = f'{{"label": 2, "in0": [{high - 1}], "in1": [0]}}'  # the widest id somewhere in the middle
    path = write_lines(tmp_path / "a.jsonl", *lines)
    whole = read_pairs(path, schema)
    monkeypatch.setattr(data_module, "_BLOCK_BYTES", 200)  # a few lines a block: many blocks, arrays grown
    blocks = read_pairs(path, schema)
    monkeypatch.setattr(data_module.arrow_lines, "read_table", lambda *a: None)  # the Python reader...
    python = read_pairs(path, schema)
    monkeypatch.setattr(data_module.Parser, "_fast", lambda self, recs, where: None)  # ...record by record
    slow = read_pairs(path, schema)
    for other in (blocks, python, slow):
        for a, b in ((whole.in0, other.in0), (whole.in1, other.in1)):
            assert a.tokens.dtype == b.tokens.dtype == (np.uint16 if high <= 65536 else np.int32)
            assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(whole.labels, other.labels)
    records = [orjson_loads(line) for line in lines]
    from_records = read_pairs(records, schema)
    assert np.array_equal(from_records.in0.tokens, whole.in0.tokens) and np.array_equal(from_records.labels, whole.labels)


def orjson_loads(line: str):
    import orjson

    return orjson.loads(line)


@pytest.mark.parametrize(
    "bad,expected",
    [
        ('{"label": 1, "in0": [1, 1.0], "in1": [2]}', "in0: token 1 is 1.0 (a float)"),
        ('{"label": 1, "in0": [1], "in1": [2, true]}', "in1: token 1 is true (a boolean)"),
        ('{"label": 1, "in0": [null], "in1": [2]}', "in0: token 0 is null (null)"),
        ('{"label": 1, "in0": [1, "2"], "in1": [2]}', 'in0: token 1 is "2" (a string)'),
        ('{"label": 1, "in0": [{"a": 1}], "in1": [2]}', 'in0: token 0 is {"a": 1} (an object)'),
        ('{"label": 1, "in0": [[1]], "in1": [2]}', "in0: token 0 is [1] (a list)"),
        ('{"label": 1, "in0": [1e5], "in1": [2]}', "in0: token 0 is 100000.0 (a float)"),
        ('{"label": 1, "in0": [], "in1": [2]}', "in0: empty list; expected at least one token id"),
        ('{"label": 1, "in0": [99999999999999999999], "in1": [2]}', "in0: token 0 is 1e+20 (a float)"),  # as orjson reads it
        ('{"label": 1, "in0": [9223372036854775808], "in1": [2]}', "in0: token 0 does not fit in 64 bits"),
        ('{"label": true, "in0": [1], "in1": [2]}', "label: got true (a boolean)"),
    ],
)
def test_a_bad_record_among_many_good_ones_gets_the_same_message(tmp_path, bad, expected):
    good = '{"label": 0, "in0": [1, 2], "in1": [3]}'
    lines = [good] * 5000
    lines[4321] = bad
    path = write_lines(tmp_path / "a.jsonl", *lines)
    problems = problems_of(path)
    assert problems == [f"{path}:4322: {problems[0].split(': ', 1)[1]}"] and expected in problems[0], problems


def test_a_cached_reload_keeps_uint16_tokens_memory_mapped(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [1, 2], "in1": [3]}')
    read_pairs(path, SCHEMA, cache=True)
    again = read_pairs(path, SCHEMA, cache=True)
    assert again.in0.tokens.dtype == np.uint16
    assert isinstance(again.in0.tokens.base, np.memmap) or isinstance(again.in0.tokens, np.memmap)


@pytest.mark.parametrize("rank", [0, 1])
def test_gzip_shards_name_the_right_line_after_the_first_block(tmp_path, monkeypatch, rank):
    from object2vec.data import jsonl as data_module

    monkeypatch.setattr(data_module, "_BLOCK_BYTES", 2000)  # ~50 lines a block
    lines = ['{"label": 0, "in0": [1], "in1": [2]}'] * 3000
    lines[2500 + rank] = '{"label": 0, "in0": [99], "in1": [2]}'  # line 2501 is rank 0's, 2502 rank 1's
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    with pytest.raises(DataError, match=rf"a.jsonl.gz:{2501 + rank}: in0: token 0 is 99"):
        read_pairs(path, SCHEMA, shard=(rank, 2))


# The compiled scanner, then pyarrow, read clean blocks; what they would take but the contract
# refuses goes to the per-record reader


@pytest.mark.parametrize("reader", ["compiled scanner", "pyarrow"])
def test_clean_files_are_parsed_in_blocks_not_record_by_record(tmp_path, monkeypatch, reader):
    from object2vec.data import jsonl as data_module
    from object2vec.native import kernels

    if reader == "compiled scanner" and not kernels.available():
        pytest.skip("no C compiler here")
    schema = Schema(vocab_size=(10, 10), max_seq_len=(8, 8), regression=False, num_classes=3)
    lines = _random_lines(np.random.default_rng(7), 2000, 10, extra_fields=reader == "pyarrow")
    path = write_lines(tmp_path / "a.jsonl", *lines)
    expected = read_pairs([orjson_loads(line) for line in lines], schema)
    monkeypatch.setattr(data_module.Parser, "block", lambda *a: pytest.fail("parsed record by record"))
    if reader == "pyarrow":
        monkeypatch.setattr(kernels, "parse_pairs", lambda *a: None)
    else:
        monkeypatch.setattr(data_module.arrow_lines, "parse", lambda *a: pytest.fail("parsed by pyarrow"))
    for newline in ("\n", "\r\n"):
        path.write_text("".join(line + newline for line in lines))
        data = read_pairs(path, schema)
        assert np.array_equal(data.in0.tokens, expected.in0.tokens) and np.array_equal(data.in1.offsets, expected.in1.offsets)
        assert np.array_equal(data.labels, expected.labels)


@pytest.mark.parametrize(
    "bad,expected",
    [
        ('{"label": 1, "in0": [null], "in1": [2]}', ["4322: in0: token 0 is null (null)"]),
        ('{"label": null, "in0": [1], "in1": [2]}', ["4322: label: got null (null)"]),
        ('{"in0": [1], "in1": [2]}', ["4322: label: missing"]),
        ('{"label": 1, "in0": null, "in1": [2]}', ["4322: in0: missing"]),
        ('{"label": 1, "in1": [2]}', ["4322: in0: missing"]),
        ('{"label": 1, "in0": [], "in1": [2]}', ["4322: in0: empty list"]),
        ('{"label": 1, "in0": [1], "in1": [2]}{"label": 0, "in0": [1], "in1": [2]}', ["4322: malformed JSON"]),
        ('{"label": 1, "in0": [1],\n"in1": [2]}', ["4322: malformed JSON", "4323: malformed JSON"]),
        ('{"label": 1, "in0": [1], "in1": [2], "note": "caf\udce9"}', ["4322: malformed JSON"]),  # invalid UTF-8
    ],
)
def test_what_pyarrow_would_accept_but_the_contract_refuses_is_reported_by_line(tmp_path, bad, expected):
    good = '{"label": 0, "in0": [1, 2], "in1": [3]}'
    lines = [good] * 5000
    lines[4321] = bad
    path = tmp_path / "a.jsonl"
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))
    problems = problems_of(path)
    assert len(problems) == len(expected), problems
    assert all(p.startswith(f"{path}:{e}") for p, e in zip(problems, expected, strict=True)), problems


def test_a_split_record_and_two_records_on_one_line_cannot_pass_as_one_a_line(tmp_path):
    """Line and object counts agree here (one object over lines 2-3, two on line 4): still refused."""
    lines = [
        '{"label": 0, "in0": [1], "in1": [2]}',
        '{"label": 0, "in0": [1],',
        '"in1": [2]}',
        '{"label": 0, "in0": [1], "in1": [2]}{"label": 1, "in0": [3], "in1": [4]}',
    ]
    path = write_lines(tmp_path / "a.jsonl", *lines)
    problems = problems_of(path)
    assert [p.split(": ", 2)[0].rsplit(":", 1)[1] for p in problems] == ["2", "3", "4"], problems
    assert all("malformed JSON" in p for p in problems)


def test_extra_fields_with_objects_and_blank_lines_read_the_same_either_way(tmp_path):
    lines = [
        '{"label": 1, "in0": [1, 2], "in1": [3], "meta": {"user": "a", "tags": [1, "x"]}}',
        "",
        '{"label": 0, "in0": [4], "in1": [0]}',
    ]
    data = read_pairs(write_lines(tmp_path / "a.jsonl", *lines), SCHEMA)
    assert data.in0.tokens.tolist() == [1, 2, 4] and data.labels.tolist() == [1, 0]


# The compiled scanner accepts a strict subset of what the per-record reader accepts, and reads it the same


def _json_pair(record, weights: tuple[str, ...] = ()) -> bool:
    """Whether a decoded line is what the scanner may take: exactly the three keys (and the weights
    asked for: as many finite numbers as ids), ids in int32, a finite label."""
    if not isinstance(record, dict) or set(record) != {"label", "in0", "in1", *(f"{s}_weights" for s in weights)}:
        return False
    for side in weights:
        w = record[f"{side}_weights"]
        if type(w) is not list or len(w) != len(record[side]) or not all(type(x) in (int, float) and np.isfinite(x) for x in w):
            return False
    ids_ok = all(
        type(record[s]) is list and record[s] and all(type(t) is int and 0 <= t < 2**31 for t in record[s])
        for s in ("in0", "in1")
    )
    return ids_ok and type(record["label"]) in (int, float) and np.isfinite(record["label"])


@pytest.fixture
def scanner():
    from object2vec.native import kernels

    if not kernels.available():
        pytest.skip("no C compiler here")
    return kernels.parse_pairs


def test_the_scanner_reads_any_spacing_key_order_and_number_form(scanner):
    rng = np.random.default_rng(3)
    lines = []
    for i in range(500):
        sp = lambda: " " * int(rng.integers(0, 3)) + "\t" * int(rng.integers(0, 2))  # noqa: E731
        ids = [[int(t) for t in rng.integers(0, 2**31 - 1 if i % 5 == 0 else 50, rng.integers(1, 6))] for _ in range(2)]
        label = rng.choice(["1", "0", "-3", "2.5", "-0.125", "1e2", "3E-2", "0.0", "-0", "123456789"])
        members = [f'"in0"{sp()}:{sp()}[{sp()}{(sp() + "," + sp()).join(map(str, ids[0]))}{sp()}]', f'"in1":[{",".join(map(str, ids[1]))}]',
                   f'"label"{sp()}:{sp()}{label}']  # fmt: skip
        rng.shuffle(members)
        lines.append(sp() + "{" + sp() + ("," + sp()).join(members) + sp() + "}" + sp() + ("\r" if i % 9 == 0 else ""))
    block = ("\n".join(lines) + "\n").encode()
    starts, ids, lengths, labels, weights = scanner(block)
    records = [orjson_loads(line) for line in lines]
    assert np.array_equal(starts[1:], np.cumsum([len(line) + 1 for line in lines])[:-1])
    for side in ("in0", "in1"):
        assert ids[side].tolist() == [t for r in records for t in r[side]]
        assert lengths[side].tolist() == [len(r[side]) for r in records]
    assert labels.tolist() == [float(r["label"]) for r in records]
    assert weights == {}


def _float_text(value: np.float32, i: int) -> str:
    """A float32 as prepare writes it (its shortest form) or as the double it is (every digit)."""
    return str(value) if i % 4 == 0 else repr(float(value))


def test_the_scanner_reads_weights_after_their_ids_as_json_numbers(scanner):
    """Every number form JSON allows, the nearest double (as JSON's reading), in long or short form."""
    rng = np.random.default_rng(5)
    forms = ["0", "-0", "1", "2.5", "0.001", "0.30000001192092896", "3.4028234663852886e38", "1e-7", "7E+2",
             "123456789012345678901234", "0.1234567890123456789", "1.5e-300", "2.2250738585072014e-308", "4.7123456",
             "90071992547409931", "9007199254740993", "0.000000000000000000000000001"]  # fmt: skip
    lines, want = [], []
    for i in range(400):
        size = int(rng.integers(1, 6))
        weights = [
            forms[int(k)] if i % 2 else _float_text(np.float32(rng.random() * 10.0 ** int(rng.integers(-8, 8))), i)
            for k in rng.integers(0, len(forms), size)
        ]
        sp = " " * int(rng.integers(0, 2))
        lines.append(
            f'{{"label": 1, "in0": [{", ".join(["3"] * size)}],{sp}"in0_weights":{sp}[{("," + sp).join(weights)}], "in1": [2]}}'
        )
        want += [float(w) for w in weights]
    starts, _, lengths, _, weights = scanner(("\n".join(lines) + "\n").encode(), ("in0",))
    assert weights["in0"].tolist() == want  # bit for bit: the same doubles as Python's float()
    assert lengths["in0"].sum() == len(want) and len(starts) == 400


@pytest.mark.parametrize(
    "line",
    [
        '{"label": 1, "in0": [1, 2], "in0_weights": [1], "in1": [2]}',  # fewer weights than ids
        '{"label": 1, "in0": [1], "in0_weights": [1, 2], "in1": [2]}',  # more
        '{"label": 1, "in0_weights": [1], "in0": [1], "in1": [2]}',  # before its ids
        '{"label": 1, "in0": [1], "in1": [2]}',  # missing
        '{"label": 1, "in0": [1], "in0_weights": [01], "in1": [2]}',
        '{"label": 1, "in0": [1], "in0_weights": [.5], "in1": [2]}',
        '{"label": 1, "in0": [1], "in0_weights": ["1"], "in1": [2]}',
        '{"label": 1, "in0": [1], "in0_weights": [1e999], "in1": [2]}',
        '{"label": 1, "in0": [1], "in0_weights": [], "in1": [2]}',
        '{"label": 1, "in0": [1], "in0_weights": [1], "in0_weights": [1], "in1": [2]}',
        '{"label": 1, "in0": [1], "in1": [2], "in1_weights": [1], "in0_weights": [1]}',  # a side not asked for
    ],
)
def test_the_scanner_leaves_other_weighted_lines_to_the_other_readers(scanner, line):
    good = '{"label": 0, "in0": [1, 2], "in0_weights": [0.5, 2], "in1": [3]}'
    assert scanner(f"{good}\n{good}\n".encode(), ("in0",)) is not None
    assert scanner(f"{good}\n{line}\n{good}\n".encode(), ("in0",)) is None


@pytest.mark.parametrize(
    "line",
    [
        '{"label": 1, "in0": [], "in1": [2]}',  # empty list
        '{"label": 1, "in0": [-1], "in1": [2]}',  # negative id
        '{"label": 1, "in0": [01], "in1": [2]}',  # not JSON
        '{"label": 1, "in0": [1.0], "in1": [2]}',  # fractional id
        '{"label": 1, "in0": [2147483648], "in1": [2]}',  # beyond int32
        '{"label": 1, "in0": [1,], "in1": [2]}',
        '{"label": 1, "in0": [1], "in1": [2], "id": 7}',  # another key (pyarrow takes these)
        '{"label": 1, "in0": [1], "in0": [2], "in1": [2]}',  # a duplicate key
        '{"label": 1e999, "in0": [1], "in1": [2]}',  # not finite
        '{"label": "1", "in0": [1], "in1": [2]}',
        '{"label": .5, "in0": [1], "in1": [2]}',
        '{"label": 1, "in0": [1], "in1": [2]} {}',
        '{"label": 1, "in0": [1], "in1": [2]',
        '{"in\\u0030": [1], "label": 1, "in1": [2]}',  # an escaped key
        "",  # a blank line
    ],
)
def test_the_scanner_leaves_anything_else_to_the_other_readers(scanner, line):
    good = '{"label": 0, "in0": [1, 2], "in1": [3]}'
    assert scanner(f"{good}\n{line}\n{good}\n".encode()) is None


@pytest.mark.parametrize(
    ("base", "weights"),
    [
        (b'{"label": 1, "in0": [12, 3], "in1": [40]}', ()),
        (b'{"label": 1, "in0": [12, 3], "in0_weights": [0.5, 12e-1], "in1": [40]}', ("in0",)),
    ],
    ids=["ids", "weights"],
)
def test_the_scanner_never_takes_a_mutated_line_the_per_record_reader_would_read_otherwise(scanner, base, weights):
    """Random byte edits of valid lines: the scanner either refuses the block or reads exactly what
    JSON says (and only when the line is a valid pair)."""
    rng = np.random.default_rng(11)
    alphabet = list(b' 0123456789-+.eE,:[]{}"\tabeilnr\\x\r_w')
    taken = 0
    for _ in range(3000):
        line = bytearray(base)
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(0, len(line)))
            op = rng.integers(0, 3)
            if op == 0:
                line[k] = alphabet[int(rng.integers(0, len(alphabet)))]
            elif op == 1:
                line.insert(k, alphabet[int(rng.integers(0, len(alphabet)))])
            elif len(line) > 1:
                del line[k]
        scanned = scanner(bytes(line) + b"\n", weights)
        try:
            record = orjson_loads(bytes(line).decode())
        except ValueError:  # orjson's refusal (UnicodeDecodeError is one too)
            record = None
        if scanned is None:
            continue
        taken += 1
        assert record is not None and _json_pair(record, weights), line
        _, ids, _, labels, read = scanned
        assert ids["in0"].tolist() == record["in0"] and ids["in1"].tolist() == record["in1"], line
        assert labels.tolist() == [float(record["label"])], line
        if weights:
            assert set(record) == {"label", "in0", "in1", "in0_weights"}, line
            assert read["in0"].tolist() == [float(w) for w in record["in0_weights"]], line
    assert 100 < taken < 2900  # both outcomes were exercised
