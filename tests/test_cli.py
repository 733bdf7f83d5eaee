"""The command line: train/evaluate end to end, SageMaker hyperparameters.json, clean errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY, write_lines
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs, write_jsonl


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_train_then_evaluate_with_sagemaker_string_hyperparameters(runner, tmp_path, train_file):
    hp = tmp_path / "hyperparameters.json"
    hp.write_text(
        json.dumps(
            {
                "enc0_max_seq_len": "10",
                "enc0_vocab_size": "200",
                "enc0_network": "pooled_embedding",
                "enc_dim": "16",
                "mlp_dim": "16",
                "epochs": "2",
                "comparator_list": "hadamard, concat, abs_diff",
                "tied_token_embedding_weight": "True",
                "enc0_layers": "auto",
                "learning_rate": "0.01",
                "_kvstore": "device",
            }
        )
    )
    result = runner.invoke(
        main,
        [
            "train",
            "--train",
            str(train_file),
            "--validation",
            str(train_file),
            "--hyperparameters",
            str(hp),
            "-o",
            str(tmp_path / "model"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "#quality_metric: host=algo-1, epoch=2, validation accuracy <score>=" in result.output
    assert (tmp_path / "model" / "model.safetensors").is_file()
    result = runner.invoke(main, ["evaluate", str(tmp_path / "model"), str(train_file), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) == {"accuracy", "cross_entropy"}


def test_named_options_and_p_override_the_file(runner, tmp_path, train_file):
    hp = tmp_path / "hp.json"
    hp.write_text(
        json.dumps({"enc0_max_seq_len": "10", "enc0_vocab_size": "200", "enc0_network": "pooled_embedding", "enc_dim": "8"})
    )
    args = [
        "train",
        "--train",
        str(train_file),
        "--hyperparameters",
        str(hp),
        "-p",
        "enc_dim=12",
        "--mlp-dim",
        "8",
        "--epochs",
        "1",
        "-o",
        str(tmp_path / "m"),
    ]
    assert runner.invoke(main, args).exit_code == 0
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["hyperparameters"]
    assert saved["enc_dim"] == 12 and saved["mlp_dim"] == 8


def test_underscore_spelling_of_options_is_accepted(runner, tmp_path, train_file):
    args = [
        "train",
        "--train",
        str(train_file),
        "--enc0_max_seq_len",
        "10",
        "--enc0_vocab_size",
        "200",
        "--enc0_network",
        "pooled_embedding",
        "--enc_dim",
        "8",
        "--mlp_dim",
        "8",
        "--dry-run",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "nothing was written" in result.output


def test_bad_hyperparameters_print_one_message_without_traceback(runner, train_file, tmp_path):
    result = runner.invoke(
        main, ["train", "--train", str(train_file), "--enc0-max-seq-len", "0", "--enc-dim", "2", "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "enc0_max_seq_len must be an int in [1, 5000]; got '0'." in result.output
    assert "enc_dim must be an int in [4, 10000]; got '2'." in result.output
    assert "enc0_vocab_size is required" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_bad_data_stops_before_training_and_writes_nothing(runner, tmp_path):
    data = write_lines(tmp_path / "bad.jsonl", '{"label": 1, "in0": [1], "in1": [2]}', '{"label": 1, "in0": [300], "in1": [2]}')
    args = ["train", "--train", str(data), "--enc0-max-seq-len", "5", "--enc0-vocab-size", "200", "-o", str(tmp_path / "m")]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert f"{data}:2: in0: token 0 is 300, not less than enc0_vocab_size=200" in result.output
    assert "#quality_metric" not in result.output and not (tmp_path / "m").exists()


def test_malformed_hyperparameters_file(runner, tmp_path, train_file):
    hp = write_lines(tmp_path / "hp.json", "[1, 2]")
    result = runner.invoke(main, ["train", "--train", str(train_file), "--hyperparameters", str(hp), "--dry-run"])
    assert result.exit_code == 2 and "expected a JSON object of name -> value" in result.output


def test_p_without_equals_sign(runner, train_file):
    result = runner.invoke(main, ["train", "--train", str(train_file), "-p", "enc_dim"])
    assert result.exit_code == 2 and "expected name=value" in result.output


def test_evaluate_a_missing_model(runner, tmp_path, train_file):
    result = runner.invoke(main, ["evaluate", str(tmp_path / "none"), str(train_file)])
    assert result.exit_code == 2 and "no such model folder" in result.output


def test_help_shows_every_hyperparameter_with_range_and_default(runner):
    result = runner.invoke(main, ["train", "--help"], terminal_width=200)
    assert "--enc-dim, --enc_dim VALUE" in result.output
    assert "[an int in [4, 10000]; default: 4096]" in result.output
    assert "--optimizer VALUE" in result.output


def test_docs_hyperparameters_md_is_generated_from_the_table(runner):
    from pathlib import Path

    doc = Path(__file__).parents[1] / "docs" / "hyperparameters.md"
    result = runner.invoke(main, ["hyperparameters", "--markdown"])
    assert doc.read_text() == result.output, "run `make docs` to regenerate docs/hyperparameters.md"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "object2vec", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "evaluate" in out.stdout


def _train_output(tmp_path: Path, name: str, **hp) -> str:
    """What ``train`` logs (its metric lines) for a classification or regression run."""
    task = "regression" if hp.get("output_layer") == "mean_squared_error" else "classification"
    train = write_jsonl(make_pairs(200, seed=1, task=task), tmp_path / f"{name}.jsonl")
    args = ["train", "--train", str(train), "--validation", str(train), "--test", str(train), "-o", str(tmp_path / name)]
    for key, value in {**TINY, **hp}.items():
        args += ["-p", f"{key}={value}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_each_metric_definition_reads_a_value_from_the_lines_train_prints(tmp_path):
    from object2vec.reporting import metric_definitions

    printed = _train_output(tmp_path, "clf") + _train_output(tmp_path, "reg", output_layer="mean_squared_error")
    for definition in metric_definitions():
        values = re.findall(definition["Regex"], printed)
        assert values, definition
        assert all(float(v) >= 0 for v in values), definition
    assert len(re.findall(r"#quality_metric: host=\S+, test accuracy <score>=(\S+)", printed)) == 1


def test_metric_definitions_prints_the_json_the_sdk_takes_and_the_docs_show_it():
    from object2vec.reporting import metric_definitions

    result = CliRunner().invoke(main, ["metric-definitions"])
    assert result.exit_code == 0
    assert json.loads(result.output) == metric_definitions()
    names = [d["Name"] for d in metric_definitions()]
    assert {"validation:accuracy", "validation:cross_entropy", "validation:mean_squared_error", "train:throughput"} <= set(names)
    docs = (Path(__file__).parent.parent / "docs" / "serving.md").read_text()
    assert result.output.strip() in docs


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error of a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "serve", "predict", "embed", "evaluate", "recommend", "serve --sagemaker"])
def test_device_cuda_on_a_machine_without_cuda_is_one_clear_error(tmp_path, train_file, command):
    model = tmp_path / "model"
    assert CliRunner().invoke(main, ["train", "--train", str(train_file), *_tiny_params(), "-o", str(model), "-q"]).exit_code == 0
    args = {
        "train": ["train", "--train", str(train_file), *_tiny_params(), "-o", str(tmp_path / "again")],
        "serve": ["serve", str(model)],
        "serve --sagemaker": ["serve", "--sagemaker", "--sagemaker-root", str(tmp_path)],
        "predict": ["predict", str(model), str(train_file)],
        "embed": ["embed", str(model), str(train_file), "--side", "in0"],
        "evaluate": ["evaluate", str(model), str(train_file)],
        "recommend": ["recommend", str(model), "--in0", "3"],
    }[command]
    result = CliRunner().invoke(main, [*args, "--device", "cuda:0" if command == "embed" else "cuda"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: device 'cuda"), result.output
    assert "no CUDA device" in lines[0] and "--device cpu" in lines[0]


def _tiny_params() -> list[str]:
    return [arg for key, value in TINY.items() for arg in ("-p", f"{key}={value}")]


@pytest.mark.parametrize("world_size, shutdown_runs", [("1", True), ("2", False)])
def test_an_error_exit_skips_pythons_shutdown_only_in_a_torchrun_worker(world_size, shutdown_runs):
    # a worker's shutdown can free the process group under Gloo's threads and abort (status 134)
    script = (
        "import atexit, sys\n"
        "from object2vec.cli.base import leave\n"
        "atexit.register(lambda: print('shutdown ran'))\n"
        "print('error line', file=sys.stderr, end='')\n"
        "print('buffered output', end='')\n"
        "leave(2)\n"
    )
    env = {**os.environ, "WORLD_SIZE": world_size}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr == "error line"
    assert out.stdout == ("buffered outputshutdown ran\n" if shutdown_runs else "buffered output")


@pytest.mark.parametrize("world_size, shutdown_runs", [("1", True), ("2", False)])
def test_a_command_that_succeeds_in_a_torchrun_worker_also_skips_pythons_shutdown(world_size, shutdown_runs):
    script = (
        "import atexit\n"
        "from object2vec.cli.base import friendly_errors\n"
        "atexit.register(lambda: print('shutdown ran'))\n"
        "friendly_errors(lambda: print('done', end=''))()\n"
    )
    env = {**os.environ, "WORLD_SIZE": world_size}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == ("doneshutdown ran\n" if shutdown_runs else "done")
