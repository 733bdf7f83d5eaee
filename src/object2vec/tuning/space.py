"""The search as Optuna sees it: distributions, the sampler of each strategy, the pruner.

=========================  ======================================================================
SageMaker                  here (Optuna)
=========================  ======================================================================
``Bayesian``               TPE (multivariate; a constant liar while trials run in parallel)
``Random``                 random sampling
``Grid``                   every combination of the categorical values, each once
``Hyperband``              TPE proposals, stopped by Hyperband's successive halving over epochs
                           (``MinResource``/``MaxResource``)
``Auto`` early stopping    SageMaker's median rule: after each epoch a trial stops when its
                           objective is worse than the median of the earlier trials' running
                           averages up to that epoch
Linear / Logarithmic       a uniform / log-uniform distribution
ReverseLogarithmic         ``1 - value`` log-uniform in ``[1 - MaxValue, 1 - MinValue]`` (fine steps
                           near 1); Optuna stores it under the name ``1-NAME``
=========================  ======================================================================
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from .config import ParameterRange, TuningConfig

PRUNER_MIN_TRIALS = 3  # earlier trials that must have reached an epoch before the median rule applies


def param_name(r: ParameterRange) -> str:
    """The name Optuna stores a range under (reverse-logarithmic ranges store ``1 - value``)."""
    return f"1-{r.name}" if r.scaling == "ReverseLogarithmic" else r.name


def distribution(r: ParameterRange) -> BaseDistribution:
    if r.kind == "Categorical":
        return CategoricalDistribution(list(r.values))
    assert r.low is not None and r.high is not None
    if r.scaling == "ReverseLogarithmic":
        return FloatDistribution(1.0 - r.high, 1.0 - r.low, log=True)
    if r.kind == "Integer":
        return IntDistribution(int(r.low), int(r.high), log=r.scaling == "Logarithmic")
    return FloatDistribution(r.low, r.high, log=r.scaling == "Logarithmic")


def search_space(config: TuningConfig) -> dict[str, BaseDistribution]:
    return {param_name(r): distribution(r) for r in config.ranges}


def hyperparameters_of(params: dict[str, Any], config: TuningConfig) -> dict[str, Any]:
    """A trial's tuned hyperparameters, by their Object2Vec names and in their own units."""
    out = {}
    for r in config.ranges:
        value = params[param_name(r)]
        if r.scaling == "ReverseLogarithmic":
            value = 1.0 - value
        out[r.name] = value
    return out


def params_of(hyperparameters: dict[str, Any], config: TuningConfig) -> dict[str, Any]:
    """The inverse of :func:`hyperparameters_of`: Optuna parameters for hand-picked values (some or all)."""
    out = {}
    for r in config.ranges:
        if r.name not in hyperparameters:
            continue
        value = hyperparameters[r.name]
        if r.kind == "Categorical":
            value = str(value)
        elif r.kind == "Integer":
            value = int(value)
        else:
            value = float(value)
        out[param_name(r)] = 1.0 - value if r.scaling == "ReverseLogarithmic" else value
    return out


class _Grid(optuna.samplers.GridSampler):
    """Grid sampling without the stop request: the runner counts trials itself (``Study.stop`` is only
    allowed inside ``Study.optimize``, which the runner does not use)."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        return None


def sampler(config: TuningConfig, seed: int, parallel: int) -> optuna.samplers.BaseSampler:
    """The sampler of ``config.strategy``. ``seed`` should differ on each resume, or a seeded sampler
    would propose the first session's values again."""
    if config.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.strategy == "Grid":
        return _Grid({param_name(r): list(r.values) for r in config.ranges}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=parallel > 1)


def pruner(config: TuningConfig) -> optuna.pruners.BasePruner:
    if config.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=config.min_resource, max_resource=config.max_resource or "auto")
    if config.early_stopping:
        return MedianRulePruner()
    return optuna.pruners.NopPruner()


class MedianRulePruner(optuna.pruners.BasePruner):
    """SageMaker's ``Auto`` early stopping: after epoch ``n`` a trial stops if its objective is worse than
    the median of the running averages, up to epoch ``n``, of the trials that finished before.

    >>> import optuna
    >>> study = optuna.create_study(direction="minimize")
    >>> for curve in ([1.0, 0.8], [1.1, 0.9], [0.9, 0.7]):
    ...     study.add_trial(optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve, 1))))
    >>> trial = study.ask()
    >>> trial.report(5.0, 1)
    >>> MedianRulePruner().prune(study, study._storage.get_trial(trial._trial_id))
    True
    """

    def __init__(self, min_trials: int = PRUNER_MIN_TRIALS):
        self.min_trials = min_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        averages = []
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            seen = [v for s, v in other.intermediate_values.items() if s <= step and not math.isnan(v)]
            if seen:
                averages.append(sum(seen) / len(seen))
        if len(averages) < self.min_trials:
            return False
        averages.sort()
        mid = len(averages) // 2
        median = averages[mid] if len(averages) % 2 else (averages[mid - 1] + averages[mid]) / 2
        return value < median if study.direction == optuna.study.StudyDirection.MAXIMIZE else value > median
