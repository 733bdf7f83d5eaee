"""``object2vec train``, ``object2vec hyperparameters`` and ``object2vec metric-definitions``.

Every hyperparameter is an option of ``train`` (``--enc-dim 64`` or ``--enc_dim 64``), generated from
the table in :mod:`object2vec.hyperparameters`, so ``object2vec train --help`` shows each one's range and
default. ``--hyperparameters FILE`` reads SageMaker's ``hyperparameters.json`` (all-string values)
and ``-p name=value`` sets any of them; later sources win: file, then ``-p``, then named options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import console, reporting
from ..errors import Object2VecError
from ..hyperparameters import Hyperparameters, hyperparameter_table, hyperparameters_markdown, sagemaker_keys
from .base import friendly_errors, main, parse_pairs, read_hyperparameters_file

logger = logging.getLogger(__name__)


def _hyperparameter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for row in reversed(hyperparameter_table()):
        name = row["name"]
        flags = dict.fromkeys((f"--{name.replace('_', '-')}", f"--{name}"))  # both spellings, once each
        fn = click.option(
            *flags,
            name,
            default=None,
            metavar="VALUE",
            help=("[extension] " if row["extension"] else "") + f"{row['doc']} [{row['valid']}; default: {row['default']}]",
        )(fn)
    return fn


@main.command()
@click.option(
    "--train",
    "train_path",
    type=click.Path(path_type=Path),
    help="Training pairs: .jsonl, .jsonl.gz or a folder of them (required unless --sagemaker).",
)
@click.option("--validation", type=click.Path(path_type=Path), help="Validation pairs (early stopping, best-epoch restore).")
@click.option("--test", type=click.Path(path_type=Path), help="Test pairs, scored once after training.")
@click.option(
    "--auxiliary",
    type=click.Path(path_type=Path),
    help="SageMaker's auxiliary channel: the folder with the enc*_vocab_file and enc*_pretrained_embedding_file files "
    "(an 'object2vec prepare' output folder).",
)
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SageMaker hyperparameters.json (string values).",
)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Set any hyperparameter; repeatable.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Model folder to write (required unless --dry-run).")
@click.option("--seed", default=0, type=int, help="Seed for initialisation, shuffling, sampling and dropout.")
@click.option("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N.")
@click.option(
    "--precision",
    default="fp32",
    type=click.Choice(["fp32", "bf16", "fp16", "auto"]),
    help="Training arithmetic; auto = bf16 where the hardware has bf16 units (fp16: CUDA only).",
)
@click.option(
    "--cache/--no-cache",
    default=True,
    help="Reuse a binary copy of parsed data files ($OBJECT2VEC_CACHE_DIR or ~/.cache/object2vec).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    help="Processes on this machine: >1 relaunches under torchrun (DDP) [1; with --sagemaker, one per visible GPU].",
)
@click.option("--checkpoint-dir", type=click.Path(path_type=Path), help="Where latest.pt goes [OUTPUT/checkpoints].")
@click.option(
    "--checkpoint-every", default=0, type=click.IntRange(min=0), help="Also checkpoint every N steps (0: each epoch only)."
)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --checkpoint-dir, same data order.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier model in --output, or write beside files that are not a model (they are kept).",
)
@click.option("--dry-run", is_flag=True, help="Validate hyperparameters and data, train one batch, write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.option(
    "--log-format",
    type=click.Choice(reporting.LOG_FORMATS),
    help="sagemaker: SageMaker's #quality_metric/#throughput_metric/#progress_metric lines; human: a line per epoch "
    "with an ETA, progress bars and a table at the end; both. [human when stdout and stderr are terminals, "
    "else sagemaker; --sagemaker: sagemaker]",
)
@click.option(
    "--log-to",
    multiple=True,
    metavar="TRACKER",
    help="Also log hyperparameters and each epoch's metrics to tensorboard[:DIR] (default DIR: runs/NAME-TIME) "
    "or mlflow[:URI] (MLflow also keeps the model folder); repeatable.",
)
@click.option(
    "--sagemaker",
    is_flag=True,
    help="Container mode: hyperparameters and channels from /opt/ml/input, model to /opt/ml/model, "
    "the reason for a failure to /opt/ml/output/failure.",
)
@click.option("--sagemaker-root", type=click.Path(path_type=Path), help="Instead of /opt/ml ($OBJECT2VEC_SAGEMAKER_ROOT).")
@_hyperparameter_options
@friendly_errors
def train(
    train_path: Path | None,
    validation: Path | None,
    test: Path | None,
    auxiliary: Path | None,
    hp_file: Path | None,
    params: tuple[str, ...],
    output: Path | None,
    seed: int,
    device: str,
    precision: str,
    cache: bool,
    nproc: int | None,
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    resume: bool,
    overwrite: bool,
    dry_run: bool,
    quiet: bool,
    log_format: str | None,
    log_to: tuple[str, ...],
    sagemaker: bool,
    sagemaker_root: Path | None,
    **named: str | None,
) -> None:
    """Train a model on JSON Lines pairs and write it to --output."""
    from ..training import distributed  # imports torch: not before a command runs

    if nproc is None:
        nproc = _sagemaker_processes(device) if sagemaker and not distributed.launched_by_torchrun() else 1
        if nproc > 1:
            click.echo(f"{nproc} GPUs visible: training with one process per GPU (torchrun, DDP).", err=True)
    if nproc > 1 and not distributed.launched_by_torchrun():
        sys.exit(_relaunch_under_torchrun(nproc))

    log_format = _log_format(log_format, sagemaker)
    reporting.configure_cli_logging(verbose=not quiet, log_format=log_format)
    run = TrainRun(train_path, validation, test, auxiliary, output, seed, device, precision, cache,
                   checkpoint_dir, checkpoint_every, resume, dry_run, overwrite, log_format=log_format,
                   log_to=log_to)  # fmt: skip
    if sagemaker:
        from ..serving import container

        paths = container.ContainerPaths.resolve(sagemaker_root)
        with container.failure_reported(paths):
            channels = container.channels(paths)
            checkpoints = checkpoint_dir or paths.checkpoints  # SageMaker syncs this folder for spot training
            run = dataclasses.replace(
                run, train=channels["train"], validation=channels["validation"], test=channels["test"],
                auxiliary=auxiliary or channels["auxiliary"], output=paths.model, checkpoint_dir=checkpoints,
                resume=resume or (checkpoints / "latest.pt").exists(), tensorboard_dir=paths.root / "output" / "tensorboard",
                overwrite=True,  # the platform owns /opt/ml/model
            )  # fmt: skip
            _train({**container.read_hyperparameters(paths), **parse_pairs(params)}, named, run)
        return
    if train_path is None:
        raise Object2VecError("--train is required: the training pairs (or --sagemaker to read /opt/ml/input/data/train)")
    hyperparameters: dict[str, Any] = read_hyperparameters_file(hp_file) if hp_file else {}
    hyperparameters.update(parse_pairs(params))
    _train(hyperparameters, named, run)


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """Where one ``train`` command reads and writes, and how it runs (everything but hyperparameters)."""

    train: Path | None
    validation: Path | None
    test: Path | None
    auxiliary: Path | None
    output: Path | None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    cache: bool = True
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 0
    resume: bool = False
    dry_run: bool = False
    overwrite: bool = False
    log_format: str = "sagemaker"  # which lines show (object2vec.reporting)
    log_to: tuple[str, ...] = ()  # experiment trackers: tensorboard[:DIR], mlflow[:URI]
    tensorboard_dir: Path | None = None  # where --log-to tensorboard writes without a DIR


def _log_format(requested: str | None, sagemaker: bool) -> str:
    """The --log-format in effect: SageMaker's lines in container mode and for programs, a person's at a terminal."""
    if sagemaker:
        if requested == "human":
            raise Object2VecError("--sagemaker keeps SageMaker's metric lines: use --log-format sagemaker or both")
        return requested or "sagemaker"
    return requested or reporting.default_log_format()


def _train(hyperparameters: dict[str, Any], named: dict[str, str | None], run: TrainRun) -> None:
    """Check everything that can be checked before reading data, claim the output folder, train,
    write the model, remove the checkpoint. Under ``torchrun`` every rank joins the job first, so
    that any rank's failure (rank 0's claim of the folder included) stops them all with one message."""
    from ..estimator import Object2Vec, check_seed, resolve_device
    from ..interrupts import Interrupted
    from ..output_folder import OutputFolder
    from ..training import distributed, resources

    assert run.train is not None  # the command checks --train; container.channels() the train channel
    started = time.perf_counter()
    hyperparameters.update({k: v for k, v in named.items() if v is not None})
    if ignored := sagemaker_keys(hyperparameters):
        if reporting.is_main_process():
            logger.info(
                "Ignoring keys SageMaker adds on its own (not Object2Vec hyperparameters): "
                + ", ".join(f"{k}={v!r}" for k, v in sorted(ignored.items()))
            )
        hyperparameters = {k: v for k, v in hyperparameters.items() if k not in ignored}
    hp = Hyperparameters.from_dict(hyperparameters)  # report bad hyperparameters before anything else
    check_seed(run.seed)
    device = resolve_device(run.device)
    output, checkpoint_dir = run.output, run.checkpoint_dir
    if output is None and not run.dry_run:
        raise Object2VecError("--output is required: the folder to write the trained model to (or pass --dry-run)")
    if checkpoint_dir is None and output is not None and not run.dry_run:
        checkpoint_dir = output / "checkpoints"
    model = Object2Vec(seed=run.seed, device=run.device, precision=run.precision, cache=run.cache, **hyperparameters)
    distributed.setup(device)
    claim: OutputFolder | None = None
    trackers: list[Any] = []
    ok = False
    try:
        distributed.on_main(lambda: resources.check_memory(hp, device, validation=run.validation is not None))
        if output is not None and not run.dry_run:
            need = resources.estimate(hp, validation=run.validation is not None)
            sizes = {"model_bytes": need.weights, "checkpoint_bytes": need.total - need.parts["gradients"]} if need else {}
            claim = distributed.on_main(
                lambda: OutputFolder.claim(output, checkpoint_dir, overwrite=run.overwrite, resume=run.resume, **sizes)
            )
            # a bad --log-to fails before any data is read (and after the claim, which leaves nothing behind)
            trackers = distributed.on_main(lambda: _open_trackers(run, hp, model.get_params())) or []
        model.fit(
            run.train, run.validation, run.test, auxiliary=run.auxiliary, max_steps=1 if run.dry_run else None,
            checkpoint_dir=checkpoint_dir, checkpoint_every=run.checkpoint_every, resume=run.resume,
            callbacks=[] if run.dry_run else [console.EpochLines(hp.epochs), *trackers],
        )  # fmt: skip
        if run.dry_run:
            click.echo("dry run: hyperparameters and data are valid; one training step ran; nothing was written.")
        else:
            distributed.on_main(lambda: _write_model(model, hp, output, claim, trackers, run.log_format, started))
        ok = True
    except BaseException as e:
        for tracker in trackers:
            tracker.fail()
        if isinstance(e, Interrupted):
            e.advice = _resume_advice(checkpoint_dir)
        raise
    finally:
        if claim is not None:
            claim.release()
        distributed.teardown(ok)


def _write_model(
    model: Any, hp: Hyperparameters, output: Path | None, claim: Any, trackers: list[Any], log_format: str, started: float
) -> None:
    """Rank 0: write the model, remove this run's checkpoint, close the trackers, say where the model is."""
    assert output is not None and claim is not None
    model.save(output)
    claim.finish()  # the model is the durable result now: remove the checkpoint this run wrote
    for tracker in trackers:
        tracker.finish(model.metrics_, output)
    if log_format == "sagemaker":
        click.echo(f"model written to {output}")
    else:
        for line in console.summary_table(model.metrics_, hp.epochs, time.perf_counter() - started, output):
            click.echo(line)


