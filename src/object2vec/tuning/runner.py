"""``object2vec.tune``: a study of training runs, in parallel, resumable, with its results written out.

The tuning process reads and checks everything first (the configuration against the hyperparameter
table, every data split, parsed once into the binary cache that each trial then loads), takes the
tuning folder's lock, opens or resumes the study, runs :class:`object2vec.tuning.loop.Run` and
writes the results (:mod:`object2vec.tuning.results`).
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
from ..errors import DataError, Object2VecError, TuningConfigError
from ..files import atomic_write_json
from ..hyperparameters import Hyperparameters
from .config import TuningConfig, as_strings
from .parse import read_tuning_config

DEFAULT_STUDY = "object2vec"


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

        return Object2Vec.load(self.folder / "best", device=device)


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
    from .loop import Run

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
        run = Run(study, config, folder, sources, auxiliary, seed, device, precision, url, study_name, say)
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
