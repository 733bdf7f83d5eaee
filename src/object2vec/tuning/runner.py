"""``object2vec.tune``: a study of training runs, in parallel, resumable, with its results written out.

The tuning process reads and checks everything first (the configuration against the hyperparameter
table, every data split, parsed once into the binary cache that each trial then loads), then
proposes trials one at a time (``Study.ask``) and hands them to the worker processes
(:mod:`object2vec.tuning.pool`); each finished trial is told to the study, written to
``trials.csv`` and reported as a progress line. The best model so far is kept in ``best/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import DataError, HyperparameterError, Object2VecError, TuningConfigError
from ..files import atomic_write_json, replace_folder
from ..hyperparameters import Hyperparameters
from .config import TuningConfig, as_strings, read_tuning_config

DEFAULT_STUDY = "object2vec"
POLL_SECONDS = 5.0  # how often to look for other machines' trials while none of ours runs
BEST = "best"


@dataclass
class TuneResult:
    """What :func:`tune` found; ``trials`` are the rows of ``trials.csv``."""

    folder: Path
    objective: str
    best_trial: int | None
    best_value: float | None
    best_hyperparameters: dict[str, Any] | None
    trials: list[dict[str, Any]]
    summary: dict[str, Any]

    def best_model(self, device: str = "auto") -> Any:
        """The best trial's model (``folder/best``) as an :class:`~object2vec.estimator.Object2Vec`."""
        from ..estimator import Object2Vec

        return Object2Vec.load(self.folder / BEST, device=device)


