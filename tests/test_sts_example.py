"""examples/sts_benchmark.py runs end to end on a tiny STS-format dataset (so the example cannot rot)."""

from __future__ import annotations

import gzip
import importlib.util
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).parents[1] / "examples" / "sts_benchmark.py"
NOUNS = ["man", "woman", "dog", "cat", "horse", "child"]
VERBS = ["plays", "eats", "runs", "sleeps", "sings"]


def sts_file(path: Path, n: int, seed: int) -> None:
    """Tab-separated like STS Benchmark: genre, file, year, id, score, sentence 1, sentence 2 (a stray quote included)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        a, b = rng.choice(NOUNS), rng.choice(VERBS)
        c = a if rng.random() < 0.5 else rng.choice(NOUNS)
        d = b if rng.random() < 0.5 else rng.choice(VERBS)
        score = 2.5 * (a == c) + 2.5 * (b == d)
        lines.append(f'main-captions\tMSRvid\t2012test\t{i:04d}\t{score:.3f}\tA {a} "{b}.\tThe {c} {d}.')
    path.write_text("\n".join(lines) + "\n")


def test_the_sts_example_prints_model_and_baseline_correlations(tmp_path, capsys, monkeypatch):
    data = tmp_path / "sts"
    data.mkdir()
    for name, n, seed in (("sts-train.csv", 120, 0), ("sts-dev.csv", 40, 1), ("sts-test.csv", 40, 2)):
        sts_file(data / name, n, seed)
    rng = random.Random(3)
    vectors = tmp_path / "glove.txt.gz"
    words = ["the", "a", ".", '"', *NOUNS, *VERBS, "zebra"]
    with gzip.open(vectors, "wt") as fh:
        fh.writelines(f"{w} {' '.join(f'{rng.gauss(0, 0.5):.3f}' for _ in range(8))}\n" for w in words)

    spec = importlib.util.spec_from_file_location("sts_benchmark", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sts_benchmark", example)  # dataclasses look their module up there
    spec.loader.exec_module(example)
    args = ["--data-dir", str(data), "--vectors", str(vectors), "--out", str(tmp_path / "out"), "--epochs", "2"]
    names = ["glove-tuned", "cosine glove+identity idf", "contrastive glove+identity idf"]
    results = example.main([*args, "--candidates", ",".join(names)])
    out = capsys.readouterr().out
    pair, embedding = results["selected"]["pair"], results["selected"]["embedding"]
    assert {pair, embedding} <= set(names) and list(results["candidates"]) == names
    assert set(results["test"]) == {
        f"Object2Vec pair score ({pair})",
        f"Object2Vec embedding cosine ({pair})",
        f"Object2Vec embedding cosine ({embedding})",
        "baseline: averaged GloVe cosine",
        "baseline: TF-IDF cosine (fit on sts-train)",
    }
    assert "baseline: TF-IDF cosine (fit on sts-train)" in out and f"Object2Vec embedding cosine ({embedding})" in out
    assert all(-100 <= v["spearman"] <= 100 for v in results["test"].values())
    pooling = {name: c["hyperparameters"]["enc0_pooling"] for name, c in results["candidates"].items()}
    assert pooling == {names[0]: "mean", names[1]: "weighted_mean", names[2]: "weighted_mean"}  # not prepare's suggestion
    for c in results["candidates"].values():  # every candidate reports both scores on dev and test
        assert set(c["dev_spearman"]) == set(c["test"]) == {"pair", "embedding"}
    assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "model" / "auxiliary" / "vocab.json").is_file()
    assert (tmp_path / "out" / "model_embedding" / "auxiliary" / "vocab.json").is_file()


def test_an_unknown_candidate_is_refused_with_the_known_names(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("sts_benchmark", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sts_benchmark", example)
    spec.loader.exec_module(example)
    with pytest.raises(SystemExit):
        example.main(["--data-dir", str(tmp_path), "--vectors", str(tmp_path / "v.txt"), "--candidates", "glove-tuned,bert"])
    assert "unknown candidate(s) bert; choose from glove-frozen" in capsys.readouterr().err
