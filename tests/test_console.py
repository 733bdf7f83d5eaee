"""Output for people: a line per epoch and a table at a terminal, SageMaker's lines elsewhere, bars only at a terminal."""

from __future__ import annotations

import ast
import io
import os
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY
from object2vec import Object2Vec, console, reporting
from object2vec.cli import main
from object2vec.data.pairs import Schema, read_pairs
from object2vec.data.synthetic import make_pairs, write_jsonl
from object2vec.hyperparameters import Hyperparameters
from terminal import run_in_terminal, screen

SRC = Path(__file__).resolve().parents[1] / "src"
# enc0_token_embedding_dim = enc_dim: pooled_embedding would force it and say so in a line of its own
TRAIN_ARGS = [f"-p{k}={v}" for k, v in TINY.items()] + ["-penc0_token_embedding_dim=16", "--device", "cpu"]
NUMBER = r"-?[0-9.e+-]+"
DURATION = r"(?:[0-9.]+s|[0-9]+m[0-9]{2}s|[0-9]+h[0-9]{2}m)"  # console.duration
RATE = r"[0-9.]+[kMG]?"
KERNELS_OFF = "object2vec: compiled kernels unavailable"  # the one warning of a machine without a C compiler


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs")
    for name, n, seed in (("train", 300, 1), ("validation", 100, 2), ("test", 100, 3)):
        write_jsonl(make_pairs(n, seed=seed), folder / f"{name}.jsonl")
    return folder


def splits(data: Path) -> list[str]:
    return [
        "--train",
        str(data / "train.jsonl"),
        "--validation",
        str(data / "validation.jsonl"),
        "--test",
        str(data / "test.jsonl"),
    ]


# --------------------------------------------------------------------------------------------------
# train at a terminal, and not


def test_at_a_terminal_train_prints_a_line_per_epoch_and_a_table_at_the_end(data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "object2vec", "train", *splits(data), *TRAIN_ARGS, "-o", str(tmp_path / "model")]
    code, raw = run_in_terminal(command, env=env)
    shown = screen(raw)
    assert code == 0, shown
    lines = [line for line in shown.splitlines() if not line.startswith(KERNELS_OFF)]
    epoch = rf"train loss {NUMBER} acc {NUMBER}  validation loss {NUMBER} acc {NUMBER}  {RATE} pairs/s  {DURATION}"
    assert re.fullmatch(rf"epoch 1/2  {epoch}  ETA {DURATION}", lines[0]), lines[0]
    assert re.fullmatch(rf"epoch 2/2  {epoch}  done", lines[1]), lines[1]
    assert lines[2].split() == ["train", "validation", "test"]
    assert [line.split()[0] for line in lines[3:5]] == ["accuracy", "cross_entropy"]
    assert all(len(line.split()) == 4 for line in lines[3:5])  # a value per split
    assert re.fullmatch(r"best epoch +[12] of 2", lines[5])
    assert re.fullmatch(rf"wall time +{DURATION} \(training {DURATION}, {RATE} pairs/s\)", lines[6])
    assert lines[7].split() == ["model", str(tmp_path / "model")]
    assert len(lines) == 8 and "#quality_metric" not in raw


