"""Distributed training (2 Gloo processes on CPU) and resuming after a crash (SIGKILL)."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs, write_jsonl

WORKER = Path(__file__).parent / "workers" / "fit_worker.py"
TRAIN_PAIRS = 1600


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_jsonl(make_pairs(TRAIN_PAIRS, seed=1), folder / "train.jsonl")
    write_jsonl(make_pairs(400, seed=2), folder / "validation.jsonl")
    write_jsonl(make_pairs(1000, seed=3), folder / "test.jsonl")
    return folder


def run_worker(*args: str, nproc: int = 1, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        if nproc > 1
        else [sys.executable]
    )
    return subprocess.Popen([*launcher, str(WORKER), *args], env=env, **kwargs)


@pytest.fixture
def more_data(tmp_path: Path) -> Path:
    """Enough pairs for the tiny model to converge: its test accuracy then varies by about 0.005 with
    the seed (on the 1,600 pairs of ``data`` it stops early at 0.86-0.94, by seed and pair order)."""
    folder = tmp_path / "more"
    write_jsonl(make_pairs(4000, seed=1), folder / "train.jsonl")
    write_jsonl(make_pairs(400, seed=2), folder / "validation.jsonl")
    write_jsonl(make_pairs(1000, seed=3), folder / "test.jsonl")
    return folder


@pytest.mark.parametrize("storage", ["dense", "row_sparse"])
def test_two_gloo_processes_match_one_process_and_agree_on_every_weight(tmp_path, more_data, storage):
    data = more_data
    # row_sparse: 5 epochs, since with 16 pairs a rank and step (seed 3) the two processes sat at the
    # start's plateau for two epochs before learning (seeds 4 and 5 did not); both converge by epoch 5
    extra = ["--row-sparse", "--epochs", "5"] if storage == "row_sparse" else ["--epochs", "3"]
    single, double = tmp_path / "single", tmp_path / "double"
    assert run_worker(str(data), str(single), *extra).wait(timeout=300) == 0
    assert run_worker(str(data), str(double), *extra, nproc=2).wait(timeout=300) == 0
    # identical parameters on every rank
    assert (double / "rank0.sha").read_text() == (double / "rank1.sha").read_text()
    # one loadable model, as accurate as the single-process one within noise: mini_batch_size is the
    # global batch (each rank took 16 of the 32 pairs a step), so both took the same number of steps
    one = Object2Vec.load(single / "model", device="cpu").evaluate(data / "test.jsonl")["accuracy"]
    two = Object2Vec.load(double / "model", device="cpu").evaluate(data / "test.jsonl")["accuracy"]
    assert abs(two - one) <= 0.02, (one, two)
    assert sorted(p.name for p in (double / "model").iterdir()) == ["config.json", "metrics.json", "model.safetensors"]


@pytest.mark.parametrize("batch", [32, 33])
def test_mini_batch_size_is_the_global_batch_shared_by_the_processes(tmp_path, data, batch):
    """As on SageMaker's multi-GPU instances: each of 2 ranks takes half of mini_batch_size a step (17
    and 16 of 33), so an epoch has as many steps as in one process and covers every pair once."""
    out, trace = tmp_path / "run", tmp_path / "trace.txt"
    assert (
        run_worker(str(data), str(out), "--trace", str(trace), "--epochs", "1", "--batch", str(batch), nproc=2).wait(timeout=300)
        == 0
    )
    sizes = [[len(line.split()) for line in Path(f"{trace}.{rank}").read_text().splitlines()] for rank in (0, 1)]
    assert len(sizes[0]) == len(sizes[1])  # the ranks step together
    steps = len(sizes[0])
    assert steps in (TRAIN_PAIRS // batch, TRAIN_PAIRS // batch + 1)  # one process: ceil(1600 / batch)
    assert [a + b for a, b in zip(*sizes, strict=True)][:-1] == [batch] * (steps - 1)  # the global batch
    assert sorted([sizes[0][0], sizes[1][0]]) == [batch // 2, (batch + 1) // 2]  # the larger shard takes the odd pair
    assert TRAIN_PAIRS - batch < sum(map(sum, sizes)) <= TRAIN_PAIRS  # every pair once (a shard's tail may be cut)


def test_a_run_killed_mid_epoch_resumes_and_sees_every_pair_the_right_number_of_times(tmp_path, data):
    out, trace = tmp_path / "run", tmp_path / "trace.txt"
    epochs, steps_per_epoch = 4, TRAIN_PAIRS // 32
    victim = run_worker(str(data), str(out), "--trace", str(trace), "--sleep", "0.02", "--epochs", str(epochs))
    deadline = time.time() + 120
    while time.time() < deadline and (not trace.exists() or len(trace.read_text().splitlines()) < steps_per_epoch + 20):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_after = len(trace.read_text().splitlines())
    assert steps_per_epoch < killed_after < epochs * steps_per_epoch, "the kill should land mid-run"
    assert (out / "checkpoints" / "latest.pt").is_file()
    assert not list((out / "checkpoints").glob(".*.tmp"))  # no half-written checkpoint left behind
    resumed = run_worker(str(data), str(out), "--trace", str(trace), "--epochs", str(epochs), "--resume")
    assert resumed.wait(timeout=300) == 0
    seen = collections.Counter(int(i) for line in trace.read_text().splitlines() for i in line.split())
    assert set(seen) == set(range(TRAIN_PAIRS))
    repeated = [i for i, n in seen.items() if n == epochs + 1]
    assert all(n in (epochs, epochs + 1) for n in seen.values())
    assert len(repeated) < TRAIN_PAIRS  # at most one partial epoch was replayed (from the last checkpoint)
    assert len(repeated) <= 7 * 32  # checkpoint_every=7 steps of 32 pairs
    assert Object2Vec.load(out / "model", device="cpu").evaluate(data / "test.jsonl")["accuracy"] > 0.8


def test_cli_nproc_relaunches_under_torchrun_and_writes_one_model(tmp_path, data):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "object2vec", "train", "--nproc", "2", "--device", "cpu",
        "--train", str(data / "train.jsonl"), "--validation", str(data / "validation.jsonl"),
        "-p", "enc0_max_seq_len=10", "-p", "enc0_vocab_size=200", "-p", "enc0_network=pooled_embedding",
        "-p", "enc_dim=16", "-p", "mlp_dim=16", "-p", "epochs=2", "-o", str(tmp_path / "model"),
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("#throughput_metric") == 2  # rank 0 alone logs, once per epoch
    assert (tmp_path / "model" / "model.safetensors").is_file() and not (tmp_path / "model" / "checkpoints").exists()


def test_bad_data_stops_every_rank_with_one_message(tmp_path, data):
    bad = tmp_path / "bad.jsonl"
    bad.write_text((data / "train.jsonl").read_text() + '{"label": 1, "in0": [999], "in1": [1]}\n')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "object2vec", "train", "--nproc", "2", "--device", "cpu", "--train", str(bad),
        "-p", "enc0_max_seq_len=10", "-p", "enc0_vocab_size=200", "-o", str(tmp_path / "model"),
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.count(f"{bad}:{TRAIN_PAIRS + 1}: in0: token 0 is 999") == 1
    assert out.stderr.startswith("error: 1 data problem:") and out.stderr.count("\n") == 2, out.stderr  # no torchrun report


def test_an_unwritable_checkpoint_folder_stops_both_ranks_before_training_with_one_message(tmp_path, data):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "object2vec", "train", "--nproc", "2", "--device", "cpu", "--train", str(data / "train.jsonl"),
        "-p", "enc0_max_seq_len=10", "-p", "enc0_vocab_size=200", "-o", str(tmp_path / "model"),
        "--checkpoint-dir", str(blocker / "checkpoints"),
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr == f"error: {blocker / 'checkpoints'}: cannot be created (not a directory)\n"


def test_a_checkpoint_that_cannot_be_written_mid_run_stops_both_ranks_with_one_message(tmp_path, data):
    model, env = tmp_path / "model", {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "object2vec", "train", "--nproc", "2", "--device", "cpu", "--train", str(data / "train.jsonl"),
        "-p", "enc0_max_seq_len=10", "-p", "enc0_vocab_size=200", "-p", "enc0_network=pooled_embedding", "-p", "enc_dim=16",
        "-p", "mini_batch_size=4", "-p", "epochs=20", "--checkpoint-every", "20", "-o", str(model), "-q",
    ]  # fmt: skip
    run = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (model / "checkpoints" / "latest.pt").exists():
        time.sleep(0.05)
    shutil.rmtree(model / "checkpoints")
    (model / "checkpoints").write_text("a file where the checkpoint folder was")  # rank 0's next save fails
    try:
        _, err = run.communicate(timeout=120)  # before: rank 0 waited in a barrier, rank 1 in an all-reduce, forever
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # the launcher and both ranks
        raise
    assert run.returncode == 2, err  # the ranks' stderr says why, if a rank died instead
    assert err == f"error: cannot write the checkpoint {model / 'checkpoints' / 'latest.pt'}: file exists\n"
