"""A configuration that cannot fit in memory is refused before anything is allocated, with the
estimate and the machine's memory (issue 16, item 5)."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import TINY
from object2vec import Object2Vec
from object2vec.errors import Object2VecError
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training import resources

HUGE = {"enc0_max_seq_len": 10, "enc0_vocab_size": 3_000_000, "enc0_network": "pooled_embedding", "enc_dim": 4096}


@pytest.fixture
def machine_of_64_gb(monkeypatch):
    """Whatever runs the tests, it has 64 GB available of 128 GB (the refusal does not depend on it)."""
    monkeypatch.setattr(resources, "available_memory", lambda device: (64 * 2**30, 128 * 2**30))


def test_the_estimate_counts_the_real_network_without_allocating_it():
    hp = Hyperparameters(**{**TINY, "enc_dim": 32, "mlp_dim": 24})
    real = sum(p.numel() for p in Object2VecNet(hp.resolve()).parameters()) * 4
    estimate = resources.estimate(hp, validation=True)
    assert estimate.weights == real
    assert estimate.parts == {"weights": real, "gradients": real, "adam state": 2 * real, "best-epoch copy": real}


def test_row_sparse_tables_have_no_dense_gradient_but_keep_their_optimizer_state():
    hp = Hyperparameters(**{**TINY, "token_embedding_storage_type": "row_sparse", "optimizer": "adagrad"})
    estimate = resources.estimate(hp, validation=False)
    tables = 2 * 200 * 16 * 4  # two 200 x 16 token tables (pooled_embedding: token dim = enc_dim)
    assert estimate.parts["gradients"] == estimate.weights - tables
    assert estimate.parts["adagrad state"] == estimate.weights


def test_a_huge_vocabulary_is_refused_in_seconds_with_the_estimate_and_the_machines_memory(records, machine_of_64_gb):
    start = time.perf_counter()
    with pytest.raises(Object2VecError) as refused:
        Object2Vec(device="cpu", **HUGE).fit(records)
    assert time.perf_counter() - start < 10  # 91.6 GB of weights were never allocated
    message = str(refused.value)
    assert message.startswith("this configuration needs about 366.3 GB of memory before the first step (weights 91.6 GB")
    assert "token tables: 3,000,000 x 4,096 (45.8 GB)" in message
    assert "but this machine has 64.0 GB available of 128.0 GB; lower the vocabulary sizes" in message


def test_the_command_line_refuses_it_before_writing_anything(tmp_path, train_file, machine_of_64_gb):
    from click.testing import CliRunner

    from object2vec.cli import main

    args = [arg for key, value in HUGE.items() for arg in ("-p", f"{key}={value}")]
    result = CliRunner().invoke(main, ["train", "--train", str(train_file), *args, "-o", str(tmp_path / "model")])
    assert result.exit_code == 2 and result.output.startswith("error: this configuration needs about 366.3 GB")
    assert not (tmp_path / "model").exists()


def test_what_fits_is_not_refused(monkeypatch):
    hp = Hyperparameters(**TINY)
    resources.check_memory(hp, torch.device("cpu"))
    monkeypatch.setattr(resources, "available_memory", lambda device: (1000, 2000))
    with pytest.raises(Object2VecError, match=r"but this machine has 1000 bytes available of 2 KB"):
        resources.check_memory(hp, torch.device("cpu"))


def test_this_machines_memory_is_read_from_the_kernel():
    available, total = resources.available_memory(torch.device("cpu"))
    assert 0 < available <= total
