"""Shared toy data: tiny hyperparameters and small generated pair files."""

from __future__ import annotations

from pathlib import Path

import pytest

from object2vec.synthetic import make_pairs, write_jsonl

# The smallest useful model: fast enough to train inside a unit test.
TINY = {
    "enc0_max_seq_len": 10,
    "enc0_vocab_size": 200,
    "enc0_network": "pooled_embedding",
    "enc_dim": 16,
    "mlp_dim": 16,
    "mlp_layers": 1,
    "epochs": 2,
    "mini_batch_size": 32,
    "learning_rate": 0.01,
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the user's ~/.cache."""
    monkeypatch.setenv("OBJECT2VEC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return make_pairs(300, seed=1)


@pytest.fixture
def train_file(tmp_path: Path, records: list[dict]) -> Path:
    return write_jsonl(records, tmp_path / "train.jsonl")


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path