def test_without_a_terminal_train_prints_exactly_sagemakers_lines(data, tmp_path):
    result = CliRunner().invoke(main, ["train", *splits(data), *TRAIN_ARGS, "-o", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith(KERNELS_OFF)]
    masked = [re.sub(r"(>|throughput)=[0-9.e+-]+", r"\1=X", line) for line in lines]
    per_epoch = [
        "#quality_metric: host=algo-1, epoch={e}, train accuracy <score>=X",
        "#quality_metric: host=algo-1, epoch={e}, train cross_entropy <loss>=X",
        "#throughput_metric: host=algo-1, train throughput=X records/second",
        "#quality_metric: host=algo-1, epoch={e}, validation accuracy <score>=X",
        "#quality_metric: host=algo-1, epoch={e}, validation cross_entropy <loss>=X",
        "#progress_metric: host=algo-1, completed {p} %",
    ]
    expected = [line.format(e=e, p=p) for e, p in ((1, 50), (2, 100)) for line in per_epoch] + [
        "#quality_metric: host=algo-1, test accuracy <score>=X",
        "#quality_metric: host=algo-1, test cross_entropy <loss>=X",
    ]
    assert masked == expected
    assert result.stdout == f"model written to {tmp_path / 'model'}\n"


def test_log_format_both_prints_sagemakers_lines_and_the_lines_for_a_person(data, tmp_path):
    model = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", *splits(data), *TRAIN_ARGS, "-o", str(model), "--log-format", "both"])
    assert result.exit_code == 0, result.output
    err = [line for line in result.stderr.splitlines() if not line.startswith(KERNELS_OFF)]
    assert sum(line.startswith("#quality_metric") for line in err) == 10
    assert [line.split("  ")[0] for line in err if line.startswith("epoch")] == ["epoch 1/2", "epoch 2/2"]
    first = next(k for k, line in enumerate(err) if line.startswith("epoch 1/2"))
    assert err[first - 1] == "#progress_metric: host=algo-1, completed 50 %"  # after epoch 1's metric lines
    assert "best epoch" in result.stdout and f"model          {model}" in result.stdout
    assert "model written to" not in result.stdout


def test_log_format_human_without_a_terminal_has_no_progress_bars(data, tmp_path):
    args = ["train", *splits(data), *TRAIN_ARGS, "-o", str(tmp_path / "model"), "--log-format", "human"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [line[:9] for line in result.stderr.splitlines() if not line.startswith(KERNELS_OFF)] == ["epoch 1/2", "epoch 2/2"]
    assert "\r" not in result.output and "#" not in result.output


def test_quiet_hides_the_epoch_lines_but_not_the_table(data, tmp_path):
    args = ["train", *splits(data), *TRAIN_ARGS, "-o", str(tmp_path / "model"), "--log-format", "human", "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if not line.startswith(KERNELS_OFF)] == []
    assert "best epoch" in result.stdout


def test_sagemaker_mode_refuses_the_human_format(tmp_path):
    result = CliRunner().invoke(main, ["train", "--sagemaker", "--sagemaker-root", str(tmp_path), "--log-format", "human"])
    assert result.exit_code == 2
    assert result.stderr == "error: --sagemaker keeps SageMaker's metric lines: use --log-format sagemaker or both\n"


def test_the_default_format_is_human_only_when_stdout_and_stderr_are_terminals(monkeypatch):
    for out, err, expected in ((True, True, "human"), (True, False, "sagemaker"), (False, True, "sagemaker")):
        monkeypatch.setattr(sys, "stdout", Terminal() if out else io.StringIO())
        monkeypatch.setattr(sys, "stderr", Terminal() if err else io.StringIO())
        assert reporting.default_log_format() == expected


# --------------------------------------------------------------------------------------------------
# the epoch line and the table


def record(epoch: int, seconds: float = 2.0, validation: bool = True) -> dict:
    out = {"epoch": epoch, "train": {"accuracy": 0.75, "cross_entropy": 0.5}, "throughput": 61234.0, "seconds": seconds}
    if validation:
        out["validation"] = {"accuracy": 0.7, "cross_entropy": 0.55}
    return out


def test_the_epoch_line_gives_loss_throughput_and_an_eta_for_the_whole_run():
    lines = console.EpochLines(epochs=10)
    lines.on_epoch_end(record(1, seconds=2.0))
    text = lines.line(record(1))
    assert text == "epoch  1/10  train loss 0.5000 acc 0.7500  validation loss 0.5500 acc 0.7000  61.2k pairs/s  2.0s  ETA 18s"


def test_the_eta_uses_the_wall_time_between_epochs(monkeypatch):
    clock = iter([100.0, 104.0, 110.0])
    monkeypatch.setattr(console.time, "perf_counter", lambda: next(clock))
    lines = console.EpochLines(epochs=5)
    for epoch in (1, 2, 3):
        lines.on_epoch_end(record(epoch, seconds=2.0))
    assert lines.durations == [2.0, 4.0, 6.0]  # the first epoch: its training time; then wall time
    assert lines.line(record(3)).endswith("6.0s  ETA 8.0s")  # 2 epochs left at a mean of 4 s


def test_a_regression_line_shows_the_loss_and_rmse():
    row = {"epoch": 2, "train": {"mean_squared_error": 0.25, "rmse": 0.5}, "throughput": 950.0, "seconds": 1.0}
    lines = console.EpochLines(epochs=2)
    lines.on_epoch_end(row)
    assert lines.line(row) == "epoch 2/2  train loss 0.2500 rmse 0.5000  950 pairs/s  1.0s  done"


def test_the_table_shows_the_best_epoch_of_each_split_and_an_early_stop():
    metrics = {
        "epochs": [record(1), {**record(2), "validation": {"accuracy": 0.9, "cross_entropy": 0.2}}, record(3)],
        "best_epoch": 2,
        "stopped_early": True,
        "test": {"accuracy": 0.85, "cross_entropy": 0.3},
    }
    lines = console.summary_table(metrics, epochs=10, seconds=75.0, model="out/model")
    assert lines[1].split() == ["accuracy", "0.7500", "0.9000", "0.8500"]
    assert lines[2].split() == ["cross_entropy", "0.5000", "0.2000", "0.3000"]
    assert lines[3] == "best epoch     2 of 10 (stopped early after epoch 3)"
    assert lines[4] == "wall time      1m15s (training 6.0s, 61.2k pairs/s)"
    assert lines[5] == "model          out/model"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.42, "0.4s"), (12.4, "12s"), (185, "3m05s"), (7620, "2h07m"), (float("inf"), "?")]
)
def test_durations_are_short(seconds, text):
    assert console.duration(seconds) == text


