"""The spec's recommended tuning ranges (§1.3, SageMaker's Object2Vec tuning page) as a SageMaker
``HyperParameterTuningJobConfig``: what ``object2vec tune`` searches without ``--tuning``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import HyperparameterError
from ..hyperparameters import Hyperparameters
from .config import RANGE_KINDS

# Spec §1.3: SageMaker's recommended ranges for Object2Vec (D-TUNE); enc* rows apply to enc0 and enc1.
RECOMMENDED: tuple[tuple[str, str, Any, Any], ...] = (
    ("dropout", "Continuous", 0.0, 1.0),
    ("early_stopping_patience", "Integer", 1, 5),
    ("early_stopping_tolerance", "Continuous", 0.001, 0.1),
    ("enc_dim", "Integer", 4, 4096),
    ("enc*_cnn_filter_width", "Integer", 1, 5),
    ("enc*_layers", "Integer", 1, 4),
    ("enc*_token_embedding_dim", "Integer", 5, 300),
    ("epochs", "Integer", 4, 20),
    ("learning_rate", "Continuous", 1e-6, 1.0),
    ("mini_batch_size", "Integer", 1, 8192),
    ("mlp_activation", "Categorical", ("tanh", "relu", "linear"), None),
    ("mlp_dim", "Integer", 16, 1024),
    ("mlp_layers", "Integer", 1, 4),
    ("optimizer", "Categorical", ("adagrad", "adam", "rmsprop", "sgd", "adadelta"), None),
    ("weight_decay", "Continuous", 0.0, 1.0),
)
# Which encoder hyperparameters an encoder reads (pooled_embedding forces its token size to enc_dim).
ENCODER_TUNABLES = {"hcnn": ("cnn_filter_width", "layers", "token_embedding_dim"), "bilstm": ("layers", "token_embedding_dim")}
DEFAULT_MAX_TRIALS = 20


def default_objective(output_layer: str) -> tuple[str, str]:
    """The objective that fits ``output_layer``: validation accuracy (softmax) or MSE (regression)."""
    if output_layer == "mean_squared_error":
        return "validation:mean_squared_error", "Minimize"
    return "validation:accuracy", "Maximize"


def default_tuning_document(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """A SageMaker ``HyperParameterTuningJobConfig`` over the spec's recommended ranges.

    Only the ranges that matter for the model are kept: an encoder's width, layers and token size
    only where its network reads them (``pooled_embedding`` reads none; ``enc1_network=enc0`` copies
    enc0's), and nothing the user fixed in ``hyperparameters``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hp = Hyperparameters.from_dict(hyperparameters).resolve()
    except HyperparameterError:
        hp = None  # the reader reports the hyperparameters' problems
    names: list[tuple[str, str, Any, Any]] = []
    for name, kind, low, high in RECOMMENDED:
        if not name.startswith("enc*_"):
            names.append((name, kind, low, high))
            continue
        for side in (0, 1):
            if hp is None or (side == 1 and Hyperparameters.from_dict(hyperparameters).enc1_network == "enc0"):
                continue
            key = name.removeprefix("enc*_")
            if key not in ENCODER_TUNABLES.get(getattr(hp, f"enc{side}_network"), ()):
                continue
            if key == "token_embedding_dim" and getattr(hp, f"enc{side}_pretrained_embedding_file"):
                continue  # the vector file fixes it
            names.append((f"enc{side}_{key}", kind, low, high))
    ranges: dict[str, list[dict[str, Any]]] = {k: [] for k in RANGE_KINDS}
    for name, kind, low, high in names:
        if name in hyperparameters:
            continue
        if kind == "Categorical":
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": list(low)})
        else:
            ranges[f"{kind}ParameterRanges"].append(
                {"Name": name, "MinValue": str(low), "MaxValue": str(high), "ScalingType": "Auto"}
            )
    metric, kind = default_objective(hp.output_layer if hp else "softmax")
    return {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": kind, "MetricName": metric},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": DEFAULT_MAX_TRIALS, "MaxParallelTrainingJobs": 1},
        "ParameterRanges": {k: v for k, v in ranges.items() if v},
        "TrainingJobEarlyStoppingType": "Off",
    }
