"""Experiment tracking: TensorBoard event files and MLflow runs, fed by the epoch-end callbacks.

A tracker is a training callback (:mod:`object2vec.training.callbacks`) with two more calls: it logs
the run's hyperparameters when it opens, each epoch's metrics as the epoch ends, and at
:meth:`Tracker.finish` the test metrics and best epoch (MLflow: also the model folder as an
artifact, once it is written). Names are the same in both::

    train/accuracy, train/cross_entropy (or train/mean_squared_error, train/rmse)   step = epoch
    validation/...                                                                   step = epoch
    train/throughput (pairs per second), train/epoch_seconds                         step = epoch
    test/..., best_epoch                                                             at the end

Only rank 0 of a distributed run writes; on other ranks a tracker does nothing. TensorBoard needs
``pip install 'object2vec[tensorboard]'``, MLflow ``pip install 'object2vec[mlflow]'``; both are
imported only when a tracker opens.

>>> parse_log_to("tensorboard:runs/a"), parse_log_to("mlflow"), parse_log_to("mlflow:file:///tmp/mlruns")
(('tensorboard', 'runs/a'), ('mlflow', None), ('mlflow', 'file:///tmp/mlruns'))
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import reporting
from .._optional import require
from ..errors import Object2VecError

KINDS = ("tensorboard", "mlflow")
EXPERIMENT = "object2vec"  # the MLflow experiment unless MLFLOW_EXPERIMENT_NAME names another
MAX_PARAM_LENGTH = 6000  # MLflow refuses longer parameter values


class TrackingError(Object2VecError, ValueError):
    """A ``--log-to`` target that cannot be used: unknown kind, missing package, refused location."""


def parse_log_to(spec: str) -> tuple[str, str | None]:
    """``tensorboard[:DIR]`` or ``mlflow[:URI]`` to ``(kind, where or None)``."""
    kind, _, where = spec.partition(":")
    if kind not in KINDS:
        raise TrackingError(f"--log-to {spec!r}: unknown tracker {kind!r}; expected tensorboard[:DIR] or mlflow[:URI]")
    return kind, where or None


def epoch_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of an epoch record (``{"epoch", "train", "validation"?, "throughput", "seconds"}``) by name."""
    out = {
        f"{split}/{name}": float(value) for split in ("train", "validation") for name, value in (record.get(split) or {}).items()
    }
    out["train/throughput"] = float(record["throughput"])
    out["train/epoch_seconds"] = float(record["seconds"])
    return out


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A model's ``metrics_`` at the end: test metrics and the best epoch."""
    out = {f"test/{name}": float(value) for name, value in (metrics.get("test") or {}).items()}
    if metrics.get("best_epoch") is not None:
        out["best_epoch"] = float(metrics["best_epoch"])
    return out


class Tracker:
    """Base class: ``on_epoch_end`` logs the record's metrics at step = epoch; ``finish``/``fail`` close."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.log(epoch_metrics(record), int(record["epoch"]))

    def log(self, metrics: Mapping[str, float], step: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, metrics: Mapping[str, Any], model_dir: str | os.PathLike | None = None) -> None:
        """Log the run's end (``metrics``: a model's ``metrics_``) and close; ``model_dir``: the written model."""

    def fail(self) -> None:
        """Close after a failed run."""


class _Inactive(Tracker):
    """What a non-zero rank gets: every call does nothing."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass


def open_tracker(spec: str, params: Mapping[str, Any], run_name: str | None = None, default_dir: Path | None = None) -> Tracker:
    """The tracker ``spec`` names (``tensorboard[:DIR]``, ``mlflow[:URI]``), opened and given ``params``.

    ``default_dir``: TensorBoard's folder when ``spec`` names none [``runs/<run name>-<time>``].
    """
    kind, where = parse_log_to(spec)
    if not reporting.is_main_process():
        return _Inactive()
    if kind == "tensorboard":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = Path(where) if where else default_dir or Path("runs") / f"{run_name or 'object2vec'}-{stamp}"
        return TensorBoardTracker(folder, params)
    return MLflowTracker(where, params, run_name)


class TensorBoardTracker(Tracker):
    """Scalars per epoch and the hyperparameters (HParams tab) in an event file under ``folder``."""

    def __init__(self, folder: str | os.PathLike, params: Mapping[str, Any]):
        require("tensorboard", "--log-to tensorboard")
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.folder = Path(folder)
        try:
            self.writer = SummaryWriter(log_dir=str(self.folder))
        except OSError as e:
            raise TrackingError(f"--log-to tensorboard:{folder}: cannot write there ({e.strerror or e})") from None
        self.params = {k: _hparam(v) for k, v in params.items()}
        # the HParams tab links these values to the scalars of this folder
        experiment, start, self._end = hparams(self.params, {"best_epoch": math.nan})
        for summary in (experiment, start):
            self._events().add_summary(summary)
        self.writer.flush()

    def _events(self) -> Any:
        events = self.writer.file_writer
        assert events is not None  # SummaryWriter opens its event file on creation
        return events

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def finish(self, metrics: Mapping[str, Any], model_dir: str | os.PathLike | None = None) -> None:
        final = final_metrics(metrics)
        step = int(final.get("best_epoch", 0))
        for name, value in final.items():
            self.writer.add_scalar(name, value, step)
        self._events().add_summary(self._end)
        self.writer.close()

    def fail(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """One MLflow run: parameters, metrics per epoch (step = epoch), the model folder as artifacts under ``model/``.

    ``uri`` is the tracking URI (``file:///path``, ``sqlite:///mlflow.db``, ``http://host:5000``);
    without one, MLflow's own default (``$MLFLOW_TRACKING_URI``, else its local store).
    """

    def __init__(self, uri: str | None, params: Mapping[str, Any], run_name: str | None = None):
        require("mlflow", "--log-to mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        where = f"mlflow:{uri}" if uri else "mlflow"
        try:
            self.client = MlflowClient(tracking_uri=uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            found = self.client.get_experiment_by_name(name)
            experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
            self.run_id = self.client.create_run(experiment, run_name=run_name).info.run_id
            values = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
            for start in range(0, len(values), 100):  # MLflow takes at most 100 parameters a call
                self.client.log_batch(self.run_id, params=values[start : start + 100])
        except Exception as e:  # MlflowException, OSError, a refused store: one line, what MLflow said first
            first = str(e).strip().split(". ")[0].split("\n")[0]
            advice = ""
            if "MLFLOW_ALLOW_FILE_STORE" in str(e):  # MLflow 3 keeps plain folders behind a switch
                advice = "; set MLFLOW_ALLOW_FILE_STORE=true to log to a folder, or use mlflow:sqlite:///mlflow.db"
            raise TrackingError(f"--log-to {where}: MLflow refused it ({first}){advice}") from None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, metrics: Mapping[str, Any], model_dir: str | os.PathLike | None = None) -> None:
        final = final_metrics(metrics)
        self.log(final, int(final.get("best_epoch", 0)))
        if model_dir is not None:
            self.client.log_artifacts(self.run_id, str(model_dir), artifact_path="model")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, "FAILED")


def _hparam(value: Any) -> Any:
    """TensorBoard takes numbers, strings and booleans; None and tuples become text."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)
