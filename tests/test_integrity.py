"""Trust and integrity (issue 16, items 9-11 and 13): a checkpoint resumes only the data it was
trained on; labels float32 cannot hold and losses that stop being numbers end training clearly;
damaged or tampered model and index files, null hyperparameters, undecodable files, negative seeds
and unknown devices are one clear line each, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from conftest import TINY
from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs
from object2vec.errors import CheckpointError, DataError, HyperparameterError, IndexFormatError, ModelFormatError, Object2VecError
from object2vec.training.epoch import NonFiniteLoss

REGRESSION = {**TINY, "output_layer": "mean_squared_error", "epochs": 1}


# --- item 9: a checkpoint belongs to its data ------------------------------------------------------


def test_resuming_on_other_data_is_refused_with_both_fingerprints(tmp_path, records):
    Object2Vec(seed=0, device="cpu", **TINY).fit(records, checkpoint_dir=tmp_path)
    edited = [dict(r) for r in records]
    edited[7]["label"] = 1 - edited[7]["label"]  # one label changed, same size
    with pytest.raises(
        CheckpointError, match=r"was written for other train data \(300 pairs, blake2b \w+; this run reads 300 pairs"
    ):
        Object2Vec(seed=0, device="cpu", **TINY).fit(edited, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="other validation data"):
        Object2Vec(seed=0, device="cpu", **TINY).fit(records, records[:50], checkpoint_dir=tmp_path, resume=True)
    Object2Vec(seed=0, device="cpu", **TINY).fit(records, checkpoint_dir=tmp_path, resume=True)  # the same data resumes


# --- item 10: labels and losses that float32 cannot hold -----------------------------------------


def test_a_regression_label_float32_cannot_hold_is_refused():
    records = make_pairs(40, seed=1, task="regression")
    records[3]["label"] = 1e39
    with pytest.raises(
        DataError, match=r"records\[3\]: label: 1e\+39 does not fit float32; expected a finite number within float32's range"
    ):
        Object2Vec(device="cpu", **REGRESSION).fit(records)


def test_a_loss_that_becomes_infinite_stops_training_naming_the_epoch_and_batch():
    records = make_pairs(64, seed=1, task="regression")
    records[10]["label"] = 3e38  # fits float32, but its square does not
    model = Object2Vec(device="cpu", **{**REGRESSION, "epochs": 2, "mini_batch_size": 8})
    with pytest.raises(
        NonFiniteLoss, match=r"the loss is not a finite number \(inf\) at epoch 1, batch [1-8] of 8; lower learning_rate"
    ):
        model.fit(records)


def test_the_command_line_prints_that_as_one_line(tmp_path):
    records = make_pairs(64, seed=1, task="regression")
    records[10]["label"] = 3e38
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = [arg for key, value in REGRESSION.items() for arg in ("-p", f"{key}={value}")]
    result = CliRunner().invoke(main, ["train", "--train", str(path), *args, "-o", str(tmp_path / "m"), "-q"])
    assert result.exit_code == 2
    assert result.output.startswith("error: training stopped: the loss is not a finite number (inf) at epoch 1, batch ")
    assert result.output.count("\n") == 1


# --- item 11: model files ------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    Object2Vec(seed=0, device="cpu", **TINY).fit(make_pairs(64, seed=1)).save(tmp_path / "m")
    return tmp_path / "m"


def edit_config(folder, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0, None])
def test_a_format_version_outside_the_supported_range_is_refused(model_dir, version):
    edit_config(model_dir, format_version=version)
    with pytest.raises(ModelFormatError, match=r"format_version .* is not a format version; expected an int in \[1, 1\]"):
        Object2Vec.load(model_dir)


def test_weights_holding_nan_are_refused_at_load(model_dir):
    tensors = load_file(model_dir / "model.safetensors")
    name = next(k for k in tensors if "mlp" in k)
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, model_dir / "model.safetensors")
    with pytest.raises(ModelFormatError, match=rf"model.safetensors: {name} hold NaN or infinite values"):
        Object2Vec.load(model_dir)


@pytest.mark.parametrize(
    ("content", "message"), [(b"{oops", "is not valid JSON"), (b"\xff\xfe\x00", "is not valid JSON"), (b"[1]", "holds list")]
)
def test_a_corrupt_metrics_file_is_a_clear_error(model_dir, content, message):
    (model_dir / "metrics.json").write_bytes(content)
    with pytest.raises(ModelFormatError, match=f"metrics.json: {message}"):
        Object2Vec.load(model_dir)


def test_a_null_hyperparameter_in_a_model_config_is_refused_at_load(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    config["hyperparameters"]["enc_dim"] = None
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"config.json: 1 invalid hyperparameter:\n  - enc_dim is null; expected an int"):
        Object2Vec.load(model_dir)


# --- item 11 and 13: tampered index files --------------------------------------------------------


@pytest.fixture
def index_dir(tmp_path):
    pytest.importorskip("faiss")
    from object2vec.retrieval.neighbors import NeighborIndex

    NeighborIndex.build(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], kind="hnsw").save(tmp_path / "index")
    return tmp_path / "index"


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("ids.json", '["a", "b", null, "d"]', r"ids.json: holds None, not a string or an integer"),
        ("ids.json", '["a", "b", {"x": 1}, "d"]', r"ids.json: holds \{'x': 1\}, not a string"),
        ("ids.json", '["a", "b", "b", "d"]', r"ids.json: repeats an id"),
        ("ids.json", b"\xff\xfe[]", r"ids.json: is not valid JSON"),
        ("meta.json", {"params": {"ef_search": "many"}}, r"meta.json: params .* is damaged"),
        ("meta.json", {"params": [1]}, r"meta.json: params .* is damaged"),
        ("meta.json", {"dim": True}, r"meta.json: metric, kind or dim is missing or unknown"),
        ("meta.json", {"format_version": 0}, r"format_version 0 is not supported"),
    ],
)
def test_tampered_index_files_are_format_errors(index_dir, file, content, message):
    from object2vec.retrieval.neighbors import NeighborIndex

    if isinstance(content, dict):
        content = json.dumps({**json.loads((index_dir / file).read_text()), **content})
    (index_dir / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IndexFormatError, match=message):
        NeighborIndex.load(index_dir)


# --- item 13: the remaining tracebacks -----------------------------------------------------------


def run_train(train_file, tmp_path, *extra: str) -> tuple[int, str]:
    args = [arg for key, value in TINY.items() for arg in ("-p", f"{key}={value}")]
    result = CliRunner().invoke(main, ["train", "--train", str(train_file), *args, "-o", str(tmp_path / "m"), *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"enc_dim": "16", "mlp_dim": "\xe9"}', "is not valid JSON ('utf-8' codec can't decode byte 0xe9"),
        (
            b'{"mlp_activation": null}',
            "mlp_activation is null; expected one of tanh, relu, linear (leave it out to use the default).",
        ),
    ],
)
def test_a_hyperparameters_file_that_is_not_utf8_or_holds_null_is_one_clear_error(train_file, tmp_path, content, message):
    (tmp_path / "hp.json").write_bytes(content)
    code, output = run_train(train_file, tmp_path, "--hyperparameters", str(tmp_path / "hp.json"))
    assert code == 2 and message in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--seed", "-1"], "error: seed must be an int in [0, 2**63); got -1"),
        (["--device", "bogus"], "error: device 'bogus' is not a device name; expected auto, cpu, cuda or cuda:N"),
        (["--device", "cuda:99"], "error: device 'cuda:99': this machine has"),
    ],
)
def test_a_negative_seed_or_an_unknown_device_is_one_clear_error(train_file, tmp_path, option, message):
    code, output = run_train(train_file, tmp_path, *option)
    assert code == 2 and output.startswith(message) and output.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_the_python_api_refuses_them_too(records):
    with pytest.raises(Object2VecError, match="seed must be an int"):
        Object2Vec(seed=-5, **TINY).fit(records)
    with pytest.raises(Object2VecError, match="is not a device"):
        Object2Vec(device="bogus", **TINY).fit(records)
    with pytest.raises(HyperparameterError, match="dropout is null"):
        Object2Vec(dropout=None, **TINY).fit(records)


def test_a_checkpoint_that_is_not_a_checkpoint_is_refused(tmp_path, records):
    torch.save([1, 2, 3], tmp_path / "latest.pt")
    with pytest.raises(CheckpointError, match="is not an object2vec checkpoint"):
        Object2Vec(**TINY).fit(records, checkpoint_dir=tmp_path, resume=True)
