"""The binary data cache is keyed by the file's bytes and checked on every load; a bad entry is replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_lines
from object2vec.data import cache
from object2vec.data.pairs import Schema, read_pairs
from object2vec.errors import DataError
from object2vec.files import atomic_folder, cache_dir, content_digest

SCHEMA = Schema(vocab_size=(10, 5), max_seq_len=(4, 3), regression=False, num_classes=3)
LINES = ('{"label": 1, "in0": [1, 2], "in1": [3]}', '{"label": 0, "in0": [4], "in1": [0, 1]}')


def cached_file(tmp_path: Path) -> tuple[Path, Path]:
    """A file read once with the cache on, and its (only) cache entry."""
    path = write_lines(tmp_path / "a.jsonl", *LINES)
    read_pairs(path, SCHEMA, cache=True)
    (entry,) = [p for p in cache_dir().iterdir() if (p / cache.MANIFEST).exists()]
    return path, entry


def entry_is_valid(entry: Path) -> bool:
    return cache.load(entry, ("in0", "in1"), True) is not None


def assert_read_as_written(path: Path) -> None:
    data = read_pairs(path, SCHEMA, cache=True)
    assert data.labels.tolist() == [1, 0] and data.in0.tokens.tolist() == [1, 2, 4] and data.in1.tokens.tolist() == [3, 0, 1]


def test_an_edit_that_keeps_the_size_and_the_time_is_still_seen(tmp_path):
    path, _ = cached_file(tmp_path)
    stat = path.stat()
    path.write_text(path.read_text().replace('"label": 1', '"label": 7'))  # same size: an invalid class
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(DataError, match=r"a.jsonl:1: label: 7 is out of range"):
        read_pairs(path, SCHEMA, cache=True)


def test_altered_cached_labels_are_detected_and_the_file_parsed_again(tmp_path):
    path, entry = cached_file(tmp_path)
    np.save(entry / "labels.npy", np.array([2.0, 2.0]))
    assert not entry_is_valid(entry)
    assert_read_as_written(path)
    assert entry_is_valid(entry) and np.load(entry / "labels.npy").tolist() == [1.0, 0.0]  # replaced


def test_a_truncated_cache_file_is_replaced(tmp_path):
    path, entry = cached_file(tmp_path)
    tokens = entry / "in0.tokens.npy"
    tokens.write_bytes(tokens.read_bytes()[:-3])
    assert_read_as_written(path)
    assert entry_is_valid(entry)


def test_a_missing_manifest_is_a_damaged_entry(tmp_path):
    path, entry = cached_file(tmp_path)
    (entry / cache.MANIFEST).unlink()
    assert_read_as_written(path)
    assert entry_is_valid(entry)


def test_arrays_whose_lengths_disagree_are_refused_and_replaced(tmp_path):
    path, entry = cached_file(tmp_path)
    np.save(entry / "in0.tokens.npy", np.array([1, 2], np.uint16))  # lengths [2, 1] sum to 3
    manifest = json.loads((entry / cache.MANIFEST).read_text())  # a manifest that vouches for it
    manifest["files"]["in0.tokens.npy"] = content_digest(entry / "in0.tokens.npy")
    (entry / cache.MANIFEST).write_text(json.dumps(manifest))
    assert not entry_is_valid(entry)
    assert_read_as_written(path)
    assert entry_is_valid(entry) and np.load(entry / "in0.tokens.npy").tolist() == [1, 2, 4]


def test_the_cache_follows_the_content_not_the_name(tmp_path, monkeypatch):
    path, _ = cached_file(tmp_path)
    moved = path.rename(tmp_path / "b.jsonl")
    monkeypatch.setattr("object2vec.data.jsonl.parse_file", lambda *a: pytest.fail("parsed again"))
    assert_read_as_written(moved)


def test_inconsistent_arrays_are_named_by_the_check():
    raw = cache.jsonl.Raw(
        {"in0": np.array([1, 2, 3], np.uint16)}, {"in0": np.array([2, 1])}, np.array([1.0, 0.0]), np.array([1, 2])
    )
    assert cache.consistent(raw)
    for broken in (
        {"tokens": {"in0": np.array([1, 2], np.uint16)}},  # lengths sum to 3
        {"lengths": {"in0": np.array([3, 0])}},  # an empty sequence
        {"labels": np.array([1.0])},  # one label for two records
        {"where": np.array([2, 1])},  # lines out of order
        {"tokens": {"in0": np.array([1.0, 2.0, 3.0])}},  # not token ids
    ):
        assert not cache.consistent(cache.jsonl.Raw(**{**raw.__dict__, **broken}))


def test_atomic_folder_can_replace_a_folder(tmp_path):
    target = tmp_path / "entry"
    target.mkdir()
    (target / "old.npy").write_bytes(b"old")
    with atomic_folder(target, replace=True) as tmp:
        (tmp / "new.npy").write_bytes(b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["entry"] and [p.name for p in target.iterdir()] == ["new.npy"]


def test_content_digest_depends_on_the_bytes_only(tmp_path):
    a, b, c = (write_lines(tmp_path / name, *lines) for name, lines in (("a", LINES), ("b", LINES), ("c", LINES[:1])))
    assert content_digest(a) == content_digest(b) != content_digest(c)
    assert content_digest(write_lines(tmp_path / "empty")) != content_digest(a)


def test_a_file_hashed_a_window_at_a_time_has_the_digest_of_its_bytes(tmp_path, monkeypatch):
    import mmap

    window = mmap.ALLOCATIONGRANULARITY
    data = os.urandom(3 * window + 17)
    whole = write_lines(tmp_path / "whole")
    whole.write_bytes(data)
    expected = content_digest(whole)  # one window
    monkeypatch.setattr("object2vec.files._WINDOW", window)
    assert content_digest(whole) == expected
    whole.write_bytes(data[:-1])
    assert content_digest(whole) != expected
