"""``object2vec predict``, ``embed`` (batch transform) and ``serve`` (the SageMaker-compatible endpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import Object2VecError
from .base import friendly_errors, main

_DEVICE = click.option("--device", default="cpu", help="cpu, cuda, cuda:N or auto.")
_KEEP = click.option(
    "--keep",
    default="id",
    show_default=True,
    help="Comma-separated input keys copied to each output line ('' for none).",
)
_ON_ERROR = click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    help="fail: stop at the first bad chunk, write nothing. skip: write an error record in the bad line's place.",
)
_MAX_SEQLENS = click.option(
    "--infer-max-seqlens", metavar="IN0,IN1", help="Truncate sequences to these lengths (default: the training max_seq_len)."
)


def _transform(model_dir: Path, source: str, output: str | None, mode: str, fmt: str, keep: str, on_error: str,
               device: str, max_seqlens: str | None, normalize: bool = False, labels: str | None = None,
               top_k: int = 1) -> None:  # fmt: skip
    from ..interrupts import Interrupted
    from ..serving.predictor import Predictor, parse_max_seqlens
    from ..serving.transform import transform

    try:
        lens = parse_max_seqlens(max_seqlens) if max_seqlens else None
    except ValueError as e:
        raise Object2VecError(f"--infer-max-seqlens: {e}") from None
    predictor = Predictor.load(model_dir, device=device, normalize=normalize)
    keys = tuple(k.strip() for k in keep.split(",") if k.strip())
    catalogue = None
    if labels is not None:
        from ..retrieval.labels import label_catalogue

        catalogue = label_catalogue(predictor.model, None if labels == "all" else labels)
        mode = "labels"
    try:
        report = transform(
            predictor, source, output, mode=mode, fmt=fmt, keep=keys, on_error=on_error, max_seqlens=lens,
            labels=catalogue, top_k=top_k,
        )  # fmt: skip
    except Interrupted as e:
        if output not in (None, "-"):
            e.advice = f"nothing was written to {output}; run the command again"
        raise
    click.echo(f"{'predict' if mode in ('scores', 'labels') else 'embed'}: {report}", err=True)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", help="Output JSON Lines file (default: stdout), written atomically.")
@_KEEP
@_ON_ERROR
@_MAX_SEQLENS
@_DEVICE
@click.option(
    "--labels",
    metavar="FILE|all",
    help="Rank candidate labels for each line's in0 instead: an item file of in1 labels (prepare's labels.jsonl) "
    'or \'all\' (every in1 token id). Writes {"labels": [...], "scores": [...]}, best first.',
)
@click.option("--top-k", default=1, show_default=True, type=click.IntRange(1), help="With --labels: how many labels per line.")
@friendly_errors
def predict(model_dir: Path, input_path: str, output: str | None, keep: str, on_error: str, infer_max_seqlens: str | None,
            device: str, labels: str | None, top_k: int) -> None:  # fmt: skip
    """Score pairs from INPUT (JSON Lines, '-' for stdin): one {"scores": [...]} per line, in order.

    With --labels, score each line's in0 against every label and write the best (StarSpace's predict):

    \b
      object2vec predict model/ docs.jsonl --labels data/labels.jsonl --top-k 3
    """
    _transform(
        model_dir, input_path, output, "scores", "jsonl", keep, on_error, device, infer_max_seqlens, labels=labels, top_k=top_k
    )


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT")
@click.option("--side", type=click.Choice(["in0", "in1"]), required=True, help="Which encoder: in0 (enc0) or in1 (enc1).")
@click.option("-o", "--output", help="Output file (default: stdout for jsonl), written atomically.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "npy"]), default="jsonl", help="npy: one float32 matrix (needs -o).")
@click.option("--normalize", is_flag=True, help="Scale each embedding to length 1 (inner products become cosines).")
@_KEEP
@_ON_ERROR
@_MAX_SEQLENS
@_DEVICE
@friendly_errors
def embed(model_dir: Path, input_path: str, side: str, output: str | None, fmt: str, normalize: bool, keep: str,
          on_error: str, infer_max_seqlens: str | None, device: str) -> None:  # fmt: skip
    """Embed one side of each line of INPUT: one {"embeddings": [...]} per line, or an .npy matrix."""
    _transform(model_dir, input_path, output, side, fmt, keep, on_error, device, infer_max_seqlens, normalize=normalize)


@main.command()
@click.argument("model_dir", required=False, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", help="Interface to listen on (loopback by default; 0.0.0.0 for all).")
@click.option("--port", default=8080, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, type=click.IntRange(1), help="Worker processes, each with its own copy of the model.")
@click.option(
    "--max-payload-mb",
    type=click.FloatRange(min=0, min_open=True),
    help="Largest request body [$SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6].",
)
@click.option("--max-instances", default=100_000, type=click.IntRange(min=1), help="Most instances in one request (more: 413).")
@click.option(
    "--sagemaker", is_flag=True, help="Container mode: load /opt/ml/model, listen on 0.0.0.0:8080, use the GPU if there is one."
)
@click.option("--sagemaker-root", type=click.Path(path_type=Path), help="Instead of /opt/ml ($OBJECT2VEC_SAGEMAKER_ROOT).")
@click.option(
    "--runtime",
    default="torch",
    type=click.Choice(["torch", "onnx"]),
    help="onnx: serve the graphs of 'object2vec export --format onnx' (MODEL_DIR is the export folder; CPU).",
)
@click.option("--device", help="cpu, cuda, cuda:N or auto (CUDA when available) [auto with --sagemaker, else cpu].")
@friendly_errors
def serve(model_dir: Path | None, host: str, port: int, workers: int, max_payload_mb: float | None, max_instances: int,
          sagemaker: bool, sagemaker_root: Path | None, runtime: str, device: str | None) -> None:  # fmt: skip
    """Answer SageMaker inference requests for MODEL_DIR: GET /ping, POST /invocations, GET /execution-parameters."""
    from ..estimator import resolve_device
    from ..serving import container
    from ..serving.app import ServeSettings, preferred_mode_from_env
    from ..serving.app import serve as run_server

    device = device or ("auto" if sagemaker and runtime == "torch" else "cpu")  # the onnx runtime serves on the CPU
    on_gpu = resolve_device(device).type == "cuda"  # a device this machine lacks stops here, with one line
    if sagemaker:
        paths = container.ContainerPaths.resolve(sagemaker_root)
        model_dir = model_dir or paths.model
        host, port = "0.0.0.0", container.serve_port()
        if workers == 1:
            workers = container.serve_workers(gpu=on_gpu)
    if model_dir is None:
        raise Object2VecError("MODEL_DIR is required (or --sagemaker to serve /opt/ml/model)")
    settings = ServeSettings(
        model_dir=str(model_dir),
        device=device,
        max_payload_mb=max_payload_mb or container.max_payload_mb(),
        max_instances=max_instances,
        workers=workers,
        preferred_mode=preferred_mode_from_env(),
        runtime=runtime,
    )
    run_server(settings, host=host, port=port)
    sys.exit(0)
