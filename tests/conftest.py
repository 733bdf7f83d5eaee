"""Shared toy data: tiny hyperparameters and small generated pair files."""

from __future__ import annotations

import os

# Test models are tiny: one thread runs them fastest, and on a busy machine OpenMP threads spin
# against other processes (measured 10x slower). Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from object2vec.data.synthetic import make_pairs, write_jsonl

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


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """A test that runs `serve` in-process changes torch's thread count (serving.app.configure_threads);
    later tests must not inherit it: more threads than cores spin, and mixed with the endpoint's threads
    and faiss's own OpenMP runtime, an OpenMP team was once seen waiting forever in a fused optimizer step."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != (before or 1):
        torch.set_num_threads(before or 1)


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


# --- a real server on a free loopback port (test_serving, test_sagemaker_container) ---------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def http(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())
