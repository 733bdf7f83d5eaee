"""``object2vec tune``: SageMaker-style automatic model tuning (``docs/tuning.md``).

``--tuning`` reads SageMaker's ``HyperParameterTuningJobConfig`` unchanged; without it the spec's
recommended ranges are tuned. The same command resumes an interrupted study.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import reporting
from ..errors import Object2VecError
from .base import DEVICE_HELP, friendly_errors, main, parse_pairs, read_hyperparameters_file


@main.command()
@click.option(
    "--train",
    "train_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Training pairs (.jsonl, .jsonl.gz or a folder).",
)
@click.option(
    "--validation", type=click.Path(path_type=Path), help="Validation pairs: the usual objective's split and early stopping."
)
@click.option("--test", type=click.Path(path_type=Path), help="Test pairs, scored after each trial (for a test:* objective).")
@click.option("--auxiliary", type=click.Path(path_type=Path), help="SageMaker's auxiliary channel (vocabularies, vectors).")
@click.option(
    "--hyperparameters", "hp_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The fixed hyperparameters: SageMaker's hyperparameters.json (static hyperparameters).",
)  # fmt: skip
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Fix any hyperparameter; repeatable.")
@click.option(
    "--tuning", "tuning_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SageMaker's HyperParameterTuningJobConfig JSON (or a CreateHyperParameterTuningJob request). "
    "Default: the spec's recommended ranges, Bayesian, 20 trials.",
)  # fmt: skip
@click.option(
    "--output", "-o", required=True, type=click.Path(path_type=Path), help="Tuning folder: study, trials.csv, best/, plots."
)
@click.option("--storage", metavar="URL", help="Optuna RDB URL shared by several machines (postgresql://...) [OUTPUT/study.db].")
@click.option("--study-name", default="object2vec", help="The study's name in the storage.")
@click.option("--trials", type=int, help="Overrides ResourceLimits.MaxNumberOfTrainingJobs.")
@click.option("--parallel", type=int, help="Overrides ResourceLimits.MaxParallelTrainingJobs (cores are split between them).")
@click.option(
    "--enqueue", "enqueue_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON list of hyperparameter values to try first (a hand-picked configuration, say).",
)  # fmt: skip
@click.option("--seed", default=0, type=int, help="Training seed of every trial; the sampler's seed unless RandomSeed is set.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--precision", default="fp32", type=click.Choice(["fp32", "bf16", "fp16", "auto"]), help="Training arithmetic.")
@click.option("--in-process", is_flag=True, help="Run trials in this process, one at a time (debugging).")
@click.option("--dry-run", is_flag=True, help="Check the configuration and data, print the plan, run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary.")
@friendly_errors
def tune(
    train_path: Path,
    validation: Path | None,
    test: Path | None,
    auxiliary: Path | None,
    hp_file: Path | None,
    params: tuple[str, ...],
    tuning_file: Path | None,
    output: Path,
    storage: str | None,
    study_name: str,
    trials: int | None,
    parallel: int | None,
    enqueue_file: Path | None,
    seed: int,
    device: str,
    precision: str,
    in_process: bool,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Tune hyperparameters as SageMaker's automatic model tuning does; the best model goes to OUTPUT/best."""
    from ..tuning.runner import tune as run_tune  # imports optuna: not before a command runs

    reporting.configure_cli_logging(verbose=not quiet)
    hyperparameters: dict[str, Any] = read_hyperparameters_file(hp_file) if hp_file else {}
    hyperparameters.update(parse_pairs(params))
    enqueue = _read_enqueue(enqueue_file) if enqueue_file else []
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not quiet:
            click.echo(line, err=True)

    try:
        result = run_tune(
            train_path, validation, test, output_dir=output, tuning=tuning_file, hyperparameters=hyperparameters,
            auxiliary=auxiliary, storage=storage, study_name=study_name, trials=trials, parallel=parallel, enqueue=enqueue,
            seed=seed, device=device, precision=precision, in_process=in_process, dry_run=dry_run, log=say,
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.exit(130)
    if quiet and lines:
        click.echo(lines[-1], err=True)  # the summary
    if not dry_run and result.best_trial is None:
        sys.exit(1)


def _read_enqueue(path: Path) -> list[dict[str, Any]]:
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Object2VecError(f"{path}: is not valid JSON ({e}); expected a list of objects of name -> value") from None
    if isinstance(values, dict):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise Object2VecError(f"{path}: expected a JSON list of objects of name -> value")
    return values
