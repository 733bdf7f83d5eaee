"""examples/text_classification.py runs end to end on a tiny AG News-format file (so the example cannot rot)."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).parents[1] / "examples" / "text_classification.py"
WORDS = {
    "World": ["minister", "election", "talks", "border"],
    "Sports": ["match", "coach", "league", "goal"],
    "Business": ["stocks", "profit", "bank", "oil"],
    "Sci/Tech": ["software", "chip", "space", "robot"],
}


def ag_news(folder: Path, n: int) -> Path:
    rng = random.Random(0)
    folder.mkdir()
    (folder / "classes.txt").write_text("\n".join(WORDS) + "\n")
    with open(folder / "test.csv", "w", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        for i in range(n):
            label = i % 4
            words = WORDS[list(WORDS)[label]]
            writer.writerow(
                [label + 1, " ".join(rng.choices(words, k=3)), " ".join(rng.choices([*words, "the", "a"], k=8)) + "\\"]
            )
    return folder


@pytest.fixture
def _logging_restored():
    """The example configures object2vec's logger as its command line does; later tests get it back as it was."""
    import logging

    from object2vec import reporting

    package = logging.getLogger(reporting.PACKAGE)  # where configure_cli_logging puts its handler
    saved = (list(package.handlers), package.level, package.propagate)
    yield
    package.handlers[:] = saved[0]
    package.setLevel(saved[1])
    package.propagate = saved[2]


def test_the_example_splits_by_position_and_prints_every_run(tmp_path, capsys, _logging_restored):
    spec = importlib.util.spec_from_file_location("text_classification_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("text_classification_example", example)
    spec.loader.exec_module(example)
    data = ag_news(tmp_path / "ag", 200)
    splits, names = example.split_rows(data)
    assert names == list(WORDS)
    assert {k: len(v) for k, v in splits.items()} == {"train": 144, "validation": 16, "test": 40}
    assert splits["test"][0][0] == example.split_rows(data)[0]["test"][0][0]  # deterministic
    args = ["--data-dir", str(data), "--out", str(tmp_path / "out"), "--seeds", "1", "--epochs", "2", "--skip-fasttext",
            "--label-pairs"]  # fmt: skip
    results = example.main(args)
    rows = results["rows"]
    assert set(rows) == {
        "object2vec, SageMaker settings",
        "object2vec + extensions",
        "object2vec label pairs + extensions",
        "TF-IDF + logistic regression",
    }
    assert all(0.0 <= row["test"] <= 1.0 for row in rows.values())
    assert rows["TF-IDF + logistic regression"]["test"] > 0.9  # the planted words make this easy
    assert "fastText skipped" in " ".join(results["notes"])
    assert "object2vec + extensions" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"].keys() == rows.keys()
