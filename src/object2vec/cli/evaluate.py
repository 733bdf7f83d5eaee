"""``object2vec evaluate``: the metrics SageMaker reports on labelled pairs, or ranking metrics."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .base import fmt, friendly_errors, load_model, main, notes


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
@friendly_errors
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
    from ..estimator import Object2Vec

    if ranking:
        ranking_report(model_dir, data, device, k, candidates, exclude_seen, by, ties, as_json)
        return
    metrics = Object2Vec.load(model_dir, device=device).evaluate(data)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    for name, value in metrics.items():
        click.echo(f"{name:<20} {value:.6f}")


def ranking_report(
    model_dir: Path,
    data: Path,
    device: str,
    k: int,
    candidates: Path | None,
    exclude_seen: Path | None,
    by: str,
    ties: str,
    as_json: bool,
) -> None:
    """``object2vec evaluate --ranking``: hits@k, NDCG@k and MRR of the held-out positives in ``data``."""
    from ..retrieval.recommend import evaluate_ranking

    model = load_model(model_dir, device)
    with notes():
        metrics = evaluate_ranking(model, data, k, candidates, exclude_seen, by, ties)
    if as_json:
        click.echo(json.dumps({**metrics, "ties": ties}))
        return
    for name, value in metrics.items():
        click.echo(f"{name:<20} {fmt(value)}")
    click.echo(f"{'ties':<20} {ties}")