def _resume_advice(checkpoint_dir: Path | None) -> str:
    """How to go on after an interruption: from the checkpoint if one was written."""
    checkpoint = checkpoint_dir / "latest.pt" if checkpoint_dir is not None else None
    if checkpoint is None or not checkpoint.is_file():
        return "no checkpoint was written yet: run the same command again to start over"
    return f"the checkpoint {checkpoint} is kept: run the same command with --resume to continue from it"


def _sagemaker_processes(device: str) -> int:
    """SageMaker's Object2Vec trains on every GPU of the instance: one process per visible GPU when
    there are several (``--device`` auto or cuda), else one."""
    import torch

    from ..estimator import resolve_device

    if resolve_device(device).type != "cuda" or ":" in device:
        return 1
    return max(1, torch.cuda.device_count())


def _open_trackers(run: TrainRun, hp: Hyperparameters, options: dict[str, Any]) -> list[Any]:
    """The --log-to trackers, each given the resolved hyperparameters and the run's options."""
    if not run.log_to:
        return []
    import warnings

    from ..training.tracking import open_tracker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit reports what resolving warns about
        resolved = hp.resolve()
    params = {**resolved.to_dict(as_strings=True), **{k: options[k] for k in ("seed", "device", "precision")}}
    name = run.output.name if run.output is not None else None
    trackers: list[Any] = []
    try:
        for spec in run.log_to:
            trackers.append(open_tracker(spec, params, name, run.tensorboard_dir))
    except BaseException:
        for tracker in trackers:
            tracker.fail()
        raise
    return trackers