# --------------------------------------------------------------------------------------------------
# progress bars: every long step draws one at a terminal, none elsewhere


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    Object2Vec(seed=0, device="cpu", **TINY).fit(make_pairs(300, seed=1)).save(folder)
    return folder


def parse_a_file(tmp_path: Path, model_dir: Path) -> None:
    path = write_jsonl(make_pairs(200, seed=4), tmp_path / "big.jsonl")
    read_pairs(path, Schema.from_hyperparameters(Hyperparameters.from_dict(TINY)), cache=False)


def predict_a_file(tmp_path: Path, model_dir: Path) -> None:
    from object2vec.serving.predictor import Predictor
    from object2vec.serving.transform import transform

    path = write_jsonl(make_pairs(200, seed=4), tmp_path / "big.jsonl")
    transform(Predictor.load(model_dir, device="cpu"), path, tmp_path / "out.jsonl", chunk=50)


def prepare_text(tmp_path: Path, model_dir: Path) -> None:
    from object2vec.text.prepare import Table, prepare

    path = tmp_path / "big.csv"
    path.write_text("a,b,label\n" + "".join(f"w{i} x,y z{i},{i % 2}\n" for i in range(200)))
    prepare(tmp_path / "prepared", Table("a", "b", "label"), train=path)


def embed_items(tmp_path: Path, model_dir: Path) -> None:
    from object2vec.retrieval.items import vocabulary_items

    model = Object2Vec.load(model_dir, device="cpu")
    vocabulary_items(model, "in1").vectors(model)


def build_an_index(tmp_path: Path, model_dir: Path) -> None:
    import numpy as np

    pytest.importorskip("faiss")
    from object2vec.retrieval.neighbors import NeighborIndex

    NeighborIndex.build(np.eye(8, dtype=np.float32), list(range(8)), kind="hnsw")


def a_long_opaque_call(tmp_path: Path, model_dir: Path) -> None:
    with console.working("k-means: 8 items into 2 clusters"):
        pass


STEPS = {
    "reading big.jsonl": parse_a_file,
    "scoring big.jsonl": predict_a_file,
    "writing train.jsonl from big.csv": prepare_text,
    "embedding in1": embed_items,
    "indexing (hnsw)": build_an_index,
    "k-means: 8 items into 2 clusters": a_long_opaque_call,
}


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Bars wanted (as the CLI sets), drawn at once (no 1 s delay), on rank 0."""
    monkeypatch.setattr(console, "DELAY", 0.0)
    monkeypatch.setattr(reporting, "_progress_bars", True)
    monkeypatch.delenv("RANK", raising=False)
    return monkeypatch


@pytest.mark.parametrize("desc", list(STEPS))
def test_each_long_step_draws_a_bar_at_a_terminal(desc, bars, tmp_path, model_dir):
    terminal = Terminal()
    bars.setattr(sys, "stderr", terminal)
    STEPS[desc](tmp_path, model_dir)
    assert f"\r{desc}:" in terminal.getvalue()


@pytest.mark.parametrize("where", ["not a terminal", "rank 1", "sagemaker format"])
@pytest.mark.parametrize("desc", list(STEPS))
def test_no_bar_is_drawn_off_a_terminal_on_other_ranks_or_in_sagemaker_format(desc, where, bars, tmp_path, model_dir):
    stderr = io.StringIO() if where == "not a terminal" else Terminal()
    bars.setattr(sys, "stderr", stderr)
    if where == "rank 1":
        bars.setenv("RANK", "1")
    if where == "sagemaker format":
        bars.setattr(reporting, "_progress_bars", False)
    STEPS[desc](tmp_path, model_dir)
    assert stderr.getvalue() == ""


# --------------------------------------------------------------------------------------------------
# logging


# print() that is a function's documented output, not logging
PRINTS = {"tuning/runner.py": "tune(log=None) writes its progress lines to standard error, as documented"}


def test_modules_log_through_their_own_logger_under_object2vec_and_never_print():
    for path in (SRC / "object2vec").rglob("*.py"):
        may_print = path.relative_to(SRC / "object2vec").as_posix() in PRINTS
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" and not may_print:
                pytest.fail(f"{path}:{node.lineno}: print(); log or click.echo instead")
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("getLogger"):
                named = ast.unparse(node.args[0])
                assert named in ("__name__", "PACKAGE", "reporting.PACKAGE"), f"{path}:{node.lineno}: {ast.unparse(node)}"
