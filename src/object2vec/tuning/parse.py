"""Reading SageMaker's ``HyperParameterTuningJobConfig``, unchanged, and checking it whole.

A ``tuning.json`` written for SageMaker's automatic model tuning works here as it is: the bare
``HyperParameterTuningJobConfig`` object, or a whole ``CreateHyperParameterTuningJob`` request (or
``DescribeHyperParameterTuningJob`` answer) holding one, whose
``TrainingJobDefinition.StaticHyperParameters`` then become the fixed hyperparameters. Everything is
checked against the hyperparameter table (:mod:`object2vec.hyperparameters`) before the first trial,
and every problem is reported in one :class:`~object2vec.errors.TuningConfigError`: an unknown name,
a range outside a hyperparameter's limits, a scaling that cannot apply, a metric that does not fit
``output_layer``, a value that cannot train with the fixed hyperparameters.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

from ..errors import HyperparameterError, TuningConfigError
from ..hyperparameters import Float, Hyperparameters, Int, Layers
from .config import (
    CONFIG_KEYS,
    METRICS,
    NOT_TUNABLE,
    OBJECTIVE_SPLITS,
    RANGE_KINDS,
    SCALINGS,
    STRATEGIES,
    Objective,
    ParameterRange,
    TuningConfig,
)
from .defaults import default_objective, default_tuning_document

# ScalingType Auto: logarithmic when the range is positive and spans at least this ratio (a decade).
AUTO_LOG_RATIO = 10.0


def read_json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A JSON object from ``path``, or one clear error naming the file and what it should hold."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TuningConfigError(str(path), [f"is not valid JSON ({e}); expected {what}"]) from None
    if not isinstance(value, dict):
        raise TuningConfigError(str(path), [f"holds a JSON {type(value).__name__}; expected {what}"])
    return value


def read_tuning_config(
    source: str | os.PathLike | Mapping[str, Any] | None,
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    splits: tuple[str, ...] = ("train", "validation"),
) -> TuningConfig:
    """Read and check a SageMaker tuning configuration; ``None`` means the spec's recommended ranges.

    Args:
        source: a ``tuning.json`` path, or its parsed object: ``HyperParameterTuningJobConfig``
            itself or a request/answer that holds one.
        hyperparameters: the fixed hyperparameters; they win over the file's
            ``StaticHyperParameters``.
        splits: the data splits given (an objective on ``validation:`` needs that split).

    Raises:
        TuningConfigError: every problem found, at once.

    >>> config = read_tuning_config({
    ...     "Strategy": "Random",
    ...     "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
    ...     "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2},
    ...     "ParameterRanges": {"ContinuousParameterRanges": [
    ...         {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Auto"}]},
    ... }, {"enc0_max_seq_len": 5, "enc0_vocab_size": 100})
    >>> config.strategy, config.max_trials, config.range("learning_rate").scaling
    ('Random', 8, 'Logarithmic')
    """
    where = "tuning configuration" if source is None or isinstance(source, Mapping) else str(source)
    given = dict(hyperparameters or {})
    if source is None:
        document = default_tuning_document(given)
        static: dict[str, Any] = {}
        if not document["ParameterRanges"]:
            raise TuningConfigError(
                "the default tuning configuration",
                ["nothing to tune: the hyperparameters fix every one of the spec's recommended ranges; give a tuning.json"],
            )
    else:
        top = (
            dict(source) if isinstance(source, Mapping) else read_json_object(source, "SageMaker's HyperParameterTuningJobConfig")
        )
        document, static = _unwrap(top)
    return _Reader(where, {**static, **given}, splits).read(document)


def _unwrap(top: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config object and the static hyperparameters of a request that wraps one."""
    if "HyperParameterTuningJobConfig" not in top:
        return top, {}
    definition = top.get("TrainingJobDefinition") or {}
    static = definition.get("StaticHyperParameters") if isinstance(definition, Mapping) else None
    return dict(top["HyperParameterTuningJobConfig"] or {}), dict(static or {})


class _Reader:
    """Walks one configuration, collecting every problem before raising."""

    def __init__(self, where: str, hyperparameters: dict[str, Any], splits: tuple[str, ...]):
        self.where = where
        self.hyperparameters = hyperparameters
        self.splits = splits
        self.problems: list[str] = []

    def read(self, doc: dict[str, Any]) -> TuningConfig:
        for key in doc:
            if key not in CONFIG_KEYS:
                hint = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
                self.problems.append(
                    f"{key}: is not a field of HyperParameterTuningJobConfig" + (f"; did you mean {hint[0]}?" if hint else "")
                )
        base = self._base()
        strategy = self._choice(doc, "Strategy", STRATEGIES, "Bayesian")
        objective = self._objective(doc.get("HyperParameterTuningJobObjective"), base)
        ranges = self._ranges(doc.get("ParameterRanges"), base)
        early = self._choice(doc, "TrainingJobEarlyStoppingType", ("Off", "Auto"), "Off")
        limits = self._object(doc, "ResourceLimits")
        max_trials = self._int(limits, "ResourceLimits.MaxNumberOfTrainingJobs", 1)
        max_parallel = self._int(limits, "ResourceLimits.MaxParallelTrainingJobs", 1) or 1
        max_runtime = self._int(limits, "ResourceLimits.MaxRuntimeInSeconds", 1)
        for key in limits:
            if key not in ("MaxNumberOfTrainingJobs", "MaxParallelTrainingJobs", "MaxRuntimeInSeconds"):
                self.problems.append(f"ResourceLimits.{key}: is not a field of ResourceLimits")
        min_resource, max_resource = self._hyperband(doc, strategy, early, base)
        if strategy == "Grid":
            for r in ranges:
                if r.kind != "Categorical":
                    self.problems.append(
                        f"ParameterRanges: Grid search takes only CategoricalParameterRanges (as on SageMaker); "
                        f"{r.name} is an {r.kind}ParameterRange (list its values as a categorical range)"
                    )
            grid = math.prod(len(r.values) for r in ranges) if ranges else 0
            max_trials = min(max_trials or grid, grid)
        elif max_trials is None:
            self.problems.append("ResourceLimits.MaxNumberOfTrainingJobs: is required (how many trials to run)")
        target, not_improving = self._completion(doc)
        seed = self._int(doc, "RandomSeed", 0)
        if self.problems:
            raise TuningConfigError(self.where, self.problems)
        assert objective is not None and max_trials is not None
        return TuningConfig(
            strategy=strategy,
            objective=objective,
            ranges=tuple(ranges),
            hyperparameters=self.hyperparameters,
            max_trials=max_trials,
            max_parallel=max_parallel,
            early_stopping=early == "Auto",
            min_resource=min_resource,
            max_resource=max_resource,
            random_seed=seed,
            max_runtime=max_runtime,
            target_value=target,
            max_not_improving=not_improving,
            document=doc,
        )

    # -- fields ------------------------------------------------------------------------------------
    def _base(self) -> Hyperparameters | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return Hyperparameters.from_dict(self.hyperparameters).resolve()
        except HyperparameterError as e:
            self.problems += [f"hyperparameters: {p}" for p in e.problems]
            return None

    def _object(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"{key}: is a {type(value).__name__}; expected a JSON object")
            return {}
        return dict(value)

    def _choice(self, doc: Mapping[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
        value = doc.get(key, default)
        if value not in options:
            self.problems.append(f"{key}: {value!r} is not one of {', '.join(options)}")
            return default
        return value

    def _int(self, doc: Mapping[str, Any], path: str, low: int) -> int | None:
        key = path.rsplit(".", 1)[-1]
        if doc.get(key) is None:
            return None
        try:
            value = _as_int(doc[key])
        except ValueError:
            self.problems.append(f"{path}: {doc[key]!r} is not an integer")
            return None
        if value < low:
            self.problems.append(f"{path}: {value} is below {low}")
            return None
        return value

    def _objective(self, spec: Any, base: Hyperparameters | None) -> Objective | None:
        if spec is None:
            if base is None:
                return None
            metric, kind = default_objective(base.output_layer)
            return Objective(metric, kind == "Maximize")
        if not isinstance(spec, Mapping):
            self.problems.append("HyperParameterTuningJobObjective: expected an object with Type and MetricName")
            return None
        kind, metric = cast(Any, spec.get("Type")), cast(Any, spec.get("MetricName"))
        ok = True
        if kind not in ("Maximize", "Minimize"):
            self.problems.append(f"HyperParameterTuningJobObjective.Type: {kind!r} is not Maximize or Minimize")
            ok = False
        split, _, name = str(metric).partition(":")
        names = [f"{s}:{m}" for s in OBJECTIVE_SPLITS for m in METRICS]
        if split not in OBJECTIVE_SPLITS or name not in METRICS:
            hint = difflib.get_close_matches(str(metric), names, n=1)
            self.problems.append(
                f"HyperParameterTuningJobObjective.MetricName: {metric!r} is not an Object2Vec objective metric; "
                f"expected one of {', '.join(names)}" + (f" (did you mean {hint[0]}?)" if hint else "")
            )
            return None
        direction, layer = METRICS[name]
        if base is not None and base.output_layer != layer:
            fits = [f"{s}:{m}" for s in OBJECTIVE_SPLITS for m, (_, lay) in METRICS.items() if lay == base.output_layer]
            self.problems.append(
                f"HyperParameterTuningJobObjective.MetricName: {metric} needs output_layer={layer}, but the model has "
                f"output_layer={base.output_layer}; use {' or '.join(fits)}"
            )
            ok = False
        if kind in ("Maximize", "Minimize") and kind != direction:
            self.problems.append(
                f"HyperParameterTuningJobObjective.Type: {metric} is {'a score' if direction == 'Maximize' else 'a loss'}, "
                f"so it must be {direction}d; got {kind}"
            )
            ok = False
        if split not in self.splits:
            self.problems.append(
                f"HyperParameterTuningJobObjective.MetricName: {metric} is measured on the {split} split, "
                f"but no {split} data was given"
            )
            ok = False
        return Objective(str(metric), direction == "Maximize") if ok else None

    def _ranges(self, spec: Any, base: Hyperparameters | None) -> list[ParameterRange]:
        if not isinstance(spec, Mapping):
            self.problems.append("ParameterRanges: is required: an object with Integer/Continuous/CategoricalParameterRanges")
            return []
        ranges: list[ParameterRange] = []
        for key, items in spec.items():
            if key == "AutoParameters":
                self.problems.append(
                    "ParameterRanges.AutoParameters: SageMaker Autotune's ranges are not supported; list the ranges"
                )
                continue
            if key not in RANGE_KINDS:
                self.problems.append(f"ParameterRanges.{key}: is not one of {', '.join(RANGE_KINDS)}")
                continue
            if not isinstance(items, list):
                self.problems.append(f"ParameterRanges.{key}: expected a list of ranges")
                continue
            for i, item in enumerate(items):
                r = self._range(f"{key}[{i}]", RANGE_KINDS[key], item)
                if r is not None:
                    ranges.append(r)
        names = [r.name for r in ranges]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.problems.append(f"ParameterRanges: {name} has more than one range")
        if not ranges and not any("ParameterRanges" in p for p in self.problems):
            self.problems.append("ParameterRanges: no ranges; give at least one hyperparameter to tune")
        if base is not None:
            self._check_combinations(ranges)
        return ranges

    def _range(self, where: str, kind: str, item: Any) -> ParameterRange | None:
        if not isinstance(item, Mapping):
            self.problems.append(f"{where}: expected an object with Name and its values")
            return None
        name = item.get("Name")
        known = {f.name: f for f in fields(Hyperparameters)}
        if name not in known:
            hint = difflib.get_close_matches(str(name), known, n=1)
            self.problems.append(
                f"{where}: {name!r} is not an Object2Vec hyperparameter" + (f"; did you mean {hint[0]}?" if hint else "")
            )
            return None
        if name in NOT_TUNABLE:
            self.problems.append(f"{where}: {name} cannot be tuned: {NOT_TUNABLE[name]}")
            return None
        constraint = known[name].metadata["constraint"]
        where = f"{where} {name}"
        if kind == "Categorical":
            return self._categorical(where, name, constraint, item)
        if kind == "Integer" and isinstance(constraint, Layers):
            constraint = Int(1, 4)
        wanted = Int if kind == "Integer" else Float
        if not isinstance(constraint, wanted):
            other = "IntegerParameterRanges" if isinstance(constraint, Int) else "CategoricalParameterRanges"
            self.problems.append(f"{where}: {name} takes {constraint.describe()}, not a {kind.lower()} range; use {other}")
            return None
        ends = []
        for end in ("MinValue", "MaxValue"):
            raw = item.get(end)
            try:
                ends.append(constraint.parse(raw))
            except (ValueError, TypeError):
                self.problems.append(f"{where}: {end} {raw!r} is outside its limits: {name} must be {constraint.describe()}")
        scaling = item.get("ScalingType", "Auto")
        if scaling not in SCALINGS:
            self.problems.append(f"{where}: ScalingType {scaling!r} is not one of {', '.join(SCALINGS)}")
            return None
        if len(ends) < 2:
            return None
        low, high = ends
        if low > high:
            self.problems.append(f"{where}: MinValue {low:g} is above MaxValue {high:g}")
            return None
        if scaling == "Auto":
            scaling = "Logarithmic" if low > 0 and high / low >= AUTO_LOG_RATIO else "Linear"
        elif scaling == "Logarithmic" and low <= 0:
            self.problems.append(f"{where}: Logarithmic scaling needs MinValue > 0; got {low:g}")
            return None
        elif scaling == "ReverseLogarithmic":
            if kind != "Continuous":
                self.problems.append(f"{where}: ReverseLogarithmic scaling applies to continuous ranges only (as on SageMaker)")
                return None
            if not 0 <= low < high < 1:
                self.problems.append(
                    f"{where}: ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1; got [{low:g}, {high:g}]"
                )
                return None
        return ParameterRange(name, kind, low, high, scaling=scaling)

    def _categorical(self, where: str, name: str, constraint: Any, item: Mapping[str, Any]) -> ParameterRange | None:
        values = item.get("Values")
        if not isinstance(values, list) or not values:
            self.problems.append(f"{where}: Values must be a non-empty list")
            return None
        texts = []
        for value in values:
            text = constraint.format(value) if isinstance(value, bool) else str(value).strip()
            try:
                constraint.parse(text)
            except (ValueError, TypeError):
                self.problems.append(f"{where}: value {value!r} is outside its limits: {name} must be {constraint.describe()}")
                continue
            texts.append(text)
        for dup in sorted({t for t in texts if texts.count(t) > 1}):
            self.problems.append(f"{where}: value {dup!r} is listed more than once")
        return ParameterRange(name, "Categorical", values=tuple(dict.fromkeys(texts))) if texts else None

    def _check_combinations(self, ranges: list[ParameterRange]) -> None:
        """Each end (or category) of each range with the fixed hyperparameters: can it train at all?

        Tuned names are taken out of the fixed ones first, so only a conflict with a value that no
        trial can change is reported here; two tuned values that clash show up as failed trials.
        """
        fixed = {k: v for k, v in self.hyperparameters.items() if k not in {r.name for r in ranges}}
        for r in ranges:
            for value in r.bounds():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        Hyperparameters.from_dict({**fixed, r.name: value}).resolve()
                except HyperparameterError as e:
                    self.problems.append(
                        f"ParameterRanges: {r.name}={value} cannot train with the fixed hyperparameters: {e.problems[0]}"
                    )

    def _hyperband(
        self, doc: Mapping[str, Any], strategy: str, early: str, base: Hyperparameters | None
    ) -> tuple[int, int | None]:
        config = self._object(doc, "StrategyConfig")
        hyperband = self._object(config, "HyperbandStrategyConfig") if "HyperbandStrategyConfig" in config else {}
        if strategy != "Hyperband":
            if config:
                self.problems.append(f"StrategyConfig: applies to the Hyperband strategy only; Strategy is {strategy}")
            return 1, None
        if early == "Auto":
            self.problems.append(
                "TrainingJobEarlyStoppingType: must be Off with the Hyperband strategy, which stops trials itself (as on SageMaker)"
            )
        low = self._int(hyperband, "StrategyConfig.HyperbandStrategyConfig.MinResource", 1) or 1
        high = self._int(hyperband, "StrategyConfig.HyperbandStrategyConfig.MaxResource", 1)
        if high is None and base is not None:
            high = base.epochs  # SageMaker infers MaxResource from the epochs hyperparameter
        if high is not None and low > high:
            self.problems.append(f"StrategyConfig.HyperbandStrategyConfig: MinResource {low} is above MaxResource {high}")
        return low, high

    def _completion(self, doc: Mapping[str, Any]) -> tuple[float | None, int | None]:
        spec = self._object(doc, "TuningJobCompletionCriteria")
        target = spec.get("TargetObjectiveMetricValue")
        if target is not None:
            try:
                target = float(target)
            except (TypeError, ValueError):
                self.problems.append(f"TuningJobCompletionCriteria.TargetObjectiveMetricValue: {target!r} is not a number")
                target = None
        stall = self._object(spec, "BestObjectiveNotImproving")
        not_improving = self._int(
            stall, "TuningJobCompletionCriteria.BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving", 3
        )
        convergence = self._object(spec, "ConvergenceDetected").get("CompleteOnConvergence", "Disabled")
        if convergence == "Enabled":
            warnings.warn(
                "TuningJobCompletionCriteria.ConvergenceDetected is SageMaker's own heuristic and is ignored here; "
                "the study stops at MaxNumberOfTrainingJobs",
                UserWarning,
                stacklevel=4,
            )
        return target, not_improving


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError
