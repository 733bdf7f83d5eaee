"""The ``object2vec`` command. Each verb is one method of the Python API.

Every hyperparameter is an option of ``train`` (``--enc-dim 64`` or ``--enc_dim 64``), generated from
the table in :mod:`object2vec.config`, so ``object2vec train --help`` shows each one's range and
default. ``--hyperparameters FILE`` reads SageMaker's ``hyperparameters.json`` (all-string values)
and ``-p name=value`` sets any of them; later sources win: file, then ``-p``, then named options.

User errors print one clear message (no traceback) and exit with status 2.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import distributed, reporting
from .config import Hyperparameters, hyperparameter_table, hyperparameters_markdown
from .errors import Object2VecError

EXIT_USER_ERROR = 2


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Object2VecError as e:
            if reporting.is_main_process():  # under torchrun every rank fails alike; one message is enough
                click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except OSError as e:
            click.echo(f"error: {e.filename or ''}: {e.strerror or e}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def _hyperparameter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for row in reversed(hyperparameter_table()):
        name = row["name"]
        flags = dict.fromkeys((f"--{name.replace('_', '-')}", f"--{name}"))  # both spellings, once each
        fn = click.option(
            *flags,
            name,
            default=None,
            metavar="VALUE",
            help=f"{row['doc']} [{row['valid']}; default: {row['default']}]",
        )(fn)
    return fn


def _read_hyperparameters_file(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Object2VecError(f"{path}: is not valid JSON ({e}); expected an object of name -> value") from None
    if not isinstance(values, dict):
        raise Object2VecError(f"{path}: holds {type(values).__name__}; expected a JSON object of name -> value")
    return values


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in pairs:
        if "=" not in item:
            raise Object2VecError(f"-p {item!r}: expected name=value, e.g. -p enc_dim=64")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="object2vec")
def main() -> None:
    """Object2Vec: embeddings of pairs, SageMaker-compatible, trained with PyTorch."""


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
    "--nproc", default=1, type=click.IntRange(min=1), help="Processes on this machine: >1 relaunches under torchrun (DDP)."
)
@click.option("--checkpoint-dir", type=click.Path(path_type=Path), help="Where latest.pt goes [OUTPUT/checkpoints].")
@click.option(
    "--checkpoint-every", default=0, type=click.IntRange(min=0), help="Also checkpoint every N steps (0: each epoch only)."
)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --checkpoint-dir, same data order.")
@click.option("--dry-run", is_flag=True, help="Validate hyperparameters and data, train one batch, write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.option(
    "--sagemaker",
    is_flag=True,
    help="Container mode: hyperparameters and channels from /opt/ml/input, model to /opt/ml/model, "
    "the reason for a failure to /opt/ml/output/failure.",
)
@click.option("--sagemaker-root", type=click.Path(path_type=Path), help="Instead of /opt/ml ($OBJECT2VEC_SAGEMAKER_ROOT).")
@_hyperparameter_options
@_friendly_errors
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
    nproc: int,
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    resume: bool,
    dry_run: bool,
    quiet: bool,
    sagemaker: bool,
    sagemaker_root: Path | None,
    **named: str | None,
) -> None:
    """Train a model on JSON Lines pairs and write it to --output."""
    if nproc > 1 and not distributed.launched_by_torchrun():
        sys.exit(_relaunch_under_torchrun(nproc))

    reporting.configure_cli_logging(verbose=not quiet)
    if sagemaker:
        from . import sagemaker as container

        paths = container.ContainerPaths.resolve(sagemaker_root)
        with container.failure_reported(paths):
            channels = container.channels(paths)
            train_path, validation, test = channels["train"], channels["validation"], channels["test"]
            auxiliary = auxiliary or channels["auxiliary"]
            output = paths.model
            checkpoint_dir = checkpoint_dir or paths.checkpoints  # SageMaker syncs this folder for spot training
            resume = resume or (checkpoint_dir / "latest.pt").exists()
            hyperparameters = {**container.read_hyperparameters(paths), **_parse_pairs(params)}
            _train(hyperparameters, named, train_path, validation, test, auxiliary, output, seed, device, precision,
                   cache, checkpoint_dir, checkpoint_every, resume, dry_run)  # fmt: skip
        return
    if train_path is None:
        raise Object2VecError("--train is required: the training pairs (or --sagemaker to read /opt/ml/input/data/train)")
    hyperparameters: dict[str, Any] = _read_hyperparameters_file(hp_file) if hp_file else {}
    hyperparameters.update(_parse_pairs(params))
    _train(hyperparameters, named, train_path, validation, test, auxiliary, output, seed, device, precision,
           cache, checkpoint_dir, checkpoint_every, resume, dry_run)  # fmt: skip


def _train(
    hyperparameters: dict[str, Any],
    named: dict[str, str | None],
    train_path: Path,
    validation: Path | None,
    test: Path | None,
    auxiliary: Path | None,
    output: Path | None,
    seed: int,
    device: str,
    precision: str,
    cache: bool,
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    resume: bool,
    dry_run: bool,
) -> None:
    from .estimator import Object2Vec

    hyperparameters.update({k: v for k, v in named.items() if v is not None})
    Hyperparameters.from_dict(hyperparameters)  # report bad hyperparameters before anything else
    if output is None and not dry_run:
        raise Object2VecError("--output is required: the folder to write the trained model to (or pass --dry-run)")
    if checkpoint_dir is None and output is not None and not dry_run:
        checkpoint_dir = output / "checkpoints"
    model = Object2Vec(seed=seed, device=device, precision=precision, cache=cache, **hyperparameters)
    try:
        model.fit(
            train_path, validation, test, auxiliary=auxiliary, max_steps=1 if dry_run else None,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
        )  # fmt: skip
        if dry_run:
            click.echo("dry run: hyperparameters and data are valid; one training step ran; nothing was written.")
        elif distributed.context().is_main:
            model.save(output)
            if checkpoint_dir == output / "checkpoints":  # the model is the durable result now
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
            click.echo(f"model written to {output}")
    finally:
        distributed.teardown()


def _relaunch_under_torchrun(nproc: int) -> int:
    """``object2vec train --nproc N ...`` = ``torchrun --standalone --nproc-per-node N -m object2vec train ...``."""
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
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "object2vec",
        *args,
    ]
    return subprocess.run(command, check=False).returncode


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--ranking", is_flag=True, help="Rank every in1 candidate per in0: hits@k, NDCG@k, MRR of DATA's positives.")
@click.option("--k", "k", default=10, type=click.IntRange(1), help="--ranking: cut-off of hits@k and NDCG@k.")
@click.option(
    "--candidates", type=click.Path(path_type=Path), help="--ranking: item file of in1 candidates [the in1 vocabulary]."
)
@click.option(
    "--exclude-seen", type=click.Path(path_type=Path), help="--ranking: pairs (e.g. training data) to leave out per in0."
)
@click.option(
    "--by", default="score", type=click.Choice(["score", "embedding"]), help="--ranking: pair score or embedding cosine."
)
@click.option(
    "--ties",
    default="pessimistic",
    type=click.Choice(["pessimistic", "expected"]),
    help="--ranking: rank of a positive among equal scores.",
)
@_friendly_errors
def evaluate(
    model_dir: Path,
    data: Path,
    device: str,
    as_json: bool,
    ranking: bool,
    k: int,
    candidates: Path | None,
    exclude_seen: Path | None,
    by: str,
    ties: str,
) -> None:
    """Score a trained model on labelled pairs (the metrics SageMaker reports), or as a ranker (--ranking)."""
    from .estimator import Object2Vec

    if ranking:
        from .cli_usecases import ranking_report

        ranking_report(model_dir, data, device, k, candidates, exclude_seen, by, ties, as_json)
        return
    metrics = Object2Vec.load(model_dir, device=device).evaluate(data)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    for name, value in metrics.items():
        click.echo(f"{name:<20} {value:.6f}")


@main.command()
@click.option(
    "--train", "train_path", type=click.Path(path_type=Path), help="Raw training pairs; the vocabulary is built from these."
)
@click.option(
    "--validation", type=click.Path(path_type=Path), help="Raw validation pairs (encoded with the training vocabulary)."
)
@click.option("--test", type=click.Path(path_type=Path), help="Raw test pairs (encoded with the training vocabulary).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option("--left", required=True, help="Column of the in0 text: a name, or a 0-based index.")
@click.option("--right", required=True, help="Column of the in1 text: a name, or a 0-based index.")
@click.option("--label", help="Column of the label: a name, or a 0-based index. Leave out for unlabelled pairs.")
@click.option(
    "--format", "fmt", default="auto", type=click.Choice(["auto", "csv", "tsv", "jsonl"]), help="auto: from the extension."
)
@click.option("--no-quoting", is_flag=True, help="Quote characters are text (csv.QUOTE_NONE), as in STS Benchmark files.")
@click.option(
    "--header/--no-header", default=None, help="Whether CSV/TSV files start with a header row [default: if a column is named]."
)
@click.option(
    "--label-type",
    default="auto",
    type=click.Choice(["auto", "class", "number"]),
    help="auto: numbers if one label is fractional, else classes.",
)
@click.option(
    "--tokenizer-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Hugging Face tokenizer.json (needs object2vec[text]).",
)
@click.option(
    "--lowercase/--no-lowercase", default=None, help="Lowercase before splitting [default: yes, no with --tokenizer-file]."
)
@click.option("--min-count", default=1, type=click.IntRange(1), help="Keep words seen at least this often in training.")
@click.option("--max-size", type=click.IntRange(2), help="At most this many ids, the unknown token's included.")
@click.option("--shared-vocab", is_flag=True, help="One vocabulary for both sides (vocab.json) instead of one per side.")
@click.option("--unknown-token", default="<unk>", help="The word of id 0, which stands for every out-of-vocabulary token.")
@click.option(
    "--vectors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GloVe/word2vec text vectors (.gz ok); vocabulary rows go to vectors.txt.gz.",
)
@click.option(
    "--vector-words", default=0, type=click.IntRange(0), help="Also add the first N words of --vectors to the vocabulary."
)
@click.option(
    "--length-percentile",
    default=99.0,
    type=click.FloatRange(1, 100),
    help="Suggested max_seq_len: this percentile of training lengths.",
)
@click.option("--max-seq-len", type=click.IntRange(1, 5000), help="Suggest this max_seq_len instead of the percentile.")
@click.option(
    "--vocab-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Apply the tokenizer, vocabulary and labels of an earlier output folder.",
)
@_friendly_errors
def prepare(
    train_path: Path | None,
    validation: Path | None,
    test: Path | None,
    output: Path,
    left: str,
    right: str,
    label: str | None,
    fmt: str,
    no_quoting: bool,
    header: bool | None,
    label_type: str,
    tokenizer_file: Path | None,
    lowercase: bool | None,
    min_count: int,
    max_size: int | None,
    shared_vocab: bool,
    unknown_token: str,
    vectors: Path | None,
    vector_words: int,
    length_percentile: float,
    max_seq_len: int | None,
    vocab_from: Path | None,
) -> None:
    """Tokenize raw text pairs (CSV, TSV, JSON Lines) into Object2Vec JSON Lines plus vocab.json.

    Prints the OOV rate and truncation counts of each split and the hyperparameters to train with:

    \b
      object2vec prepare --train train.csv --validation dev.csv --left question1 --right question2 --label is_duplicate -o data/
      object2vec train --train data/train.jsonl --validation data/validation.jsonl --auxiliary data \\
          --hyperparameters data/hyperparameters.json -o model/
    """
    from .prepare import Table, parse_column
    from .prepare import prepare as run

    table = Table(parse_column(left), parse_column(right), parse_column(label), fmt, not no_quoting, header)  # type: ignore[arg-type]
    report = run(
        output,
        table,
        train=train_path,
        validation=validation,
        test=test,
        vocab_from=vocab_from,
        tokenizer_file=tokenizer_file,
        lowercase=lowercase,
        min_count=min_count,
        max_size=max_size,
        shared_vocab=shared_vocab,
        unknown_token=unknown_token,
        label_type=label_type,
        vectors=vectors,
        vector_words=vector_words,
        length_percentile=length_percentile,
        max_seq_len=max_seq_len,
    )
    for line in report.lines():
        click.echo(line)
    splits = {s.name for s in report.splits}
    if "train" in splits:
        val = f" --validation {output / 'validation.jsonl'}" if "validation" in splits else ""
        click.echo(
            f"train with: object2vec train --train {output / 'train.jsonl'}{val} --auxiliary {output} "
            f"--hyperparameters {output / 'hyperparameters.json'} -o MODEL_DIR"
        )


@main.command()
@click.option("--markdown", is_flag=True, help="Print the Markdown table of docs/hyperparameters.md.")
def hyperparameters(markdown: bool) -> None:
    """List every hyperparameter with its valid values and default."""
    if markdown:
        click.echo(hyperparameters_markdown(), nl=False)
        return
    for row in hyperparameter_table():
        click.echo(f"{row['name']:<34} {row['default']:<12} {row['valid']}")


from . import cli_serve  # noqa: E402, F401  (registers predict, embed, serve)
from .cli_usecases import cluster, index_group, plot, recommend  # noqa: E402 - they import _friendly_errors from here

main.add_command(index_group)
main.add_command(recommend)
main.add_command(cluster)
main.add_command(plot)

if __name__ == "__main__":  # pragma: no cover
    main()
