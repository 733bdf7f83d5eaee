"""The loop of one tuning process: propose a trial, hand it to a worker, record what comes back.

Trials are proposed one at a time (Optuna's ``Study.ask``), so the process knows how many are
running and never starts more than ``MaxNumberOfTrainingJobs`` in the whole study, even when several
machines share it. Each finished trial is told to the study, its model becomes ``best/`` if it beats
the best so far, ``trials.csv`` is rewritten, and one progress line is printed. SageMaker's
completion criteria stop new trials from starting.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from ..errors import HyperparameterError
from ..files import replace_folder
from ..hyperparameters import Hyperparameters
from . import space
from . import study as studies
from .config import TuningConfig
from .pool import InProcess, WorkerPool
from .results import eta, trial_rows, write_trials_csv
from .worker import CANDIDATE_INFO, Task

POLL_SECONDS = 5.0  # how often to look for other machines' trials while none of ours runs
BEST = "best"


class Run:
    """The loop of one tuning process: propose, run, record, until the study has its trials."""

    def __init__(self, study: Any, config: TuningConfig, folder: Path, sources: dict[str, Any], auxiliary: Any,
                 seed: int, device: str, precision: str, url: str, study_name: str, say: Callable[[str], None]):  # fmt: skip
        self.study, self.config, self.folder, self.say = study, config, folder, say
        self.sources = {k: str(Path(v).resolve()) if isinstance(v, (str, os.PathLike)) else v for k, v in sources.items()}
        self.auxiliary = str(Path(auxiliary).resolve()) if auxiliary is not None else None
        self.seed, self.device, self.precision, self.url, self.study_name = seed, device, precision, url, study_name
        self.best = best_here(folder)
        self.times: list[float] = []
        self.started = time.monotonic()
        self.stopped: str | None = None

    def loop(self, heartbeat: Any, threads: int, in_process: bool) -> None:
        pool: Any = InProcess(self.study) if in_process else WorkerPool(self.config.max_parallel, threads)
        last_check = time.monotonic()
        try:
            while True:
                trials = self.study.get_trials(deepcopy=False)
                done = sum(1 for t in trials if studies.counted(t))
                active = sum(1 for t in trials if t.state.name == "RUNNING")
                self.stopped = self.stopped or self._completion(trials)
                while self.stopped is None and pool.free() and done + active < self.config.max_trials:
                    task = self._next(done)
                    if task is None:
                        done += 1  # failed before it started; already recorded
                        continue
                    pool.submit(task)
                    heartbeat.add(task.trial_id)
                    active += 1
                if not pool.running():
                    if done >= self.config.max_trials or self.stopped:
                        return
                    time.sleep(POLL_SECONDS)  # other machines' trials are running: wait for them
                    if time.monotonic() - last_check > studies.HEARTBEAT_SECONDS:
                        studies.recover_stale(self.study)
                        last_check = time.monotonic()
                    continue
                for task, outcome in pool.wait(POLL_SECONDS):
                    heartbeat.discard(task.trial_id)
                    self._record(task, outcome)
        except KeyboardInterrupt:
            running = [t.trial_id for t in pool.running()]
            pool.close()
            lost = studies.abandon(self.study, running)
            write_trials_csv(self.folder / "trials.csv", trial_rows(self.study, self.config), self.config)
            done = sum(1 for t in self.study.get_trials(deepcopy=False) if studies.counted(t))
            self.say(
                f"interrupted: {done} of {self.config.max_trials} trials done"
                + (f"; trial {', '.join(map(str, lost))} will run again" if lost else "")
                + ". Run the same command again to go on."
            )
            raise
        finally:
            pool.close()

    def _next(self, done: int) -> Any:
        """Propose a trial (a queued one first); ``None`` if its values cannot train (recorded as failed)."""
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # Optuna notes that heartbeats are meant for Study.optimize; ours are recorded by hand
            trial = self.study.ask(space.search_space(self.config))
        tuned = space.hyperparameters_of(trial.params, self.config)
        storage = self.study._storage
        storage.set_trial_user_attr(trial._trial_id, "hyperparameters", tuned)
        storage.set_trial_user_attr(trial._trial_id, "host", studies.host())
        values = {**self.config.hyperparameters, **tuned}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Hyperparameters.from_dict(values).resolve()
        except HyperparameterError as e:
            storage.set_trial_user_attr(trial._trial_id, "reason", " ".join(e.problems))
            self.study.tell(trial.number, state=TrialState.FAIL)
            self._progress(trial.number, done + 1, f"failed before training: {' '.join(e.problems)}")
            return None
        return Task(
            trial_id=trial._trial_id, number=trial.number, hyperparameters=values, tuned=tuned, sources=self.sources,
            auxiliary=self.auxiliary, seed=self.seed, device=self.device, precision=self.precision, config=self.config,
            storage=self.url, study_name=self.study_name, folder=str(self.folder.resolve()),
            candidate=str((self.folder / ".candidates" / f"trial-{trial.number}").resolve()), beat=self.best,
        )  # fmt: skip

    def _record(self, task: Any, outcome: Any) -> None:
        storage = self.study._storage
        attrs = {
            "epochs": outcome.epochs,
            "best_epoch": outcome.best_epoch,
            "seconds": round(outcome.seconds, 3),
            "metrics": outcome.metrics,
        }
        if outcome.state == "pruned":
            attrs["last_value"] = outcome.value
        if outcome.reason:
            attrs["reason"] = outcome.reason
        for key, value in attrs.items():
            storage.set_trial_user_attr(task.trial_id, key, value)
        state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[outcome.state]
        self.study.tell(
            task.number, values=outcome.value if outcome.state == "complete" else None, state=state, skip_if_finished=True
        )
        candidate = Path(task.candidate)
        if outcome.saved and candidate.is_dir():
            if self.config.objective.better(outcome.value, self.best):
                replace_folder(candidate, self.folder / BEST)
                self.best = outcome.value
            else:
                shutil.rmtree(candidate, ignore_errors=True)
        self.times.append(outcome.seconds)
        done = sum(1 for t in self.study.get_trials(deepcopy=False) if studies.counted(t))
        metric = self.config.objective.metric
        if outcome.state == "complete":
            what = f"complete: {metric} {outcome.value:.6g} (epoch {outcome.best_epoch} of {outcome.epochs})"
        elif outcome.state == "pruned":
            what = f"stopped early after epoch {outcome.epochs}" + (
                f" ({metric} {outcome.value:.6g})" if outcome.value is not None else ""
            )
        else:
            what = f"failed: {outcome.reason}"
        self._progress(task.number, done, f"{what} in {outcome.seconds:.0f} s")
        write_trials_csv(self.folder / "trials.csv", trial_rows(self.study, self.config), self.config)

    def _progress(self, number: int, done: int, what: str) -> None:
        line = f"[{done}/{self.config.max_trials}] trial {number} {what}"
        try:
            best = self.study.best_trial
            line += f" | best {best.value:.6g} (trial {best.number})"
        except ValueError:
            pass
        left = self.config.max_trials - done
        if left > 0 and self.times:
            line += f" | ETA {eta(sum(self.times) / len(self.times) * left / self.config.max_parallel)}"
        self.say(line)

    def _completion(self, trials: list[Any]) -> str | None:
        """SageMaker's completion criteria and MaxRuntimeInSeconds: a reason to stop starting trials."""
        config, objective = self.config, self.config.objective
        if config.max_runtime is not None and time.monotonic() - self.started >= config.max_runtime:
            reason = f"MaxRuntimeInSeconds ({config.max_runtime} s) reached"
        else:
            complete = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.datetime_complete)
            best, since = None, 0
            for t in complete:
                if objective.better(t.value, best):
                    best, since = t.value, 0
                else:
                    since += 1
            if config.target_value is not None and best is not None and not objective.better(config.target_value, best):
                reason = f"TargetObjectiveMetricValue {config.target_value:g} reached ({best:.6g})"
            elif config.max_not_improving is not None and since >= config.max_not_improving:
                reason = f"the best objective did not improve in the last {since} trials (MaxNumberOfTrainingJobsNotImproving)"
            else:
                return None
        self.say(f"Starting no more trials: {reason}.")
        return reason


def best_here(folder: Path) -> float | None:
    """The objective of the model in ``folder/best`` (this machine's best trial), if there is one."""
    try:
        return float(json.loads((folder / BEST / CANDIDATE_INFO).read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
