"""What a study leaves in the tuning folder: ``trials.csv``, ``summary.json``, the two plots.

Everything is read back from the study's storage, so the files describe every trial, including
those of an earlier (interrupted) run or of other machines sharing the study. Files are written
atomically; the plots are drawn on a private matplotlib ``Figure`` (no display needed).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

from .._optional import require
from ..files import atomic_path, atomic_write_bytes, atomic_write_json
from .config import TuningConfig

FIXED_COLUMNS = ["trial", "state", "objective", "epochs", "best_epoch", "seconds", "reason"]


def state_of(trial: Any) -> str:
    """complete, pruned, failed (with a reason), interrupted (lost; queued again), running, waiting."""
    from .study import is_interrupted

    if is_interrupted(trial):
        return "interrupted"
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}[
        trial.state.name
    ]


def trial_rows(study: Any, config: TuningConfig) -> list[dict[str, Any]]:
    """One row per trial: state, objective, epochs, time, reason, metrics, tuned hyperparameters."""
    from . import space

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    retried = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    rows = []
    for t in trials:
        attrs = t.user_attrs
        state = state_of(t)
        reason = attrs.get("reason")
        if state == "interrupted":
            reason = "its process stopped before it finished" + (
                f"; run again as trial {retried[t.number]}" if t.number in retried else ""
            )
        value = t.value if t.state.name == "COMPLETE" else attrs.get("last_value")
        row: dict[str, Any] = {
            "trial": t.number, "state": state, "objective": value, "epochs": attrs.get("epochs"),
            "best_epoch": attrs.get("best_epoch"), "seconds": attrs.get("seconds"), "reason": reason,
        }  # fmt: skip
        if "retry_of" in attrs:
            row["retry_of"] = attrs["retry_of"]
        row |= attrs.get("metrics", {})
        tuned = attrs.get("hyperparameters")
        if tuned is None and len(t.params) == len(config.ranges):
            tuned = space.hyperparameters_of(t.params, config)
        row |= tuned or {}
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]], config: TuningConfig) -> None:
    """``trials.csv``: the fixed columns, then metrics, then one column per tuned hyperparameter."""
    tuned = [r.name for r in config.ranges]
    extra = sorted({k for row in rows for k in row} - set(FIXED_COLUMNS) - set(tuned))
    columns = [*FIXED_COLUMNS, *extra, *tuned]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def summary(study: Any, config: TuningConfig, rows: list[dict[str, Any]], seconds: float, folder: Path) -> dict[str, Any]:
    """The study in one dict (``summary.json``); :func:`summary_text` words it for a person."""
    from .study import counted

    best = _best(study)
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    best_row = next((r for r in rows if best is not None and r["trial"] == best.number), None)
    here = folder / "best" / "trial.json"
    return {
        "objective": config.objective.metric,
        "direction": config.objective.direction,
        "strategy": config.strategy,
        "trials": sum(1 for t in study.get_trials(deepcopy=False) if counted(t)),
        "max_trials": config.max_trials,
        "states": states,
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "best_epochs": None if best_row is None else best_row.get("best_epoch"),
        "best_hyperparameters": None if best is None else best.user_attrs.get("hyperparameters"),
        "best_model": str(folder / "best") if here.is_file() else None,
        "session_seconds": seconds,
        "trial_seconds": sum(r["seconds"] or 0 for r in rows),
    }


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def summary_text(info: dict[str, Any], folder: Path, plots: list[Path]) -> str:
    states = ", ".join(f"{n} {s}" for s, n in sorted(info["states"].items()))
    lines = [
        f"Tuning {info['objective']} ({info['direction']}, {info['strategy']}): "
        f"{info['trials']} of {info['max_trials']} trials done ({states}) in {_duration(info['session_seconds'])} "
        f"({_duration(info['trial_seconds'])} of training in all).",
    ]
    if info["best_trial"] is None:
        lines.append("No trial completed, so there is no best model.")
    else:
        lines.append(
            f"Best: trial {info['best_trial']}, {info['objective']} = {info['best_value']:.6g} (epoch {info['best_epochs']})"
        )
        lines += [f"  {k} = {_value(v)}" for k, v in (info["best_hyperparameters"] or {}).items()]
    written = [folder / "trials.csv", folder / "summary.json", *plots]
    if info["best_model"]:
        written.insert(1, Path(info["best_model"]))
    elif info["best_trial"] is not None:
        lines.append(
            "The best trial ran on another machine sharing the study; its model is in that machine's tuning folder under best/."
        )
    lines.append("Written: " + ", ".join(str(p) for p in written))
    return "\n".join(lines)


def _value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def eta(seconds: float) -> str:
    return _duration(seconds) if seconds < 60 else _duration(round(seconds / 60) * 60).replace(" 0 s", "")


# --------------------------------------------------------------------------------------------------
# Plots


def plot_objective(rows: list[dict[str, Any]], config: TuningConfig, path: Path) -> Path:
    """The objective of each trial with the running best. The scale is set by the complete trials, so
    a few diverged or pruned ones do not squash it: values beyond it sit on its edge as triangles.
    Pruned trials show the value they were stopped on; failed ones are crosses on the bad edge."""
    require("matplotlib", "the tuning plots")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    objective = config.objective
    fig = Figure(figsize=(8, 4.5), dpi=120)
    ax = fig.add_subplot()
    done = [r for r in rows if r["state"] == "complete" and r["objective"] is not None]
    pruned = [r for r in rows if r["state"] == "pruned" and r["objective"] is not None]
    failed = [r for r in rows if r["state"] == "failed"]
    scale = [r["objective"] for r in done] if len(done) >= 2 else [r["objective"] for r in done + pruned]
    low, high = _robust_limits(scale, objective.maximize)
    bad_edge, beyond = (low, "v") if objective.maximize else (high, "^")

    def draw(group: list[dict[str, Any]], label: str, **style: Any) -> None:
        inside = [r for r in group if math.isfinite(r["objective"]) and low <= r["objective"] <= high]
        outside = [r for r in group if r not in inside]
        ax.scatter([r["trial"] for r in inside], [r["objective"] for r in inside], s=28, label=label, zorder=3, **style)
        if outside:
            ax.scatter([r["trial"] for r in outside], [bad_edge] * len(outside), s=36, marker=beyond, zorder=3, clip_on=False,
                       label=f"{label}, beyond the scale", **style)  # fmt: skip

    draw(done, "complete", color="#1f77b4")
    if pruned:
        draw(pruned, "pruned (value when stopped)", facecolors="none", edgecolors="#7f7f7f")
    if failed:
        ax.scatter([r["trial"] for r in failed], [bad_edge] * len(failed), marker="x", color="#d62728", label="failed",
                   zorder=3, clip_on=False)  # fmt: skip
    best_x, best_y, best = [], [], None
    for r in sorted(done, key=lambda r: r["trial"]):
        if objective.better(r["objective"], best):
            best = r["objective"]
        best_x.append(r["trial"])
        best_y.append(min(max(float(best), low), high))  # type: ignore[arg-type]  # set on the first done trial
    if best_x:
        ax.step(best_x, best_y, where="post", color="#ff7f0e", linewidth=2, label=f"best so far ({best:.4g})")
    ax.set_ylim(low, high)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(objective.metric)
    ax.set_title(f"{objective.metric} by trial ({'higher' if objective.maximize else 'lower'} is better; {config.strategy})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def _robust_limits(values: list[float], maximize: bool) -> tuple[float, float]:
    """Axis limits that keep the good end whole and cut off far outliers on the bad end.

    >>> _robust_limits([0.88, 0.89, 0.9, 0.91, 14.0], maximize=False)[1] < 1
    True
    """
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return 0.0, 1.0
    q1, q3 = finite[len(finite) // 4], finite[(3 * len(finite)) // 4]
    spread = max(q3 - q1, 1e-12)
    low, high = finite[0], finite[-1]
    if maximize:
        low = max(low, q1 - 3 * spread)
    else:
        high = min(high, q3 + 3 * spread)
    pad = max(high - low, 1e-9) * 0.05
    return low - pad, high + pad


def plot_importance(study: Any, config: TuningConfig, path: Path) -> Path | None:
    """Optuna's hyperparameter importance over the complete trials; None when there are too few."""
    import optuna

    from . import space
    from .study import counted

    require("matplotlib", "the tuning plots")
    from matplotlib.figure import Figure

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and counted(t)]
    if len(complete) < 2 or not config.ranges:
        return None
    evaluator = _importance_evaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few trials: PED-ANOVA warns that its quantiles coincide
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ImportError):  # e.g. every complete trial has the same values
        return None
    names = {
        space.param_name(r): r.name + (" (1 - value, log)" if r.scaling == "ReverseLogarithmic" else "") for r in config.ranges
    }
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(7, 0.5 + 0.4 * max(len(items), 2)), dpi=120)
    ax = fig.add_subplot()
    ax.barh([names.get(k, k) for k, _ in items], [v for _, v in items], color="#1f77b4")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(v for _, v in items) * 1.15 or 1)
    ax.set_xlabel(f"importance ({type(evaluator).__name__}; the bars sum to 1)")
    ax.set_title(f"Hyperparameter importance for {config.objective.metric} ({len(complete)} complete trials)")
    fig.tight_layout()
    return _save(fig, path)


def _importance_evaluator() -> Any:
    """PED-ANOVA where Optuna has it (4.x on; quick, no scikit-learn), else fANOVA (seeded)."""
    import optuna

    if hasattr(optuna.importance, "PedAnovaImportanceEvaluator"):
        return optuna.importance.PedAnovaImportanceEvaluator()
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_results(
    study: Any, config: TuningConfig, folder: Path, seconds: float, plots: bool = True
) -> tuple[dict[str, Any], str]:
    """Write ``trials.csv``, ``summary.json`` and (with ``plots``) the two PNGs; return the summary and its text."""
    rows = trial_rows(study, config)
    write_trials_csv(folder / "trials.csv", rows, config)
    drawn: list[Path] = []
    if plots:
        drawn.append(plot_objective(rows, config, folder / "objective.png"))
        importance = plot_importance(study, config, folder / "importance.png")
        if importance is not None:
            drawn.append(importance)
    info = summary(study, config, rows, seconds, folder)
    atomic_write_json(folder / "summary.json", info)
    return info, summary_text(info, folder, drawn)
