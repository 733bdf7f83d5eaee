"""SIGTERM and SIGINT: training finishes its step, keeps a checkpoint, says how to resume and exits
non-zero; a resumed run ends exactly where an uninterrupted one does; batch transform leaves no
temporary file (issue 16, item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import TINY
from object2vec import Object2Vec, interrupts
from object2vec.data.synthetic import make_pairs, write_jsonl
from object2vec.serving.predictor import Predictor
from object2vec.serving.transform import transform

HP = {**TINY, "epochs": 3, "mini_batch_size": 16}


def weights(model: Object2Vec) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.model_.state_dict().items()}


def test_a_signal_mid_epoch_finishes_the_step_checkpoints_and_the_resumed_run_ends_bit_identical(tmp_path, train_file):
    straight = weights(Object2Vec(seed=3, device="cpu", **HP).fit(train_file))
    steps = []

    def stop_at_step_25(_batch) -> None:  # 300 pairs / 16 = 19 steps an epoch: this is epoch 2, batch 6
        steps.append(1)
        if len(steps) == 25:
            os.kill(os.getpid(), signal.SIGTERM)

    with interrupts.handled(), pytest.raises(interrupts.Interrupted) as stopped:
        Object2Vec(seed=3, device="cpu", **HP).fit(train_file, checkpoint_dir=tmp_path, on_step=stop_at_step_25)
    assert str(stopped.value) == "interrupted by SIGTERM after epoch 2, batch 6 of 19"  # the step finished, no other began
    assert len(steps) == 25 and stopped.value.exit_code == 143
    state = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (2, 6)
    resumed = Object2Vec(seed=3, device="cpu", **HP).fit(train_file, checkpoint_dir=tmp_path, resume=True)
    assert all(torch.equal(straight[k], v) for k, v in weights(resumed).items())


def test_outside_the_steps_a_signal_raises_at_once_and_a_second_one_does_not_wait():
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted, match="interrupted by SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert interrupts.pending() == signal.SIGTERM
            with pytest.raises(interrupts.Interrupted, match="SIGTERM"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_batch_transform_interrupted_mid_file_leaves_no_temporary_file(tmp_path):
    model_dir = tmp_path / "model"
    Object2Vec(seed=0, device="cpu", **{**TINY, "epochs": 1}).fit(make_pairs(64, seed=1)).save(model_dir)
    predictor = Predictor.load(model_dir, "cpu")
    source, out = tmp_path / "pairs.fifo", tmp_path / "out" / "scores.jsonl"
    os.mkfifo(source)
    line = b'{"in0": [1, 2], "in1": [3]}\n'

    def feed() -> None:  # a first chunk is scored and written to the temporary file, then SIGTERM arrives
        with open(source, "wb") as fh:
            fh.write(line * 5000)
            fh.flush()
            deadline = time.time() + 30
            while time.time() < deadline and not any(out.parent.glob(".scores.jsonl.*")):
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with interrupts.handled(), pytest.raises(interrupts.Interrupted):
        transform(predictor, source, out, chunk=1000)
    feeder.join()
    assert list(out.parent.iterdir()) == []


def test_the_command_line_says_how_to_resume_exits_143_and_the_resumed_run_finishes(tmp_path):
    data = write_jsonl(make_pairs(1600, seed=1), tmp_path / "train.jsonl")
    args = [arg for key, value in {**TINY, "epochs": 3, "mini_batch_size": 4}.items() for arg in ("-p", f"{key}={value}")]
    command = [sys.executable, "-m", "object2vec", "train", "--train", str(data), *args, "--checkpoint-every", "50"]
    command += ["-o", str(tmp_path / "model"), "-q"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "model" / "checkpoints" / "latest.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():  # the first checkpoint (step 50 of 1,200)
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143
    assert err.count("\n") == 1 and err.startswith("interrupted by SIGTERM after epoch ")
    assert f"the checkpoint {checkpoint} is kept: run the same command with --resume to continue from it" in err
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["latest.pt"]
    resumed = subprocess.run([*command[:-1], "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stderr and not (tmp_path / "model" / "checkpoints").exists()


def test_interrupted_knows_its_exit_status():
    assert interrupts.Interrupted(signal.SIGINT).exit_code == 130
    assert isinstance(interrupts.Interrupted(signal.SIGTERM), BaseException)
    assert not isinstance(interrupts.Interrupted(signal.SIGTERM), Exception)  # `except Exception` does not swallow it


@pytest.fixture(autouse=True)
def _no_leftover_signal():
    yield
    interrupts.clear()
