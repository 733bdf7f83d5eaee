"""Running a study: results written, every strategy, failed and pruned trials, parallel workers, resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY
from object2vec import interrupts
from object2vec.data.synthetic import make_pairs, write_jsonl
from object2vec.errors import TuningConfigError

optuna = pytest.importorskip("optuna")

import object2vec  # noqa: E402

FIXED = {**TINY, "epochs": 3}
OBJECTIVE = {"Type": "Maximize", "MetricName": "validation:accuracy"}


def config(strategy: str = "Random", trials: int = 3, parallel: int = 1, ranges: dict | None = None, **extra) -> dict:
    return {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": OBJECTIVE,
        "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel},
        "ParameterRanges": ranges
        or {
            "ContinuousParameterRanges": [
                {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
            ]
        },
        **extra,
    }


@pytest.fixture
def splits(tmp_path: Path) -> tuple[Path, Path]:
    return write_jsonl(make_pairs(300, seed=1), tmp_path / "train.jsonl"), write_jsonl(
        make_pairs(100, seed=2), tmp_path / "val.jsonl"
    )


def read_csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_a_study_writes_its_trials_the_best_model_a_summary_and_plots(tmp_path, splits):
    out = tmp_path / "tuning"
    result = object2vec.tune(*splits, output_dir=out, tuning=config(), hyperparameters=FIXED, in_process=True, log=lambda _: None)
    rows = read_csv(out / "trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    assert list(rows[0])[:7] == ["trial", "state", "objective", "epochs", "best_epoch", "seconds", "reason"]
    assert {"validation:accuracy", "validation:cross_entropy", "learning_rate"} <= set(rows[0])
    best = max(rows, key=lambda r: float(r["objective"]))
    assert result.best_trial == int(best["trial"]) and result.best_value == pytest.approx(float(best["objective"]))
    model = result.best_model(device="cpu")  # best/ is an ordinary model folder
    assert model.hyperparameters_.learning_rate == pytest.approx(float(best["learning_rate"]), rel=1e-5)  # csv: 6 digits
    assert model.evaluate(splits[1])["accuracy"] == pytest.approx(result.best_value)
    from object2vec.serving.predictor import Predictor

    (answer,) = Predictor.load(out / "best", device="cpu").run([{"in0": [1], "in1": [2]}])  # what `object2vec serve` runs
    assert answer["scores"].shape == (2,)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["best_trial"], summary["trials"], summary["states"]) == (result.best_trial, 3, {"complete": 3})
    for plot in ("objective.png", "importance.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "tuning.json").read_text())["Strategy"] == "Random"
    assert not (out / ".candidates").exists()


@pytest.mark.parametrize("strategy", ["Bayesian", "Random", "Grid", "Hyperband"])
def test_each_strategy_runs_its_trials(tmp_path, splits, strategy):
    ranges = None
    extra = {}
    if strategy == "Grid":
        ranges = {
            "CategoricalParameterRanges": [
                {"Name": "learning_rate", "Values": ["0.01", "0.05"]},
                {"Name": "enc_dim", "Values": ["8", "16"]},
            ]
        }
    if strategy == "Hyperband":
        extra = {"StrategyConfig": {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 2}}}
    result = object2vec.tune(
        *splits, output_dir=tmp_path / "t", tuning=config(strategy, trials=4, ranges=ranges, **extra), hyperparameters=FIXED,
        in_process=True, plots=False, log=lambda _: None,
    )  # fmt: skip
    assert len(result.trials) == 4 and all(r["state"] in ("complete", "pruned") for r in result.trials)
    if strategy == "Grid":  # each combination exactly once
        assert sorted((r["learning_rate"], r["enc_dim"]) for r in result.trials) == [
            ("0.01", "16"), ("0.01", "8"), ("0.05", "16"), ("0.05", "8")
        ]  # fmt: skip
    if strategy == "Hyperband":  # MaxResource caps the epochs
        assert max(r["epochs"] for r in result.trials) == 2


def test_a_failed_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path, splits):
    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "token_embedding_storage_type", "Values": ["dense", "row_sparse"]},
            {"Name": "optimizer", "Values": ["adam", "rmsprop"]},
        ]
    }
    result = object2vec.tune(
        *splits, output_dir=tmp_path / "t", tuning=config("Grid", trials=4, ranges=ranges), hyperparameters=FIXED,
        in_process=True, plots=False, log=lambda _: None,
    )  # fmt: skip
    states = {(r["token_embedding_storage_type"], r["optimizer"]): r for r in result.trials}
    failed = states[("row_sparse", "rmsprop")]
    assert failed["state"] == "failed" and "row_sparse supports optimizer adam, adagrad, sgd" in failed["reason"]
    assert [r["state"] for k, r in states.items() if k != ("row_sparse", "rmsprop")] == ["complete"] * 3
    assert result.best_trial is not None


def test_a_trial_whose_training_crashes_is_recorded_failed_and_the_study_goes_on(tmp_path, splits, monkeypatch):
    from object2vec.estimator import Object2Vec

    fit = Object2Vec.fit

    def crashing_fit(self, *args, **kwargs):
        if self.hyperparameters["learning_rate"] < 0.02:
            raise RuntimeError("simulated crash")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Object2Vec, "fit", crashing_fit)
    lines: list[str] = []
    out = tmp_path / "t"
    result = object2vec.tune(
        *splits, output_dir=out, tuning=config(trials=3), hyperparameters=FIXED, in_process=True, plots=False, log=lines.append,
        enqueue=[{"learning_rate": 0.05}, {"learning_rate": 0.01}, {"learning_rate": 0.03}],
    )  # fmt: skip
    assert [r["state"] for r in result.trials] == ["complete", "failed", "complete"]
    assert result.trials[1]["reason"] == "RuntimeError: simulated crash (traceback in errors/trial-1.txt)"
    assert "simulated crash" in (out / "errors" / "trial-1.txt").read_text()
    assert any(line.startswith("[2/3] trial 1 failed: RuntimeError: simulated crash") for line in lines)


def test_pruning_stops_a_hopeless_trial_after_its_first_epochs(tmp_path, splits):
    fixed = {**FIXED, "epochs": 6, "early_stopping_patience": 5}
    good = [{"learning_rate": lr} for lr in (0.05, 0.04, 0.03)]
    result = object2vec.tune(
        *splits, output_dir=tmp_path / "t", tuning=config(trials=4, TrainingJobEarlyStoppingType="Auto",
        ranges={"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.000001", "MaxValue": "0.1"}]}),
        hyperparameters=fixed, enqueue=[*good, {"learning_rate": 0.000001}], in_process=True, plots=False, log=lambda _: None,
    )  # fmt: skip
    hopeless = result.trials[3]
    assert hopeless["learning_rate"] == 0.000001
    assert hopeless["state"] == "pruned" and hopeless["epochs"] < 6
    assert [r["state"] for r in result.trials[:3]] == ["complete"] * 3


def test_parallel_trials_run_at_the_same_time_in_worker_processes(tmp_path, splits):
    out = tmp_path / "t"
    lines: list[str] = []
    result = object2vec.tune(
        *splits, output_dir=out, tuning=config(trials=4, parallel=2), hyperparameters={**FIXED, "epochs": 4},
        plots=False, log=lines.append,
    )  # fmt: skip
    assert "4 trials, 2 at a time, " in lines[0]
    assert {r["state"] for r in result.trials} == {"complete"}
    study = optuna.load_study(study_name="object2vec", storage=f"sqlite:///{out / 'study.db'}")
    spans = sorted((t.datetime_start, t.datetime_complete) for t in study.trials)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))  # some trials overlapped
    assert any(line.startswith("[2/4] trial ") and "| ETA " in line for line in lines)


def test_a_killed_study_resumes_without_losing_or_repeating_a_trial(tmp_path, splits):
    # 4,000 training pairs: a trial must last long enough to be caught running after a finished one
    # (with the 300 of the other tests a whole trial took a few tens of milliseconds, and the study
    # could end between two looks at it)
    splits = (write_jsonl(make_pairs(4000, seed=1), tmp_path / "train_4000.jsonl"), splits[1])
    out = tmp_path / "t"
    tuning = tmp_path / "tuning.json"
    tuning.write_text(json.dumps(config(trials=5)))
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps({**FIXED, "epochs": 8}))
    command = [sys.executable, "-m", "object2vec", "tune", "--train", str(splits[0]), "--validation", str(splits[1]),
               "--hyperparameters", str(hp), "--tuning", str(tuning), "-o", str(out), "--in-process", "-q"]  # fmt: skip
    for _ in range(3):  # the study's state is read after the kill: a trial seen running may have finished since
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_a_running_trial_after_a_finished_one(out / "study.db", process)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        before = optuna.load_study(study_name="object2vec", storage=f"sqlite:///{out / 'study.db'}").get_trials()
        finished = {t.number: t.value for t in before if t.state.name == "COMPLETE"}
        running = [t for t in before if t.state.name == "RUNNING"]
        if finished and len(running) == 1:
            break
        shutil.rmtree(out)  # killed between two trials: again
    assert finished and len(running) == 1

    lines: list[str] = []
    object2vec.tune(*splits, output_dir=out, tuning=tuning, hyperparameters={**FIXED, "epochs": 8}, in_process=True,
                    plots=False, log=lines.append)  # fmt: skip
    study = optuna.load_study(study_name="object2vec", storage=f"sqlite:///{out / 'study.db'}")
    trials = {t.number: t for t in study.trials}
    assert {n: trials[n].value for n in finished} == finished  # no finished trial ran again
    lost = trials[running[0].number]
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == lost.number]
    assert lost.state.name == "FAIL" and len(retry) == 1 and retry[0].params == lost.params  # the lost one ran again, once
    counted = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(counted) == 5 and len(trials) == 6  # five trials, plus the record of the interrupted one
    assert "had not finished and runs again" in lines[1]
    rows = read_csv(out / "trials.csv")
    assert rows[lost.number]["state"] == "interrupted" and f"run again as trial {retry[0].number}" in rows[lost.number]["reason"]


def _wait_for_a_running_trial_after_a_finished_one(db: Path, process: subprocess.Popen, timeout: float = 120) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, "the study ended before it could be interrupted"
        if db.exists():
            try:
                study = optuna.load_study(study_name="object2vec", storage=f"sqlite:///{db}")
                trials = study.get_trials()
            except (KeyError, Exception):  # the study is being created
                trials = []
            states = [t.state.name for t in trials]
            if "COMPLETE" in states and "RUNNING" in states:
                return trials
        time.sleep(0.05)
    raise AssertionError("no trial was running after a finished one")


def test_a_stop_signal_ends_the_study_saying_what_was_done_and_the_same_command_goes_on(tmp_path, splits):
    out = tmp_path / "t"

    def stop_after_the_first_trial(line: str) -> None:
        if line.startswith("[1/3]"):
            os.kill(os.getpid(), signal.SIGTERM)

    with interrupts.handled(), pytest.raises(interrupts.Interrupted) as stopped:  # as the command line runs it
        object2vec.tune(*splits, output_dir=out, tuning=config(trials=3), hyperparameters=FIXED, in_process=True,
                        plots=False, log=stop_after_the_first_trial)  # fmt: skip
    assert str(stopped.value) == "interrupted by SIGTERM; 1 of 3 trials done; run the same command again to go on"
    assert stopped.value.exit_code == 143 and len(read_csv(out / "trials.csv")) == 1
    lines: list[str] = []
    object2vec.tune(*splits, output_dir=out, tuning=config(trials=3), hyperparameters=FIXED, in_process=True,
                    plots=False, log=lines.append)  # fmt: skip
    assert lines[1] == "Resuming study 'object2vec': 1 of 3 trials done."
    assert [r["state"] for r in read_csv(out / "trials.csv")] == ["complete"] * 3


def test_the_tuning_folder_is_never_the_current_folder_or_one_holding_other_files(tmp_path, splits, monkeypatch):
    mine = tmp_path / "mine"
    (mine / "best").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    run = {"tuning": config(trials=1), "hyperparameters": FIXED, "in_process": True, "log": lambda _: None}
    with pytest.raises(object2vec.Object2VecError, match=r"holds files that are not a tuning folder's \(notes.txt\)"):
        object2vec.tune(*splits, output_dir=mine, **run)
    assert sorted(p.name for p in mine.iterdir()) == ["best", "notes.txt"]  # best/ was not replaced
    monkeypatch.chdir(mine)
    with pytest.raises(object2vec.Object2VecError, match="is the current folder"):
        object2vec.tune(*splits, output_dir=".", **run)


def test_a_new_database_another_process_is_creating_is_opened_again(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from object2vec.tuning import study as studies

    real, calls = optuna.storages.RDBStorage, []

    def created_meanwhile(*args, **kwargs):  # the other process created the tables between our check and our CREATE
        calls.append(1)
        if len(calls) == 1:
            real(*args, **kwargs)
            raise OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", created_meanwhile)
    storage = studies.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and isinstance(storage, real)


def test_a_resumed_study_must_keep_its_search(tmp_path, splits):
    out = tmp_path / "t"
    object2vec.tune(
        *splits, output_dir=out, tuning=config(trials=1), hyperparameters=FIXED, in_process=True, plots=False, log=lambda _: None
    )
    other = config(trials=1, ranges={"IntegerParameterRanges": [{"Name": "enc_dim", "MinValue": "4", "MaxValue": "32"}]})
    with pytest.raises(object2vec.Object2VecError, match=r"was tuned with a different configuration \(it differs in: ranges\)"):
        object2vec.tune(*splits, output_dir=out, tuning=other, hyperparameters=FIXED, in_process=True, log=lambda _: None)


def test_hand_picked_values_must_lie_in_the_tuned_ranges(splits, tmp_path):
    with pytest.raises(TuningConfigError) as e:
        object2vec.tune(*splits, output_dir=tmp_path, tuning=config(), hyperparameters=FIXED, dry_run=True, log=lambda _: None,
                        enqueue=[{"learning_rate": 0.5, "enc_dim": 8}])  # fmt: skip
    assert e.value.problems == [
        "learning_rate=0.5 is outside its range [0.001, 0.1]",
        "enc_dim is not tuned (set a fixed value in the hyperparameters instead)",
    ]


def test_the_command_checks_everything_before_the_first_trial(tmp_path, splits):
    from click.testing import CliRunner

    from object2vec.cli import main

    tuning = tmp_path / "tuning.json"
    tuning.write_text(
        json.dumps(config(ranges={"IntegerParameterRanges": [{"Name": "enc_dim", "MinValue": "1", "MaxValue": "20000"}]}))
    )
    args = ["tune", "--train", str(splits[0]), "--validation", str(splits[1]), "--tuning", str(tuning), "-o", str(tmp_path / "t")]
    hp = [f"-p{k}={v}" for k, v in FIXED.items()]
    result = CliRunner().invoke(main, [*args, *hp])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {tuning}: 2 tuning configuration problems:",
        "  - IntegerParameterRanges[0] enc_dim: MinValue '1' is outside its limits: enc_dim must be an int in [4, 10000]",
        "  - IntegerParameterRanges[0] enc_dim: MaxValue '20000' is outside its limits: enc_dim must be an int in [4, 10000]",
    ]
    tuning.write_text(json.dumps(config()))
    result = CliRunner().invoke(main, [*args, *hp, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Tuning validation:accuracy (maximize) by Random search: 3 trials" in result.output
    assert "dry run: the tuning configuration and the data are valid" in result.output
    assert not (tmp_path / "t").exists()