def _relaunch_under_torchrun(nproc: int) -> int:
    """``object2vec train --nproc N ...`` = ``torchrun --standalone --nproc-per-node N -m object2vec train ...``
    (through :mod:`object2vec.training.launch`, which keeps torchrun's failure report out of the way)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [
        sys.executable,
        "-m",
        "object2vec.training.launch",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "object2vec",
        *args,
    ]
    from ..interrupts import Interrupted

    process = subprocess.Popen(command)
    while True:
        try:
            return process.wait()
        except Interrupted as e:  # pass it on: torchrun stops the workers, rank 0 says how to resume
            process.send_signal(e.signum)


@main.command()
@click.option("--markdown", is_flag=True, help="Print the Markdown table of docs/hyperparameters.md.")
def hyperparameters(markdown: bool) -> None:
    """List every hyperparameter with its valid values and default; extensions (not in SageMaker) last."""
    if markdown:
        click.echo(hyperparameters_markdown(), nl=False)
        return
    rows = hyperparameter_table()
    for row in (r for r in rows if not r["extension"]):
        click.echo(f"{row['name']:<34} {row['default']:<12} {row['valid']}")
    click.echo("\nextensions (not in SageMaker Object2Vec; off at their defaults):")
    for row in (r for r in rows if r["extension"]):
        click.echo(f"{row['name']:<34} {row['default']:<12} {row['valid']}")


@main.command("metric-definitions")
def metric_definitions() -> None:
    """Print the MetricDefinitions JSON a SageMaker estimator takes for this container (tuning, CloudWatch)."""
    click.echo(json.dumps(reporting.metric_definitions(), indent=2))
