"""A tuning configuration as data: the ranges, the objective, the limits (``TuningConfig``).

:mod:`object2vec.tuning.parse` builds one from SageMaker's ``HyperParameterTuningJobConfig`` JSON,
checking everything first; :mod:`object2vec.tuning.defaults` holds the spec's recommended ranges;
:mod:`object2vec.tuning.space` turns a :class:`TuningConfig` into Optuna's samplers and
distributions. None of these three modules needs Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..hyperparameters import Hyperparameters

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
RANGE_KINDS = {
    "IntegerParameterRanges": "Integer",
    "ContinuousParameterRanges": "Continuous",
    "CategoricalParameterRanges": "Categorical",
}
CONFIG_KEYS = (
    "Strategy",
    "StrategyConfig",
    "HyperParameterTuningJobObjective",
    "ResourceLimits",
    "ParameterRanges",
    "TrainingJobEarlyStoppingType",
    "TuningJobCompletionCriteria",
    "RandomSeed",
)
# SageMaker's objective metrics for Object2Vec (spec §3): name -> (direction, the output layer it fits)
METRICS = {
    "accuracy": ("Maximize", "softmax"),
    "cross_entropy": ("Minimize", "softmax"),
    "mean_squared_error": ("Minimize", "mean_squared_error"),
}
OBJECTIVE_SPLITS = ("validation", "test")
# Hyperparameters a range may not move, and why (the objective or the data fixes them).
NOT_TUNABLE = {
    "output_layer": "it decides which objective metrics exist",
    "num_classes": "the labels fix it",
    "enc0_vocab_size": "the data's token ids fix it",
    "enc1_vocab_size": "the data's token ids fix it",
    "enc0_vocab_file": "it names a file in the auxiliary channel",
    "enc1_vocab_file": "it names a file in the auxiliary channel",
    "enc0_pretrained_embedding_file": "it names a file in the auxiliary channel",
    "enc1_pretrained_embedding_file": "it names a file in the auxiliary channel",
}


@dataclass(frozen=True)
class ParameterRange:
    """One tuned hyperparameter: an Integer/Continuous range with its scaling, or Categorical values."""

    name: str
    kind: str  # Integer | Continuous | Categorical
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    scaling: str = "Linear"  # resolved: Linear | Logarithmic | ReverseLogarithmic (Auto is decided on reading)

    def describe(self) -> str:
        if self.kind == "Categorical":
            return f"{self.name:<28} Categorical  {' | '.join(self.values)}"
        return f"{self.name:<28} {self.kind:<12} [{self.low:g}, {self.high:g}] {self.scaling}"

    def bounds(self) -> list[Any]:
        """The values that decide whether the range can train at all: both ends, or every category."""
        return list(self.values) if self.kind == "Categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Objective:
    metric: str  # SageMaker's name: validation:accuracy, test:mean_squared_error, ...
    maximize: bool

    @property
    def split(self) -> str:
        return self.metric.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.metric.split(":", 1)[1]

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def better(self, a: float, b: float | None) -> bool:
        """Whether objective value ``a`` beats ``b`` (anything beats None)."""
        return b is None or (a > b if self.maximize else a < b)


@dataclass(frozen=True)
class TuningConfig:
    """A checked tuning configuration; ``document`` is the SageMaker JSON it was read from."""

    strategy: str
    objective: Objective
    ranges: tuple[ParameterRange, ...]
    hyperparameters: dict[str, Any]  # the fixed ones: StaticHyperParameters, then the user's
    max_trials: int
    max_parallel: int = 1
    early_stopping: bool = False  # TrainingJobEarlyStoppingType Auto
    min_resource: int = 1  # Hyperband: epochs before a trial can be stopped
    max_resource: int | None = None  # Hyperband: epochs at most
    random_seed: int | None = None
    max_runtime: float | None = None
    target_value: float | None = None
    max_not_improving: int | None = None
    document: dict[str, Any] = field(default_factory=dict, compare=False)

    def range(self, name: str) -> ParameterRange:
        return next(r for r in self.ranges if r.name == name)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed study must share with the stored one (limits may change; the search may not)."""
        return {
            "strategy": self.strategy,
            "objective": [self.objective.metric, self.objective.direction],
            "ranges": [[r.name, r.kind, r.low, r.high, list(r.values), r.scaling] for r in self.ranges],
            "hyperparameters": as_strings(self.hyperparameters),
            "early_stopping": self.early_stopping,
            "resources": [self.min_resource, self.max_resource],
        }


# --------------------------------------------------------------------------------------------------
# Reading


def as_strings(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameters as SageMaker writes them (``64`` and ``"64"`` alike become ``"64"``), sorted.

    >>> as_strings({"enc_dim": 64, "comparator_list": ["hadamard", "concat"], "_kvstore": "device"})
    {'_kvstore': 'device', 'comparator_list': 'hadamard, concat', 'enc_dim': '64'}
    """
    known = {f.name: f.metadata["constraint"] for f in fields(Hyperparameters)}
    out = {}
    for name, value in sorted(hyperparameters.items()):
        try:
            out[name] = known[name].format(known[name].parse(value))
        except (KeyError, ValueError, TypeError):  # unknown or invalid: reported elsewhere
            out[name] = str(value)
    return out
