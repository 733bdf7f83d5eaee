"""The stored study: where it lives, how it resumes, and which trials count.

A study is kept in an Optuna RDB storage: SQLite in the tuning folder by default, or any URL that
``--storage`` names (PostgreSQL, MySQL), where tuning processes on several machines share it. The
configuration is stored with the study, so a resumed run cannot silently change the search.

A trial counts towards ``MaxNumberOfTrainingJobs`` once it is complete, pruned or failed with a
reason. A trial whose process was lost (the tuning process killed, a machine gone) is *interrupted*:
it is marked failed without a reason, and its hyperparameters are queued again as a new trial that
carries ``retry_of``. So after any interruption no finished trial runs again and no trial is lost.
Lost trials are found two ways: a process that holds the tuning folder's lock on the default storage
knows that every running trial there is its own dead predecessor's; otherwise a trial whose
heartbeat (recorded by the process running it) is older than the grace period is lost.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time
import warnings
from typing import Any, cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import Object2VecError
from . import space
from .config import TuningConfig

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
CONFIG_ATTR = "object2vec:config"
SCHEMA_ATTEMPTS = 5  # opening a new database while another process creates its tables


def open_storage(url: str, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``; with ``heartbeat``, lost trials are failed and queued again."""
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}  # parallel writers wait, not fail
    options: dict[str, Any] = {}
    if heartbeat:
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
        options = {"heartbeat_interval": HEARTBEAT_SECONDS, "grace_period": GRACE_SECONDS, callback: retry_interrupted}
    from sqlalchemy.exc import OperationalError

    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat options are marked experimental
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
        except OperationalError as e:
            # two processes opening a new database both create its tables; the one that loses sees
            # "table ... already exists" and only has to open it again (SQLite has no CREATE TABLE IF
            # NOT EXISTS race protection in Optuna's schema set-up)
            if "already exists" not in str(e) or attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def open_study(storage: optuna.storages.RDBStorage, name: str, config: TuningConfig, seed: int, parallel: int) -> optuna.Study:
    """Create the study or load it, refusing one that was tuned with a different configuration."""
    study = optuna.create_study(
        storage=storage, study_name=name, direction=cast(Any, config.objective.direction), load_if_exists=True
    )
    stored = study.user_attrs.get(CONFIG_ATTR)
    wanted = config.fingerprint()
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
    elif stored != wanted:
        differs = ", ".join(k for k in wanted if stored.get(k) != wanted[k])
        raise Object2VecError(
            f"study {name!r} in {_shown(storage.url)} was tuned with a different configuration (it differs in: {differs}); "
            "a resumed study must keep its search. Use a new output folder or --study-name, or restore the old settings"
        )
    study.sampler = space.sampler(config, seed + len(study.trials), parallel)  # a resumed run proposes new values
    study.pruner = space.pruner(config)
    return study


def _shown(url: str) -> str:
    """A storage URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def retry_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the hyperparameters of a lost trial again (called once per lost trial)."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def abandon(study: optuna.Study, trial_ids: list[int] | None = None) -> list[int]:
    """Mark running trials interrupted and queue each again; returns their numbers.

    ``trial_ids`` are the trials this process ran and is giving up (Ctrl-C); ``None`` means every
    running trial, which is right only for a process that holds the sole right to run trials here.
    """
    lost = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial_ids is not None and trial._trial_id not in trial_ids:
            continue
        try:
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                retry_interrupted(study, trial)
                lost.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    return lost


def recover_stale(study: optuna.Study) -> None:
    """Fail and queue again the running trials whose heartbeat stopped (another machine died)."""
    optuna.storages.fail_stale_trials(study)


def is_interrupted(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and "reason" not in trial.user_attrs


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards MaxNumberOfTrainingJobs: finished, and not lost."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and not is_interrupted(trial)
    )


def host() -> str:
    return socket.gethostname()


class Heartbeat:
    """Records a heartbeat for each trial this process runs, every ``HEARTBEAT_SECONDS``, on a thread,
    so other processes sharing the storage can tell a long trial from a lost one."""

    def __init__(self, storage: optuna.storages.RDBStorage):
        self.storage = storage
        self.trials: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="object2vec-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, trial_id: int) -> None:
        self.trials.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def discard(self, trial_id: int) -> None:
        self.trials.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            for trial_id in list(self.trials):
                with contextlib.suppress(Exception):  # a finished trial or a storage hiccup: the next beat tries again
                    self.storage.record_heartbeat(trial_id)
