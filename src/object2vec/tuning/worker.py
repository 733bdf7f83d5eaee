"""One trial: train with the trial's hyperparameters, report each epoch, return what happened.

:func:`run_trial` runs in a worker process (:func:`serve`, one per parallel trial, started once per
study) or, with ``in_process``, in the tuning process itself. Data files are read through the binary
cache, which the tuning process filled before the first trial, so a trial loads packed arrays
instead of parsing JSON. Each epoch's value of the objective metric goes to the study (Optuna's
intermediate values); the pruner may then stop the trial. A trial that cannot train (a clash of
tuned values, out of memory, any error) returns its reason instead of raising, so the study goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import signal
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .. import reporting
from ..errors import Object2VecError
from ..files import atomic_write_json
from .config import Objective, TuningConfig
from .study import open_storage

CANDIDATE_INFO = "trial.json"  # written into a trial's model folder: which trial, which value


@dataclass
class Task:
    """Everything a worker needs for one trial (picklable: it crosses a process boundary)."""

    trial_id: int
    number: int
    hyperparameters: dict[str, Any]  # fixed and tuned
    tuned: dict[str, Any]
    sources: dict[str, Any]  # train / validation / test: paths (str) or lists of records
    auxiliary: str | None
    seed: int
    device: str
    precision: str
    config: TuningConfig
    storage: str
    study_name: str
    folder: str  # the tuning folder (error logs)
    candidate: str  # where to save the model if it beats `beat`
    beat: float | None = None


@dataclass
class Outcome:
    state: str  # complete | pruned | fail
    value: float | None = None
    epochs: int = 0
    best_epoch: int | None = None
    seconds: float = 0.0
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # "validation:rmse" -> value, at the kept epoch
    saved: bool = False


class Reporter:
    """The training loop's epoch callback: sends the objective's per-epoch value to the study and stops
    the trial when the pruner says so (``optuna.TrialPruned`` propagates out of ``fit``)."""

    def __init__(self, trial: Any, objective: Objective, max_epochs: int | None):
        self.trial = trial
        self.split = "validation"  # a test objective is pruned on the same metric's validation value
        self.name = objective.name
        self.max_epochs = max_epochs
        self.epochs = 0
        self.last: float | None = None

    def on_epoch_end(self, record: dict[str, Any]) -> bool:
        import optuna

        self.epochs = record["epoch"]
        value = record.get(self.split, {}).get(self.name)
        if value is not None:
            self.last = float(value)
            self.trial.report(self.last, self.epochs)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {self.epochs}")
        return self.max_epochs is not None and self.epochs >= self.max_epochs  # Hyperband's MaxResource


def run_trial(task: Task, study: Any = None) -> Outcome:
    """Train one trial and describe the result; never raises for a trial's own failure."""
    import optuna

    from ..estimator import Object2Vec
    from . import space

    start = time.monotonic()
    if study is None:
        study = optuna.load_study(
            study_name=task.study_name, storage=open_storage(task.storage), pruner=space.pruner(task.config)
        )
    reporter = Reporter(optuna.trial.Trial(study, task.trial_id), task.config.objective, task.config.max_resource)
    outcome = Outcome("fail")
    try:
        with _quiet():
            model = Object2Vec(seed=task.seed, device=task.device, precision=task.precision, cache=True, **task.hyperparameters)
            model.fit(
                task.sources["train"], task.sources.get("validation"), task.sources.get("test"),
                auxiliary=task.auxiliary, callbacks=[reporter],
            )  # fmt: skip
        outcome = _finished(model, task)
    except optuna.TrialPruned:
        outcome = Outcome("pruned", value=reporter.last, reason=f"pruned after epoch {reporter.epochs}")
    except Object2VecError as e:
        outcome = Outcome("fail", reason=_one_line(str(e)))
    except MemoryError as e:
        outcome = Outcome("fail", reason=f"out of memory: {_one_line(str(e)) or 'MemoryError'}")
    except Exception as e:
        if type(e).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
            outcome = Outcome("fail", reason=f"out of memory: {_one_line(str(e))}")
        else:
            log = Path(task.folder) / "errors" / f"trial-{task.number}.txt"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc())
            outcome = Outcome("fail", reason=f"{type(e).__name__}: {_one_line(str(e))} (traceback in errors/{log.name})")
    outcome.epochs = outcome.epochs or reporter.epochs
    outcome.seconds = time.monotonic() - start
    return outcome


def _finished(model: Any, task: Task) -> Outcome:
    objective = task.config.objective
    result = model.metrics_
    best = result["best_epoch"]
    metrics: dict[str, float] = {}
    if result["epochs"] and "validation" in result["epochs"][best - 1]:
        metrics |= {f"validation:{k}": v for k, v in result["epochs"][best - 1]["validation"].items()}
    if result.get("test"):
        metrics |= {f"test:{k}": v for k, v in result["test"].items()}
    value = metrics.get(objective.metric)
    if value is None or not math.isfinite(value):
        return Outcome("fail", epochs=len(result["epochs"]), best_epoch=best, metrics=metrics,
                       reason=f"{objective.metric} is {value} (training diverged)")  # fmt: skip
    outcome = Outcome("complete", value=value, epochs=len(result["epochs"]), best_epoch=best, metrics=metrics)
    if objective.better(value, task.beat):
        model.save(task.candidate)
        atomic_write_json(Path(task.candidate) / CANDIDATE_INFO, {
            "trial": task.number, "objective": objective.metric, "value": value, "hyperparameters": task.tuned,
        })  # fmt: skip
        outcome.saved = True
    return outcome


def _one_line(text: str) -> str:
    return " ".join(part.strip().lstrip("- ") for part in text.splitlines() if part.strip())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No per-epoch metric lines or notes from inside a trial: the tuner reports trials, not epochs."""
    package = logging.getLogger(reporting.PACKAGE)  # every module's logger is below it
    level = package.level
    package.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        package.setLevel(level)


# --------------------------------------------------------------------------------------------------
# The worker process


def serve(conn: Connection, threads: int, index: int) -> None:
    """A worker process: run the tasks that arrive on ``conn`` until it closes.

    It takes ``threads`` cores' worth of torch threads (``OMP_NUM_THREADS`` is set by the pool
    before PyTorch loads), and dies with the tuning process (Linux), so a killed study leaves no
    trial running on its own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the tuning process's to handle
    _die_with_parent()
    import optuna
    import torch

    from .. import estimator  # noqa: F401  (loaded once here, not inside the first trial's time)
    from . import space

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies: dict[tuple[str, str], Any] = {}
    while True:
        try:
            task: Task = conn.recv()
        except (EOFError, OSError):
            return
        if task.device in ("auto", "cuda") and torch.cuda.device_count() > 1:
            task.device = f"cuda:{index % torch.cuda.device_count()}"  # parallel trials spread over the GPUs
        key = (task.storage, task.study_name)
        if key not in studies:
            studies[key] = optuna.load_study(
                study_name=task.study_name, storage=open_storage(task.storage),
                sampler=optuna.samplers.RandomSampler(), pruner=space.pruner(task.config),
            )  # fmt: skip
        conn.send(run_trial(task, studies[key]))


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


if __name__ == "__main__":  # python -m object2vec.tuning.worker FD THREADS INDEX (started by pool.WorkerPool)
    import sys

    from object2vec.tuning.worker import serve as run  # the importable module, so results unpickle as its classes

    run(Connection(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
