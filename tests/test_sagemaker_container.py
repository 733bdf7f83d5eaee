"""The SageMaker container contract (``train --sagemaker`` / ``serve --sagemaker``) in a temporary /opt/ml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from conftest import TINY, free_port, http, wait_for_ping
from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs, write_jsonl


def opt_ml(root: Path, hyperparameters: dict | None, channels: dict[str, list[dict]]) -> Path:
    """A /opt/ml tree as SageMaker lays it out: all-string hyperparameters, one folder per channel."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    if hyperparameters is not None:
        (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    for name, records in channels.items():
        write_jsonl(records, root / "input" / "data" / name / "part-00000.jsonl")
    (root / "model").mkdir()  # SageMaker creates it empty
    return root


def train_in(root: Path, *extra: str):
    return CliRunner().invoke(main, ["train", "--sagemaker", "--sagemaker-root", str(root), "-q", *extra])


def test_trains_from_channels_and_writes_the_model_to_opt_ml_model(tmp_path):
    root = opt_ml(tmp_path, TINY, {"train": make_pairs(200, seed=1), "validation": make_pairs(50, seed=2)})
    result = train_in(root)
    assert result.exit_code == 0, result.output
    model = Object2Vec.load(root / "model", device="cpu")
    assert model.hyperparameters_.enc_dim == TINY["enc_dim"]
    assert "validation" in json.loads((root / "model" / "metrics.json").read_text())["epochs"][-1]
    assert not (root / "output" / "failure").exists()


def test_the_root_comes_from_the_environment_too(tmp_path, monkeypatch):
    root = opt_ml(tmp_path, TINY, {"train": make_pairs(100, seed=1)})
    monkeypatch.setenv("OBJECT2VEC_SAGEMAKER_ROOT", str(root))
    assert CliRunner().invoke(main, ["train", "--sagemaker", "-q"]).exit_code == 0
    assert (root / "model" / "model.safetensors").exists()


def test_bad_hyperparameters_are_written_to_the_failure_file(tmp_path):
    root = opt_ml(tmp_path, {**TINY, "enc_dim": 2}, {"train": make_pairs(50, seed=1)})
    result = train_in(root)
    assert result.exit_code != 0
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ") and "enc_dim must be an int in [4, 10000]; got '2'" in failure
    assert list((root / "model").iterdir()) == []


def test_bad_data_names_the_channel_file_and_line(tmp_path):
    root = opt_ml(tmp_path, TINY, {"train": make_pairs(20, seed=1)})
    with open(root / "input" / "data" / "train" / "part-00000.jsonl", "a") as fh:
        fh.write('{"label": 1, "in0": [5000], "in1": [1]}\n')
    assert train_in(root).exit_code != 0
    failure = (root / "output" / "failure").read_text()
    assert "part-00000.jsonl:21: in0: token 0 is 5000" in failure


def test_a_missing_train_channel_is_a_failure(tmp_path):
    root = opt_ml(tmp_path, TINY, {"validation": make_pairs(20, seed=1)})
    assert train_in(root).exit_code != 0
    assert "train channel is missing" in (root / "output" / "failure").read_text()


def test_without_hyperparameters_json_defaults_apply(tmp_path):
    """SageMaker may omit the file; the built-in defaults then need enc0_max_seq_len/vocab: a clear failure."""
    root = opt_ml(tmp_path, None, {"train": make_pairs(20, seed=1)})
    assert train_in(root).exit_code != 0
    assert "enc0_max_seq_len" in (root / "output" / "failure").read_text()


def test_long_failure_reasons_are_trimmed_to_what_sagemaker_shows(tmp_path):
    root = opt_ml(tmp_path, TINY, {"train": [{"label": 1, "in0": [9999], "in1": [1]}] * 50})
    train_in(root)
    assert len((root / "output" / "failure").read_text()) <= 1024


def test_serve_sagemaker_loads_opt_ml_model_and_listens_on_all_interfaces(tmp_path):
    root = opt_ml(tmp_path, TINY, {"train": make_pairs(100, seed=1)})
    assert train_in(root).exit_code == 0
    port = free_port()
    env = {
        **os.environ,
        "OBJECT2VEC_SAGEMAKER_ROOT": str(root),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",  # a transform job with max_payload=20
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "object2vec", "serve", "--sagemaker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_for_ping(port, process)
        status, body = http(port, orjson.dumps({"instances": [{"in0": [1], "in1": [2]}]}))
        assert status == 200 and len(body["predictions"][0]["scores"]) == 2
        nine_mb = orjson.dumps({"instances": [{"in0": [1], "in1": [2]}]}) + b" " * (9 * 1024 * 1024)
        status, body = http(port, nine_mb)
        assert status == 200, body  # over the 6 MB default, under the job's 20 MB
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution-parameters", timeout=10) as r:
            assert orjson.loads(r.read())["MaxPayloadInMB"] == 20
    finally:
        process.terminate()
        process.wait(timeout=20)
    log = process.stderr.read().decode()
    assert f"0.0.0.0:{port}" in log and "device cpu" in log and "payload limit 20 MB" in log  # auto: no GPU here


@pytest.mark.parametrize("entry", ["train", "serve"])
def test_the_container_entrypoint_maps_sagemakers_argument(entry):
    script = Path(__file__).parents[1] / "docker" / "entrypoint.sh"
    text = script.read_text()
    assert f"object2vec {entry} --sagemaker" in text and os.access(script, os.X_OK)


def test_a_tuning_jobs_hyperparameters_train_and_sagemakers_own_keys_are_named_in_one_line(tmp_path):
    """Automatic model tuning adds _tuning_objective_metric to every job (and the SDK may add
    sagemaker_estimator_*): they are not hyperparameters, and must not fail the job."""
    tuning = {
        **TINY,
        "_tuning_objective_metric": "validation:accuracy",
        "sagemaker_estimator_class_name": '"Estimator"',
        "sagemaker_estimator_module": '"sagemaker.estimator"',
        "_kvstore": "device",
    }
    root = opt_ml(tmp_path, tuning, {"train": make_pairs(200, seed=1), "validation": make_pairs(50, seed=2)})
    result = CliRunner().invoke(main, ["train", "--sagemaker", "--sagemaker-root", str(root)])
    assert result.exit_code == 0, result.output
    named = [line for line in result.output.splitlines() if "_tuning_objective_metric" in line]
    assert len(named) == 1 and "Ignoring keys SageMaker adds" in named[0]
    assert "sagemaker_estimator_class_name" in named[0] and "_kvstore" in named[0]
    assert (root / "model" / "model.safetensors").is_file() and not (root / "output" / "failure").exists()
    assert "_tuning_objective_metric" not in (root / "model" / "config.json").read_text()


def test_an_unknown_key_without_sagemakers_prefixes_still_fails_the_job(tmp_path):
    root = opt_ml(tmp_path, {**TINY, "tuning_objective_metric": "x"}, {"train": make_pairs(20, seed=1)})
    assert train_in(root).exit_code != 0
    assert "tuning_objective_metric is not an Object2Vec hyperparameter" in (root / "output" / "failure").read_text()


@pytest.mark.parametrize(
    ("gpus", "device", "processes"),
    [(4, "auto", 4), (4, "cuda", 4), (1, "auto", 1), (4, "cpu", 1), (4, "cuda:1", 1), (0, "auto", 1)],
)
def test_train_sagemaker_takes_one_process_per_visible_gpu(monkeypatch, gpus, device, processes):
    """SageMaker's Object2Vec uses every GPU of the instance; a named device or a CPU uses one process."""
    import torch

    from object2vec.cli.train import _sagemaker_processes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert _sagemaker_processes(device) == processes


def test_train_sagemaker_on_a_multi_gpu_instance_relaunches_under_torchrun(tmp_path, monkeypatch):
    """The relaunch is --nproc's (tested for real in test_distributed.py); CUDA is simulated here."""
    import torch

    from object2vec.cli import train as train_cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    launched = []
    monkeypatch.setattr(train_cli, "_relaunch_under_torchrun", lambda n: launched.append(n) or 0)
    root = opt_ml(tmp_path, TINY, {"train": make_pairs(50, seed=1)})
    result = CliRunner().invoke(main, ["train", "--sagemaker", "--sagemaker-root", str(root), "-q"])
    assert result.exit_code == 0, result.output
    assert launched == [4] and "4 GPUs visible: training with one process per GPU" in result.output


@pytest.mark.parametrize(
    ("sagemaker", "cuda", "device", "workers"), [(True, True, "auto", 1), (True, False, "auto", 3), (False, True, "cpu", 1)]
)
def test_serve_sagemaker_serves_on_the_gpu_when_there_is_one(tmp_path, monkeypatch, sagemaker, cuda, device, workers):
    """serve --sagemaker defaults to --device auto (CUDA when available; one worker holds the model on
    the GPU) and to one worker per core on a CPU; plain serve stays on the CPU unless told."""
    import torch

    from object2vec.serving import app, container

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(container, "available_cores", lambda: 3)
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS", raising=False)
    started = []
    monkeypatch.setattr(app, "serve", lambda settings, host, port: started.append(settings))
    args = ["serve", "--sagemaker", "--sagemaker-root", str(tmp_path)] if sagemaker else ["serve", str(tmp_path)]
    CliRunner().invoke(main, args)
    assert [(s.device, s.workers) for s in started] == [(device, workers)]


def test_a_worker_count_that_is_not_a_number_is_one_clear_error(monkeypatch):
    from object2vec.errors import Object2VecError
    from object2vec.serving import container

    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "two")
    with pytest.raises(Object2VecError, match=r"SAGEMAKER_MODEL_SERVER_WORKERS='two'; expected a whole number of workers"):
        container.serve_workers()
