"""A data problem is a value (where, field, what was found, what was expected, advice), rendered by each caller."""

from __future__ import annotations

import pickle

import pytest

from conftest import write_lines
from object2vec.data.pairs import Schema, read_pairs
from object2vec.errors import DataError, Line, Problem, Problems, location_text, relocate

SCHEMA = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=False, num_classes=3)
TOKEN = Problem(
    3, "in0", "token 0 is 12, not less than enc0_vocab_size=10", "a token id in [0, 10)", "raise enc0_vocab_size or re-index"
)


def test_a_problem_reads_place_field_value_expected_and_advice():
    assert TOKEN.render() == (
        "records[3]: in0: token 0 is 12, not less than enc0_vocab_size=10; expected a token id in [0, 10) "
        "(raise enc0_vocab_size or re-index)"
    )


def test_a_record_index_is_named_by_the_caller():
    assert TOKEN.render("instances[{}]".format).startswith("instances[3]: in0: token 0 is 12")
    assert TOKEN.render(lambda i: f"line {i + 2}").startswith("line 5: in0: ")
    assert location_text(Line("a.jsonl", 7)) == "a.jsonl:7" and location_text(Line("a.jsonl")) == "a.jsonl"
    assert location_text("candidates") == "candidates" and location_text(None) == ""


def test_without_advice_a_client_is_not_told_to_change_the_model():
    assert TOKEN.render(advice=False) == (
        "records[3]: in0: token 0 is 12, not less than enc0_vocab_size=10; expected a token id in [0, 10)"
    )
    assert TOKEN.message(advice=False) == "token 0 is 12, not less than enc0_vocab_size=10; expected a token id in [0, 10)"


def test_parts_that_are_absent_are_left_out():
    assert Problem(Line("a.jsonl", 2), None, "malformed JSON (x)", "one JSON object per line").render() == (
        "a.jsonl:2: malformed JSON (x); expected one JSON object per line"
    )
    assert Problem(Line("a.jsonl"), None, "no such file or directory").render() == "a.jsonl: no such file or directory"
    assert Problem.of("--format npy writes embeddings to a file").render() == "--format npy writes embeddings to a file"


def test_relocate_moves_record_problems_to_the_callers_places():
    moved = relocate([TOKEN.at(1), TOKEN.at(0), Problem("records", None, "no records")], [Line("b.jsonl", 4), 9])
    assert [location_text(p.location) for p in moved] == ["records[9]", "b.jsonl:4", "records"]
    assert moved[0].value == TOKEN.value and moved[0].hint == TOKEN.hint


def test_a_data_error_keeps_the_values_and_their_lines():
    error = DataError([TOKEN, "a sentence"], count=5)
    assert error.found[0] == TOKEN and error.found[1] == Problem(None, None, "a sentence")
    assert error.problems == [TOKEN.render(), "a sentence"]
    assert str(error).startswith("5 data problems:\n  records[3]: in0: ")
    again = pickle.loads(pickle.dumps(error))
    assert again.found == error.found and again.count == 5 and str(again) == str(error)


def test_problems_are_listed_in_input_order_whatever_order_they_were_found_in():
    problems = Problems()
    problems.expect("a.jsonl")
    problems.expect("b.jsonl")
    for file, line in [("b.jsonl", 1), ("a.jsonl", 9), ("a.jsonl", 2), ("b.jsonl", None)]:
        problems.add(Problem(Line(file, line), None, "bad"))
    assert [str(p.location) for p in problems.shown] == ["a.jsonl:2", "a.jsonl:9", "b.jsonl", "b.jsonl:1"]


def test_problems_keep_the_first_ones_in_input_order_and_count_them_all():
    problems = Problems(shown=3)
    for i in reversed(range(100)):
        problems.add(Problem(i, "label", "bad"))
    assert [p.location for p in problems.shown] == [0, 1, 2] and problems.count == 100
    with pytest.raises(DataError) as err:
        problems.raise_if_any()
    assert err.value.count == 100 and err.value.problems == [f"records[{i}]: label: bad" for i in range(3)]


def test_a_file_s_problems_are_listed_by_line_across_parsing_and_schema_checks(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl",
        '{"label": 1, "in0": [12], "in1": [1]}',  # found by the schema check (after parsing)
        '{"label": 7, "in0": [1], "in1": [1]}',  # found by the label check (last)
        "not json",  # found while parsing (first)
    )
    with pytest.raises(DataError) as err:
        read_pairs(path, SCHEMA)
    assert [p.split(": ")[0] for p in err.value.problems] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert [p.location for p in err.value.found] == [Line(str(path), 1), Line(str(path), 2), Line(str(path), 3)]


def test_the_first_twenty_problems_are_the_first_twenty_lines(tmp_path):
    lines = ['{"label": 1, "in0": [12], "in1": [1]}' if i % 2 else '{"label": 9, "in0": [1], "in1": [1]}' for i in range(50)]
    with pytest.raises(DataError) as err:
        read_pairs(write_lines(tmp_path / "a.jsonl", *lines), SCHEMA)
    assert err.value.count == 50
    assert [p.location.line for p in err.value.found] == list(range(1, 21))


def test_files_are_listed_in_the_order_they_were_read(tmp_path):
    bad_token = write_lines(tmp_path / "a.jsonl", '{"label": 1, "in0": [12], "in1": [1]}')
    bad_json = write_lines(tmp_path / "b.jsonl", "not json")
    with pytest.raises(DataError) as err:
        read_pairs([bad_token, bad_json], SCHEMA)
    assert [p.location.file for p in err.value.found] == [str(bad_token), str(bad_json)]


def test_records_are_located_by_index_and_named_records_i():
    with pytest.raises(DataError) as err:
        read_pairs([{"label": 1, "in0": [1], "in1": [1]}, {"label": 1, "in0": [10], "in1": [1]}], SCHEMA)
    (problem,) = err.value.found
    assert problem.location == 1 and problem.field == "in0" and problem.hint == "raise enc0_vocab_size or re-index"
    assert err.value.problems[0].startswith("records[1]: in0: token 0 is 10, not less than enc0_vocab_size=10")


def test_text_problems_and_token_problems_of_a_file_are_listed_by_line(tmp_path):
    from object2vec.text.tokenize import DefaultTokenizer, TextCodec, Vocabulary, read_text_pairs

    codec = TextCodec(DefaultTokenizer(), (Vocabulary({"a": 0, "b": 1}, None), None), ("vocab.json", ""))
    path = write_lines(
        tmp_path / "a.jsonl",
        '{"label": 1, "in0": "a", "in1": [9]}',  # found by read_pairs, after the text is encoded
        '{"label": 1, "in0": "zz", "in1": [1]}',  # found while encoding (no known word)
    )
    with pytest.raises(DataError) as err:
        read_text_pairs(path, SCHEMA, codec)
    assert err.value.problems[0].startswith(f"{path}:1: in1: token 0 is 9, not less than enc1_vocab_size=5")
    assert err.value.problems[1].startswith(f"{path}:2: in0: none of the 1 tokens of 'zz' is in enc0_vocab_file=vocab.json")
