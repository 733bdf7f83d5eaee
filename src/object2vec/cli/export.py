"""``object2vec export``: a trained model in a format that runs outside PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from .base import friendly_errors, main


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="onnx", type=click.Choice(["onnx"]), help="What to write.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@friendly_errors
def export(model_dir: Path, fmt: str, output: Path) -> None:
    """Export MODEL_DIR's encoders and pair scorer as ONNX graphs (dynamic batch and length).

    \b
      object2vec export model/ --format onnx -o model-onnx/
      object2vec serve model-onnx/ --runtime onnx
    """
    from ..serving.onnx import GRAPHS, export_onnx

    folder = export_onnx(model_dir, output)
    click.echo(f"exported {', '.join(GRAPHS.values())} to {folder}")
