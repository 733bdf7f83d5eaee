"""``object2vec predict`` / ``embed``: SageMaker batch transform on the command line, streamed, in input order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from conftest import TINY
from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs, write_jsonl
from object2vec.serving.predictor import Predictor
from object2vec.serving.transform import transform


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    Object2Vec(seed=0, device="cpu", **TINY).fit(make_pairs(300, seed=1)).save(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Object2Vec:
    return Object2Vec.load(model_dir, device="cpu")


@pytest.fixture
def pairs_file(tmp_path: Path) -> tuple[Path, list[dict]]:
    records = [{**r, "id": f"r{i}"} for i, r in enumerate(make_pairs(50, seed=7))]
    return write_jsonl(records, tmp_path / "pairs.jsonl"), records


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_predict_writes_one_scores_line_per_input_line_in_order_with_ids(model_dir, model, pairs_file, tmp_path):
    path, records = pairs_file
    code, _, err = run("predict", str(model_dir), str(path), "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, err
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [o["id"] for o in out] == [r["id"] for r in records]
    np.testing.assert_allclose([o["scores"] for o in out], model.predict(records), rtol=1e-6)
    assert "50 lines, 50 results, 0 errors" in err


def test_order_is_kept_across_chunks(model_dir, model, pairs_file, tmp_path):
    path, records = pairs_file
    out = tmp_path / "out.jsonl"
    report = transform(Predictor.load(model_dir, "cpu"), path, out, chunk=7)  # 50 lines in 8 chunks
    assert report.lines == report.written == 50
    np.testing.assert_allclose([o["scores"] for o in read_jsonl(out)], model.predict(records), rtol=1e-6)


def test_embed_jsonl_and_npy_match_the_python_api(model_dir, model, pairs_file, tmp_path):
    path, records = pairs_file
    assert run("embed", str(model_dir), str(path), "--side", "in1", "-o", str(tmp_path / "e.jsonl"))[0] == 0
    assert run("embed", str(model_dir), str(path), "--side", "in1", "--format", "npy", "-o", str(tmp_path / "e.npy"))[0] == 0
    expected = model.embed(in1=[r["in1"] for r in records])
    np.testing.assert_allclose([o["embeddings"] for o in read_jsonl(tmp_path / "e.jsonl")], expected, rtol=1e-6)
    matrix = np.load(tmp_path / "e.npy")
    assert matrix.dtype == np.float32 and matrix.shape == (50, TINY["enc_dim"])
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)
    assert [o["id"] for o in read_jsonl(tmp_path / "e.rows.jsonl")] == [r["id"] for r in records]


def test_keep_copies_named_keys(model_dir, pairs_file, tmp_path):
    path, records = pairs_file
    run("predict", str(model_dir), str(path), "--keep", "id,label", "-o", str(tmp_path / "o.jsonl"))
    out = read_jsonl(tmp_path / "o.jsonl")
    assert [(o["id"], o["label"]) for o in out] == [(r["id"], r["label"]) for r in records]
    run("predict", str(model_dir), str(path), "--keep", "", "-o", str(tmp_path / "bare.jsonl"))
    assert list(read_jsonl(tmp_path / "bare.jsonl")[0]) == ["scores"]


def bad_file(tmp_path: Path) -> Path:
    lines = [
        '{"id": "a", "in0": [1, 2], "in1": [3]}',
        '{"id": "b", "in0": [1, 999], "in1": [3]}',  # id beyond the vocabulary
        "",  # blank: not a record
        "{broken",
        '{"id": "d", "in0": [4]}',  # one side only: not a pair
        '{"id": "e", "in0": [5], "in1": [6]}',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_on_error_fail_names_every_bad_line_and_writes_nothing(model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    code, _, err = run("predict", str(model_dir), str(bad_file(tmp_path)), "-o", str(out))
    assert code == 2 and "Traceback" not in err
    assert "bad.jsonl:2: in0: token 1 is 999" in err
    assert "bad.jsonl:4: malformed JSON" in err
    assert "bad.jsonl:5: in1: missing" in err
    assert not out.exists() and list(tmp_path.glob(".out.jsonl*")) == []


def test_on_error_skip_writes_an_error_record_in_place_and_counts(model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    code, _, err = run("predict", str(model_dir), str(bad_file(tmp_path)), "--on-error", "skip", "-o", str(out))
    assert code == 0, err
    rows = read_jsonl(out)
    assert [sorted(r) for r in rows] == [
        ["id", "scores"],
        ["error", "id"],
        ["error"],
        ["error", "id"],
        ["id", "scores"],
    ]
    assert rows[1]["error"].startswith(f"{tmp_path / 'bad.jsonl'}:2: in0: token 1 is 999")
    assert "5 lines, 2 results, 3 errors" in err


def test_skip_finds_every_bad_line_even_past_the_readers_listing_limit(model_dir, tmp_path):
    lines = [{"in0": [1], "in1": [1000 + i]} if i % 2 else {"in0": [1], "in1": [2]} for i in range(60)]
    path = write_jsonl(lines, tmp_path / "many.jsonl")
    out = tmp_path / "out.jsonl"
    report = transform(Predictor.load(model_dir, "cpu"), path, out, on_error="skip")
    assert (report.written, report.errors) == (30, 30)
    assert ["error" in r for r in read_jsonl(out)] == [bool(i % 2) for i in range(60)]


def test_npy_skip_writes_nan_rows_and_errors_beside(model_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"in0": [1]}\n{"in0": [-3]}\n{"in0": [2]}\n')
    out = tmp_path / "e.npy"
    code, _, err = run(
        "embed", str(model_dir), str(path), "--side", "in0", "--format", "npy", "--on-error", "skip", "-o", str(out)
    )
    assert code == 0, err
    matrix = np.load(out)
    assert matrix.shape == (3, TINY["enc_dim"]) and np.isnan(matrix[1]).all() and not np.isnan(matrix[[0, 2]]).any()
    assert "never negative" in read_jsonl(tmp_path / "e.rows.jsonl")[1]["error"]


def test_stdin_to_stdout(model_dir, pairs_file):
    path, _ = pairs_file
    result = subprocess.run(
        [sys.executable, "-m", "object2vec", "predict", str(model_dir), "-"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 50 and b'"scores"' in result.stdout


def test_infer_max_seqlens_truncates(model_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"in0": [1, 2, 3], "in1": [4, 5]}\n{"in0": [1], "in1": [4]}\n')
    out = tmp_path / "o.jsonl"
    assert run("predict", str(model_dir), str(path), "--infer-max-seqlens", "1,1", "-o", str(out))[0] == 0
    first, second = read_jsonl(out)
    assert first["scores"] == second["scores"]
    code, _, err = run("predict", str(model_dir), str(path), "--infer-max-seqlens", "0,9")
    assert code == 2 and "infer_max_seqlens" in err


def test_npy_needs_an_output_file(model_dir, pairs_file):
    path, _ = pairs_file
    code, _, err = run("embed", str(model_dir), str(path), "--side", "in0", "--format", "npy")
    assert code == 2 and "-o FILE.npy" in err


def test_memory_stays_bounded_on_a_long_input(model_dir, tmp_path):
    """100,000 lines stream through in chunks: peak memory grows far less than the file's parsed size."""
    line = json.dumps({"in0": [1, 2, 3, 4, 5, 6, 7, 8], "in1": [9, 10, 11, 12]}).encode() + b"\n"
    big = tmp_path / "big.jsonl"
    big.write_bytes(line * 100_000)
    script = (
        "import resource, sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from object2vec.serving.predictor import Predictor\n"
        "from object2vec.serving.transform import transform\n"
        "p = Predictor.load(sys.argv[1], 'cpu')\n"
        "transform(p, sys.argv[2], sys.argv[3], chunk=256)\n"  # warm up: the interpreter and torch
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = transform(p, sys.argv[4], sys.argv[3])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(r.written, (after - before) // 1024)\n"
    )
    small = write_jsonl([{"in0": [1], "in1": [2]}] * 300, tmp_path / "small.jsonl")
    out = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), str(small), str(tmp_path / "o.jsonl"), str(big)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    written, growth_mb = int(out[0]), int(out[1])
    assert written == 100_000
    # as Python dicts the input alone would take ~200 MB; chunked, the peak barely moves
    assert growth_mb < 60, f"peak RSS grew by {growth_mb} MB"
