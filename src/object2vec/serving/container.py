"""SageMaker's container contract, so this package can be a bring-your-own Object2Vec container.

SageMaker starts a training container as ``<image> train`` and an inference container as
``<image> serve``, and talks to both through folders under ``/opt/ml``::

    /opt/ml/input/config/hyperparameters.json   all-string values, exactly as the built-in algorithm takes
    /opt/ml/input/data/<channel>/...            train (required), validation, test, auxiliary
    /opt/ml/model/                              the trained model (tarred and uploaded by SageMaker)
    /opt/ml/output/failure                      why training failed (shown as the job's FailureReason)

``object2vec train --sagemaker`` and ``object2vec serve --sagemaker`` follow it. The root is
``/opt/ml`` unless ``--sagemaker-root`` or ``$OBJECT2VEC_SAGEMAKER_ROOT`` says otherwise, which is
how the tests run the contract in a temporary folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Object2VecError

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "OBJECT2VEC_SAGEMAKER_ROOT"
CHANNELS = ("train", "validation", "test", "auxiliary")
FAILURE_LIMIT = 1024  # SageMaker shows at most about 1 KB of the failure reason


@dataclass(frozen=True)
class ContainerPaths:
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> ContainerPaths:
        return cls(Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoints(self) -> Path:
        """Synced to S3 by SageMaker when the job has a CheckpointConfig (managed spot training)."""
        return self.root / "checkpoints"


def read_hyperparameters(paths: ContainerPaths) -> dict[str, Any]:
    """``hyperparameters.json`` (absent means all defaults, as SageMaker allows)."""
    if not paths.hyperparameters.exists():
        return {}
    try:
        values = json.loads(paths.hyperparameters.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Object2VecError(f"{paths.hyperparameters}: is not valid JSON ({e}); expected an object of name -> value") from None
    if not isinstance(values, dict):
        raise Object2VecError(f"{paths.hyperparameters}: holds {type(values).__name__}; expected a JSON object")
    return values


def channels(paths: ContainerPaths) -> dict[str, Path | None]:
    """The channel folders that exist; ``train`` must."""
    found = {name: paths.channel(name) if paths.channel(name).is_dir() else None for name in CHANNELS}
    if found["train"] is None:
        raise Object2VecError(f"{paths.channel('train')}: the train channel is missing; expected a folder of JSON Lines files")
    return found


def write_failure(paths: ContainerPaths, message: str) -> None:
    """Leave the reason for SageMaker (trimmed to what it shows), atomically."""
    from ..files import atomic_write_bytes

    paths.failure.parent.mkdir(parents=True, exist_ok=True)
    text = message if len(message) <= FAILURE_LIMIT else message[: FAILURE_LIMIT - 4] + " ..."
    atomic_write_bytes(paths.failure, text.encode())


@contextmanager
def failure_reported(paths: ContainerPaths) -> Iterator[None]:
    """Write ``output/failure`` for any error inside, then let it propagate (non-zero exit)."""
    try:
        yield
    except Object2VecError as e:
        write_failure(paths, f"ClientError: {e}")
        raise
    except OSError as e:
        write_failure(paths, f"ClientError: {e.filename or ''}: {e.strerror or e}")
        raise
    except Exception as e:
        write_failure(paths, f"AlgorithmError: {type(e).__name__}: {e}")
        raise


def serve_port() -> int:
    """SageMaker inference containers listen on 8080 (``SAGEMAKER_BIND_TO_PORT`` may override it)."""
    return int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))


DEFAULT_MAX_PAYLOAD_MB = 6.0  # SageMaker's MaxPayloadInMB when the job does not set it
MAX_PAYLOAD_CAP_MB = 100.0  # the largest MaxPayloadInMB SageMaker allows


def max_payload_mb() -> float:
    """``SAGEMAKER_MAX_PAYLOAD_IN_MB``, which batch transform sets from the job's ``MaxPayloadInMB``;
    6 MB (SageMaker's default) when it is not set. ``0`` means chunked requests of any size (up to
    SageMaker's 100 MB cap here)."""
    value = os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    if not value:
        return DEFAULT_MAX_PAYLOAD_MB
    try:
        mb = float(value)
    except ValueError:
        mb = -1.0
    if not 0 <= mb <= MAX_PAYLOAD_CAP_MB:
        raise Object2VecError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={value!r}; expected a number of MB in [0, {MAX_PAYLOAD_CAP_MB:g}]")
    return mb or MAX_PAYLOAD_CAP_MB


def serve_workers(gpu: bool = False) -> int:
    """``SAGEMAKER_MODEL_SERVER_WORKERS`` if set, else one worker per core on CPU, and one on a GPU
    (each worker holds its own copy of the model on the device, and a GPU batches requests itself)."""
    value = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "").strip()
    if value:
        if not value.isdigit():
            raise Object2VecError(f"SAGEMAKER_MODEL_SERVER_WORKERS={value!r}; expected a whole number of workers")
        return max(1, int(value))
    return 1 if gpu else available_cores()


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