def tune(
    train: Any,
    validation: Any = None,
    test: Any = None,
    *,
    output_dir: str | os.PathLike,
    tuning: str | os.PathLike | Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    auxiliary: str | os.PathLike | None = None,
    storage: str | None = None,
    study_name: str = DEFAULT_STUDY,
    trials: int | None = None,
    parallel: int | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    in_process: bool = False,
    dry_run: bool = False,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Tune Object2Vec's hyperparameters as SageMaker's automatic model tuning does, on Optuna.

    Args:
        train, validation, test: the data splits (paths, folders or lists of records). The objective
            metric names its split (``validation:accuracy``, ``test:mean_squared_error``).
        output_dir: the tuning folder: ``study.db`` (unless ``storage``), ``trials.csv``,
            ``best/`` (the best trial's model folder), ``summary.json``, ``objective.png``,
            ``importance.png``, and the ``tuning.json`` and ``hyperparameters.json`` used.
        tuning: SageMaker's ``HyperParameterTuningJobConfig`` (a path or the parsed object; a
            ``CreateHyperParameterTuningJob`` request works too). ``None``: the spec's recommended
            ranges for the objective that fits ``output_layer``, Bayesian, 20 trials.
        hyperparameters: the fixed hyperparameters (SageMaker's static hyperparameters).
        storage: an Optuna RDB URL (``postgresql://user:pw@host/db``) shared by tuning processes on
            several machines; default SQLite in ``output_dir``.
        study_name: the study's name in the storage.
        trials, parallel: override ``MaxNumberOfTrainingJobs`` and ``MaxParallelTrainingJobs``.
        enqueue: hyperparameter values to try first (each a dict of tuned names; others sampled).
        seed: the training seed of every trial (so trials differ by their hyperparameters only) and
            the sampler's seed unless the configuration has ``RandomSeed``.
        in_process: run trials in this process, one at a time (no start-up cost; a crash ends the run).
        dry_run: check the configuration and the data, print the plan, run nothing, write nothing.
        log: where progress lines go (default: standard error).

    Running again with the same folder (or storage and study name) resumes: finished trials are
    kept, a trial that was running when the process stopped is run again, and the study goes on to
    ``MaxNumberOfTrainingJobs``.

    Raises:
        TuningConfigError: every problem of the configuration, before any trial.
        DataError: every problem of the data, before any trial.
    """
    optuna = require("optuna", "object2vec tune")
    from . import results, space
    from . import study as studies

    say = log or _stderr
    sources = {k: v for k, v in (("train", train), ("validation", validation), ("test", test)) if v is not None}
    config = read_tuning_config(tuning, hyperparameters, splits=tuple(sources))
    config = _limits(config, trials, parallel, in_process)
    first = [space.params_of(_checked_enqueue(item, config, i), config) for i, item in enumerate(enqueue)]
    _check_data(sources, config, auxiliary)
    threads = max(1, _cores() // config.max_parallel)
    folder = Path(output_dir)
    say(_plan(config, threads, in_process))
    if dry_run:
        say("dry run: the tuning configuration and the data are valid; nothing was run or written.")
        return TuneResult(folder, config.objective.metric, None, None, None, [], {})

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_lock(folder):
        shutil.rmtree(folder / ".candidates", ignore_errors=True)  # models of trials that never finished
        url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
        rdb = studies.open_storage(url, heartbeat=True)
        study = studies.open_study(
            rdb, study_name, config, config.random_seed if config.random_seed is not None else seed, config.max_parallel
        )
        atomic_write_json(folder / "tuning.json", config.document)
        atomic_write_json(folder / "hyperparameters.json", as_strings(config.hyperparameters))
        lost = studies.abandon(study) if storage is None else []
        if storage is not None:
            studies.recover_stale(study)
        before = [t for t in study.get_trials(deepcopy=False) if studies.counted(t)]
        if before or lost:
            say(f"Resuming study {study_name!r}: {len(before)} of {config.max_trials} trials done"
                + (f"; trial {', '.join(map(str, lost))} had not finished and runs again." if lost else "."))  # fmt: skip
        elif first:
            for params in first:
                study.enqueue_trial(params, user_attrs={"enqueued": True})
        run = _Run(study, config, folder, sources, auxiliary, seed, device, precision, url, study_name, say)
        start = time.monotonic()
        with _sigterm_as_interrupt(), studies.Heartbeat(rdb) as heartbeat:
            run.loop(heartbeat, threads, in_process)
        shutil.rmtree(folder / ".candidates", ignore_errors=True)
        info, text = results.write_results(study, config, folder, time.monotonic() - start, plots=plots)
    say(text)
    rows = results.trial_rows(study, config)
    return TuneResult(
        folder, config.objective.metric, info["best_trial"], info["best_value"], info["best_hyperparameters"], rows, info
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _limits(config: TuningConfig, trials: int | None, parallel: int | None, in_process: bool) -> TuningConfig:
    problems = []
    if trials is not None and trials < 1:
        problems.append(f"trials: {trials} is below 1")
    if parallel is not None and parallel < 1:
        problems.append(f"parallel: {parallel} is below 1")
    if problems:
        raise TuningConfigError("options", problems)
    changes: dict[str, Any] = {}
    if trials is not None:
        grid = config.max_trials if config.strategy == "Grid" else trials
        changes["max_trials"] = min(trials, grid)
    if parallel is not None:
        changes["max_parallel"] = parallel
    config = dataclasses.replace(config, **changes)
    if in_process and config.max_parallel > 1:
        raise TuningConfigError(
            "options", [f"in-process tuning runs one trial at a time; got MaxParallelTrainingJobs={config.max_parallel}"]
        )
    return config


def _checked_enqueue(item: Mapping[str, Any], config: TuningConfig, i: int) -> dict[str, Any]:
    """Hand-picked values must be tuned names with values inside their ranges (partial is fine)."""
    from .space import distribution

    problems = []
    if config.strategy == "Grid":
        problems.append("Grid search runs every combination once; there is nothing to try first")
    names = {r.name: r for r in config.ranges}
    values = {}
    for name, value in item.items():
        r = names.get(name)
        if r is None:
            problems.append(f"{name} is not tuned (set a fixed value in the hyperparameters instead)")
            continue
        dist = distribution(r)
        external = str(value) if r.kind == "Categorical" else (1.0 - float(value) if r.scaling == "ReverseLogarithmic" else value)
        try:
            ok = dist._contains(dist.to_internal_repr(external))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            shown = ", ".join(r.values) if r.kind == "Categorical" else f"[{r.low:g}, {r.high:g}]"
            problems.append(f"{name}={value!r} is outside its range {shown}")
            continue
        values[name] = value
    if problems:
        raise TuningConfigError(f"enqueue[{i}]", problems)
    return values


def _check_data(sources: dict[str, Any], config: TuningConfig, auxiliary: Any) -> None:
    """Read every split once, before any trial: problems are reported together, and file splits
    land in the binary cache that every trial then reads."""
    from ..data.pairs import Schema, read_pairs
    from ..text.auxiliary import AuxiliaryChannel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hp = Hyperparameters.from_dict(config.hyperparameters).resolve()
    AuxiliaryChannel.open(hp, auxiliary)
    schema = Schema.from_hyperparameters(hp)
    problems: list[str] = []
    count = 0
    for source in sources.values():
        try:
            read_pairs(source, schema, cache=True)
        except DataError as e:
            problems += e.problems
            count += e.count
    if count:
        raise DataError(problems, count)


def _plan(config: TuningConfig, threads: int, in_process: bool) -> str:
    strategy = {"Bayesian": "Bayesian (TPE)", "Hyperband": "Hyperband (TPE proposals)"}.get(config.strategy, config.strategy)
    where = (
        "in this process" if in_process else f"{config.max_parallel} at a time, {threads} torch thread{'s' * (threads > 1)} each"
    )
    stopping = "Hyperband" if config.strategy == "Hyperband" else ("Auto (median rule)" if config.early_stopping else "Off")
    lines = [
        f"Tuning {config.objective.metric} ({config.objective.direction}) by {strategy} search: "
        f"{config.max_trials} trials, {where}; trial early stopping {stopping}.",
        *(f"  {r.describe()}" for r in config.ranges),
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One tuning process per folder: it owns ``best/``, ``trials.csv`` and the default study's trials."""
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Object2VecError(
                f"{folder}: another 'object2vec tune' is using this folder; wait for it to end, or give each "
                "tuning process its own output folder and one shared --storage"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """``kill`` stops the study as Ctrl-C does: running trials are queued again, results written."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Run:
    """The loop of one tuning process: propose, run, record, until the study has its trials."""

    def __init__(self, study: Any, config: TuningConfig, folder: Path, sources: dict[str, Any], auxiliary: Any,
                 seed: int, device: str, precision: str, url: str, study_name: str, say: Callable[[str], None]):  # fmt: skip
        self.study, self.config, self.folder, self.say = study, config, folder, say
        self.sources = {k: str(Path(v).resolve()) if isinstance(v, (str, os.PathLike)) else v for k, v in sources.items()}
        self.auxiliary = str(Path(auxiliary).resolve()) if auxiliary is not None else None
        self.seed, self.device, self.precision, self.url, self.study_name = seed, device, precision, url, study_name
        self.best = _best_here(folder)
        self.times: list[float] = []
        self.started = time.monotonic()
        self.stopped: str | None = None

    def loop(self, heartbeat: Any, threads: int, in_process: bool) -> None:
        from . import study as studies
        from .pool import InProcess, WorkerPool

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
            from .results import trial_rows, write_trials_csv

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
        from . import space
        from .study import host
        from .worker import Task

        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # Optuna notes that heartbeats are meant for Study.optimize; ours are recorded by hand
            trial = self.study.ask(space.search_space(self.config))
        tuned = space.hyperparameters_of(trial.params, self.config)
        storage = self.study._storage
        storage.set_trial_user_attr(trial._trial_id, "hyperparameters", tuned)
        storage.set_trial_user_attr(trial._trial_id, "host", host())
        values = {**self.config.hyperparameters, **tuned}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Hyperparameters.from_dict(values).resolve()
        except HyperparameterError as e:
            storage.set_trial_user_attr(trial._trial_id, "reason", " ".join(e.problems))
            self.study.tell(trial.number, state=self._states().FAIL)
            self._progress(trial.number, done + 1, f"failed before training: {' '.join(e.problems)}")
            return None
        return Task(
            trial_id=trial._trial_id, number=trial.number, hyperparameters=values, tuned=tuned, sources=self.sources,
            auxiliary=self.auxiliary, seed=self.seed, device=self.device, precision=self.precision, config=self.config,
            storage=self.url, study_name=self.study_name, folder=str(self.folder.resolve()),
            candidate=str((self.folder / ".candidates" / f"trial-{trial.number}").resolve()), beat=self.best,
        )  # fmt: skip

    @staticmethod
    def _states() -> Any:
        from optuna.trial import TrialState

        return TrialState

    def _record(self, task: Any, outcome: Any) -> None:
        from . import study as studies

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
        states = self._states()
        state = {"complete": states.COMPLETE, "pruned": states.PRUNED, "fail": states.FAIL}[outcome.state]
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
        from .results import trial_rows, write_trials_csv

        write_trials_csv(self.folder / "trials.csv", trial_rows(self.study, self.config), self.config)

    def _progress(self, number: int, done: int, what: str) -> None:
        from .results import eta

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


def _best_here(folder: Path) -> float | None:
    """The objective of the model in ``folder/best`` (this machine's best trial), if there is one."""
    import json

    from .worker import CANDIDATE_INFO

    try:
        return float(json.loads((folder / BEST / CANDIDATE_INFO).read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
