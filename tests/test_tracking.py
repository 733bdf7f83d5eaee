"""Experiment tracking: ``--log-to tensorboard[:DIR]`` and ``--log-to mlflow[:URI]``, read back from local files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY
from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs, write_jsonl
from object2vec.training import tracking

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

TRAIN_ARGS = [f"-p{k}={v}" for k, v in TINY.items()] + ["--device", "cpu"]


@pytest.fixture(autouse=True)
def file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a plain folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs")
    for name, n, seed in (("train", 300, 1), ("validation", 100, 2), ("test", 100, 3)):
        write_jsonl(make_pairs(n, seed=seed), folder / f"{name}.jsonl")
    return folder


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One training run logged to both trackers at once (``--log-to`` is repeatable)."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        patch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        args = [
            "train", "--train", str(data / "train.jsonl"), "--validation", str(data / "validation.jsonl"),
            "--test", str(data / "test.jsonl"), *TRAIN_ARGS, "-o", str(root / "model"),
            "--log-to", f"tensorboard:{root / 'tb'}", "--log-to", f"mlflow:{(root / 'mlruns').as_uri()}",
        ]  # fmt: skip
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {"model": root / "model", "tb": root / "tb", "mlruns": root / "mlruns"}


def tensorboard_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def mlflow_run(store: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("object2vec")
    (found,) = client.search_runs([experiment.experiment_id])
    return client, found


def test_tensorboard_gets_each_epochs_metrics_and_throughput(run):
    events = tensorboard_events(run["tb"])
    scalars = set(events.Tags()["scalars"])
    for name in ("train/accuracy", "train/cross_entropy", "validation/accuracy", "validation/cross_entropy"):
        assert name in scalars
        assert [e.step for e in events.Scalars(name)] == [1, 2]
    assert all(e.value > 0 for e in events.Scalars("train/throughput"))
    assert all(e.value > 0 for e in events.Scalars("train/epoch_seconds"))
    assert {"test/accuracy", "test/cross_entropy", "best_epoch"} <= scalars
    metrics = __import__("json").loads((run["model"] / "metrics.json").read_text())
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(metrics["test"]["accuracy"])


def test_tensorboard_gets_the_hyperparameters(run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = tensorboard_events(run["tb"])
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["enc_dim"].string_value == "16"
    assert start.hparams["enc1_network"].string_value == "pooled_embedding"  # resolved: enc1 copies enc0
    assert start.hparams["seed"].number_value == 0
    assert start.hparams["precision"].string_value == "fp32"


def test_mlflow_gets_the_parameters_each_epochs_metrics_and_the_model_folder(run):
    client, found = mlflow_run(run["mlruns"])
    assert found.info.status == "FINISHED" and found.info.run_name == "model"
    assert found.data.params["enc_dim"] == "16" and found.data.params["epochs"] == "2"
    assert found.data.params["enc1_max_seq_len"] == "10"  # resolved: enc1 copies enc0
    history = client.get_metric_history(found.info.run_id, "validation/cross_entropy")
    assert sorted(m.step for m in history) == [1, 2]
    assert found.data.metrics["train/throughput"] > 0
    assert {"test/accuracy", "best_epoch"} <= set(found.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "model")}
    assert {"model/config.json", "model/model.safetensors", "model/metrics.json"} <= artifacts


def test_a_run_that_fails_is_marked_failed_in_mlflow(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"label": 1, "in0": [999], "in1": [1]}\n')
    store = tmp_path / "mlruns"
    args = ["train", "--train", str(bad), *TRAIN_ARGS, "-o", str(tmp_path / "m"), "--log-to", f"mlflow:{store.as_uri()}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "not less than enc0_vocab_size=200" in result.stderr
    _, found = mlflow_run(store)
    assert found.info.status == "FAILED"


def test_an_unknown_tracker_is_one_clear_error(tmp_path, data):
    args = ["train", "--train", str(data / "train.jsonl"), *TRAIN_ARGS, "-o", str(tmp_path / "m"), "--log-to", "wandb"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr == "error: --log-to 'wandb': unknown tracker 'wandb'; expected tensorboard[:DIR] or mlflow[:URI]\n"
    assert not (tmp_path / "m").exists()


def test_a_store_mlflow_refuses_is_one_clear_error(tmp_path, data, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    uri = (tmp_path / "mlruns").as_uri()
    args = ["train", "--train", str(data / "train.jsonl"), *TRAIN_ARGS, "-o", str(tmp_path / "m"), "--log-to", f"mlflow:{uri}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --log-to mlflow:{uri}: MLflow refused it (") and result.stderr.count("\n") == 1
    assert result.stderr.endswith("set MLFLOW_ALLOW_FILE_STORE=true to log to a folder, or use mlflow:sqlite:///mlflow.db\n")


def test_only_rank_0_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    tracker = tracking.open_tracker(f"tensorboard:{tmp_path / 'tb'}", {"enc_dim": 16})
    tracker.on_epoch_end({"epoch": 1, "train": {"accuracy": 0.5}, "throughput": 10.0, "seconds": 1.0})
    tracker.finish({"best_epoch": 1})
    assert not (tmp_path / "tb").exists()


def test_a_tracker_is_a_callback_of_the_python_api(tmp_path):
    tracker = tracking.TensorBoardTracker(tmp_path / "tb", {"enc_dim": 16})
    model = Object2Vec(seed=0, device="cpu", **TINY).fit(make_pairs(200, seed=1), callbacks=[tracker])
    tracker.finish(model.metrics_)
    assert [e.step for e in tensorboard_events(tmp_path / "tb").Scalars("train/accuracy")] == [1, 2]
