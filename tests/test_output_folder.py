"""``object2vec train -o FOLDER`` never deletes what it did not write, never shares a folder with a
second training, and finds an unwritable or full disk before the first step (issue 16, items 2-4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY
from object2vec.cli import main
from object2vec.errors import Object2VecError
from object2vec.output_folder import OutputError, OutputFolder

ARGS = [arg for key, value in TINY.items() for arg in ("-p", f"{key}={value}")]


def train(train_file: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["train", "--train", str(train_file), "-q", *ARGS, *extra])
    return result.exit_code, result.output


def test_training_twice_into_one_folder_needs_overwrite(tmp_path, train_file):
    model = tmp_path / "model"
    assert train(train_file, "-o", str(model))[0] == 0
    before = (model / "model.safetensors").read_bytes()
    code, output = train(train_file, "-o", str(model), "--seed", "1")
    assert code == 2 and f"error: {model}: holds a model already; pass --overwrite" in output
    assert (model / "model.safetensors").read_bytes() == before  # the earlier model is untouched
    code, output = train(train_file, "-o", str(model), "--seed", "1", "--overwrite")
    assert code == 0, output
    assert (model / "model.safetensors").read_bytes() != before


def test_a_folder_of_other_files_is_refused_and_kept_whole(tmp_path, train_file):
    folder = tmp_path / "work"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoints" / "other.ckpt").write_text("also mine")
    code, output = train(train_file, "-o", str(folder))
    assert code == 2 and "holds files that are not an object2vec model (checkpoints/other.ckpt, notes.txt)" in output
    code, output = train(train_file, "-o", str(folder), "--overwrite")  # written beside them
    assert code == 0, output
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "checkpoints" / "other.ckpt").read_text() == "also mine"  # only latest.pt was removed
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["other.ckpt"]
    assert (folder / "config.json").is_file()


@pytest.mark.parametrize("output", ["", ".", ".."])
def test_the_current_folder_or_one_above_it_is_refused(tmp_path, train_file, output, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    code, result = train(train_file, "-o", output)
    assert code == 2 and "is the current folder or one that holds it" in result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "train.jsonl"]


def test_an_unfinished_run_needs_resume_or_overwrite(tmp_path, train_file):
    folder = tmp_path / "model"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "latest.pt").write_bytes(b"an unfinished run")
    with pytest.raises(OutputError, match="an unfinished run's checkpoint; pass --resume to continue it"):
        OutputFolder.claim(folder, folder / "checkpoints")
    OutputFolder.claim(folder, folder / "checkpoints", resume=True).release()
    OutputFolder.claim(folder, folder / "checkpoints", overwrite=True).release()


def test_a_second_claim_on_a_folder_is_refused_while_the_first_holds_it(tmp_path):
    first = OutputFolder.claim(tmp_path / "model", tmp_path / "model" / "checkpoints")
    with pytest.raises(OutputError, match="another object2vec training is writing to this folder"):
        OutputFolder.claim(tmp_path / "model", tmp_path / "model" / "checkpoints")
    first.release()
    OutputFolder.claim(tmp_path / "model", tmp_path / "model" / "checkpoints").release()


def test_two_concurrent_trainings_one_is_refused_with_a_clear_message(tmp_path, train_file):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from object2vec.output_folder import OutputFolder;"
         "OutputFolder.claim(Path(sys.argv[1]), None); print('held', flush=True); time.sleep(60)", str(tmp_path / "model")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = train(train_file, "-o", str(tmp_path / "model"))
        assert code == 2 and "another object2vec training is writing to this folder" in output
    finally:
        holder.kill()
        holder.wait()


def test_an_unwritable_folder_is_refused_before_training_and_a_refusal_leaves_nothing(tmp_path, train_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, output = train(train_file, "-o", str(tmp_path / "model"), "--checkpoint-dir", str(blocker / "checkpoints"))
    assert code == 2 and f"error: {blocker / 'checkpoints'}: cannot be created (not a directory)" in output
    assert "#quality_metric" not in output  # found before the first step
    assert not (tmp_path / "model").exists()  # the folder it made for the model is gone again


def test_a_disk_without_room_for_the_model_is_refused_before_training(tmp_path):
    with pytest.raises(OutputError, match=r"the disk has .* free, but the model and its checkpoints need about"):
        OutputFolder.claim(tmp_path / "model", None, model_bytes=shutil.disk_usage(tmp_path).free + 2**30)
    assert not (tmp_path / "model").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MB tmpfs (root only: elsewhere the test is skipped)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_during_training_is_one_clear_line_and_leaves_no_partial_file(tiny_disk, train_file):
    # the model fits the free-space check, but a planted file fills the disk once training has started
    (tiny_disk / "model").mkdir()
    filler = tiny_disk / "filler"

    def fill(_batch) -> None:
        if not filler.exists():
            filler.write_bytes(b"\0" * (shutil.disk_usage(tiny_disk).free - 4096))

    from object2vec import Object2Vec
    from object2vec.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint .*latest.pt: no space left on device \("):
        Object2Vec(seed=0, device="cpu", **{**TINY, "enc_dim": 64, "mlp_dim": 64}).fit(
            train_file, checkpoint_dir=tiny_disk / "model" / "checkpoints", on_step=fill
        )
    assert sorted(p.name for p in tiny_disk.rglob("*")) == ["checkpoints", "filler", "model"]  # no partial file


def test_a_read_only_disk_is_refused_before_training(tiny_disk, train_file):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    code, output = train(train_file, "-o", str(tiny_disk / "model"))
    assert code == 2 and "cannot be created (read-only file system)" in output


def test_a_model_that_does_not_fit_the_disk_leaves_no_partial_model(tiny_disk, records):
    from object2vec import Object2Vec

    model = Object2Vec(seed=0, device="cpu", **{**TINY, "epochs": 1, "enc_dim": 256, "mlp_dim": 256}).fit(records[:64])
    with pytest.raises(Object2VecError, match=r"cannot write the model to .*: no space left on device"):
        model.save(tiny_disk / "model")
    assert list((tiny_disk / "model").iterdir()) == []
