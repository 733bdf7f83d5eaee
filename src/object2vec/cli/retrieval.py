"""``object2vec index | recommend | cluster | plot`` and ``evaluate --ranking``: what embeddings are for.

Each command is a thin layer over one module (:mod:`object2vec.retrieval.neighbors`, :mod:`object2vec.retrieval.recommend`,
:mod:`object2vec.retrieval.clustering`, :mod:`object2vec.retrieval.plots`); item files are read by
:mod:`object2vec.retrieval.items`. faiss, scikit-learn, matplotlib and umap are imported inside the commands,
so ``object2vec --help`` stays fast and a missing extra is one clear error. Tables are printed for
people; ``--json`` prints JSON for programs. Warnings (k clipped to the catalogue, ...) print as
``note:`` lines on stderr.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import console
from ..errors import DataError, Line, Object2VecError, Problem
from .base import DEVICE_HELP, fmt, friendly_errors, load_model, main, notes

SIDE = click.Choice(["in0", "in1"])
_NAMES_LINE = '{"id": ..., "name": ...}'  # a line of a --names file


def _sequence(text: str) -> list[int] | str:
    """``"5"`` -> ``[5]``, ``"5,17"`` -> ``[5, 17]``; anything else is text (for a model with a vocabulary)."""
    if re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", text):
        return [int(t) for t in text.split(",")]
    return text


def _items(model: Any, data: Path | None, side: str | None) -> Any:
    from ..retrieval.items import read_items, vocabulary_items

    if data is not None:
        return read_items(data, model, side)
    if side is None:
        raise Object2VecError("--side is required without an item file: in0 or in1 (whose vocabulary to use)")
    return vocabulary_items(model, side)


# --------------------------------------------------------------------------------------------------
# index


@click.group("index")
def index_group() -> None:
    """Nearest-neighbour indexes over one side's embeddings (faiss; pip install 'object2vec[search]')."""


@index_group.command("build")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--side", type=SIDE, help="Which encoder embeds the items [the side the --ids records carry].")
@click.option(
    "--ids",
    "ids_file",
    type=click.Path(path_type=Path),
    help='Item file, JSON Lines: {"id": ..., "in1": [...]} per item [every token id of the side\'s vocabulary].',
)
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Index folder to write.")
@click.option(
    "--metric", default="cosine", type=click.Choice(["cosine", "ip", "l2"]), help="l2 scores are distances (lower is nearer)."
)
@click.option(
    "--kind", default="exact", type=click.Choice(["exact", "hnsw", "ivf"]), help="exact, or approximate for large catalogues."
)
@click.option("--hnsw-m", default=32, type=click.IntRange(2), help="HNSW: links per node.")
@click.option("--ef-search", default=128, type=click.IntRange(1), help="HNSW: search beam width (recall vs speed).")
@click.option("--nlist", type=click.IntRange(1), help="IVF: cells [about 4*sqrt(n)].")
@click.option("--nprobe", type=click.IntRange(1), help="IVF: cells searched [a quarter of nlist].")
@click.option("--recall-sample", default=1000, type=click.IntRange(1), help="Approximate kinds: queries for the recall@10 check.")
@click.option(
    "--npy", type=click.Path(dir_okay=False, path_type=Path), help="Also write the embeddings as FILE.npy + FILE.ids.json."
)
@click.option(
    "--projector", type=click.Path(file_okay=False, path_type=Path), help="Also write TensorBoard projector TSVs to this folder."
)
@click.option(
    "--normalize", is_flag=True, help="Scale the vectors to length 1 before indexing and export (ip and l2 then rank as cosine)."
)
@click.option("--seed", default=0, type=int, help="Seed for the IVF k-means and the recall sample.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@friendly_errors
def index_build(
    model_dir: Path,
    side: str | None,
    ids_file: Path | None,
    output: Path,
    metric: str,
    kind: str,
    hnsw_m: int,
    ef_search: int,
    nlist: int | None,
    nprobe: int | None,
    recall_sample: int,
    npy: Path | None,
    projector: Path | None,
    normalize: bool,
    seed: int,
    device: str,
    as_json: bool,
) -> None:
    """Embed a catalogue of items with one side's encoder and write a neighbour index.

    The metric is cosine unless --metric says otherwise: what the cosine and contrastive objectives
    train, and for other models the usual choice. For hnsw/ivf, also builds the exact index in
    memory and reports recall@10 of the approximate one on a sample of the items as queries.
    """
    from ..retrieval.neighbors import NeighborIndex, recall_at_k

    model = load_model(model_dir, device)
    items = _items(model, ids_file, side)
    vectors = items.vectors(model)
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    info = {
        "model": str(model_dir.resolve()),
        "side": items.side,
        "items": str(ids_file.resolve()) if ids_file else None,
        "normalized": normalize,
    }
    with notes():
        index = NeighborIndex.build(
            vectors, items.ids, metric, kind, hnsw_m=hnsw_m, ef_search=ef_search, nlist=nlist, nprobe=nprobe, seed=seed, info=info
        )
        summary: dict[str, Any] = {
            "items": len(items),
            "side": items.side,
            "dim": index.dim,
            "metric": metric,
            "kind": kind,
            "normalized": normalize,
            **index.meta["params"],
        }
        if kind != "exact":
            rows = np.random.default_rng(seed).choice(len(items), size=min(recall_sample, len(items)), replace=False)
            with console.working(f"recall@10 on {len(rows)} sampled items"):
                exact = NeighborIndex.build(vectors, items.ids, metric, "exact")
                summary["recall@10"] = round(recall_at_k(index, exact, vectors[np.sort(rows)], k=10), 4)
            summary["recall_queries"] = len(rows)
    index.save(output)
    summary["index"] = str(output)
    if npy is not None:
        from ..retrieval.export import save_embeddings_npy

        summary["npy"] = [str(p) for p in save_embeddings_npy(npy, vectors, items.ids)]
    if projector is not None:
        from ..retrieval.export import save_projector_tsv

        columns: dict[str, list[Any]] = {"id": list(items.ids)}
        if items.labels is not None:
            columns["label"] = items.labels
        if items.names is not None:
            columns["name"] = items.names
        summary["projector"] = str(save_projector_tsv(projector, vectors, columns))
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"index of {len(items)} {items.side} items ({index.dim} dimensions, {metric}, {kind}) written to {output}")
    if "recall@10" in summary:
        click.echo(f"recall@10 against exact search on {summary['recall_queries']} sampled items: {summary['recall@10']:.4f}")
    for key in ("npy", "projector"):
        if key in summary:
            click.echo(f"embeddings written to {', '.join(summary[key]) if key == 'npy' else summary[key]}")


@index_group.command("query")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--k", default=10, type=click.IntRange(1), help="Neighbours per query.")
@click.option("--id", "item_id", help="Neighbours of an indexed item (itself left out).")
@click.option("--tokens", help='Neighbours of a new sequence: token ids "3,17" (or text for a model with a vocabulary).')
@click.option(
    "--input", "input_file", type=click.Path(path_type=Path), help="Neighbours of every item of an item file (JSON Lines)."
)
@click.option(
    "--model", "model_dir", type=click.Path(path_type=Path), help="Model for --tokens/--input [the one that built the index]."
)
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query: {query, neighbors: [{id, score}]}.")
@friendly_errors
def index_query(
    index_dir: Path,
    k: int,
    item_id: str | None,
    tokens: str | None,
    input_file: Path | None,
    model_dir: Path | None,
    device: str,
    as_json: bool,
) -> None:
    """Nearest neighbours from an index: of an indexed id, of new tokens, or of every item in a file."""
    from ..retrieval.items import embed_one
    from ..retrieval.neighbors import NeighborIndex

    if sum(x is not None for x in (item_id, tokens, input_file)) != 1:
        raise Object2VecError("give exactly one of --id, --tokens or --input")
    index = NeighborIndex.load(index_dir)
    results: list[tuple[Any, list[Any], np.ndarray]] = []
    with notes():
        if item_id is not None:
            ids, scores = index.neighbors(item_id, k)
            results.append((item_id, ids, scores))
        else:
            model = load_model(_index_model(index, model_dir, index_dir), device)
            side = index.meta.get("info", {}).get("side", "in1")
            if tokens is not None:
                queries: list[Any] = [tokens]
                vectors = embed_one(model, side, _sequence(tokens), "--tokens")[None]
            else:
                items = _items(model, input_file, side)
                queries, vectors = list(items.ids), items.vectors(model)
            if index.meta.get("info", {}).get("normalized"):  # queries as the indexed vectors were
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            found, scores = index.search(vectors, k)
            results += [(q, ids, row[: len(ids)]) for q, ids, row in zip(queries, found, scores, strict=True)]
    score_name = "distance" if index.metric == "l2" else "score"
    for query, ids, scores in results:
        if as_json:
            click.echo(
                json.dumps(
                    {"query": query, "neighbors": [{"id": i, score_name: float(s)} for i, s in zip(ids, scores, strict=True)]}
                )
            )
            continue
        click.echo(f"query {query}")
        click.echo(f"  {'rank':>4}  {'id':<24} {score_name}")
        for rank, (i, s) in enumerate(zip(ids, scores, strict=True), 1):
            click.echo(f"  {rank:>4}  {i!s:<24} {s:.4f}")


def _index_model(index: Any, model_dir: Path | None, index_dir: Path) -> Path:
    if model_dir is not None:
        return model_dir
    recorded = index.meta.get("info", {}).get("model")
    if not recorded or not Path(recorded).is_dir():
        raise Object2VecError(f"{index_dir}: the model that built this index ({recorded}) is not there; pass --model MODEL_DIR")
    return Path(recorded)


# --------------------------------------------------------------------------------------------------
# recommend


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--in0", "in0", required=True, help='The in0 to recommend for: a token id "5", ids "5,17", or text.')
@click.option("--k", default=10, type=click.IntRange(1), help="How many items.")
@click.option(
    "--candidates",
    type=click.Path(path_type=Path),
    help='Item file of in1 candidates ({"id": ..., "in1": [...]}) [the in1 vocabulary].',
)
@click.option(
    "--exclude-seen",
    type=click.Path(path_type=Path),
    help="Pairs file (e.g. the training data): leave out items paired with this in0.",
)
@click.option(
    "--by",
    default="score",
    type=click.Choice(["score", "embedding"]),
    help="The model's pair score (the cosine for a cosine or contrastive model), or cosine of the two embeddings.",
)
@click.option("--positive-class", type=click.IntRange(0), help="Classification: the class whose log-odds ranks [the last class].")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print [{id, score}, ...].")
@friendly_errors
def recommend(
    model_dir: Path,
    in0: str,
    k: int,
    candidates: Path | None,
    exclude_seen: Path | None,
    by: str,
    positive_class: int | None,
    device: str,
    as_json: bool,
) -> None:
    """Rank in1 items for one in0 by the model's pair score (or embedding similarity)."""
    from ..retrieval.items import as_items
    from ..retrieval.recommend import recommend as run
    from ..retrieval.recommend import seen_items

    model = load_model(model_dir, device)
    query = _sequence(in0)
    items = as_items(candidates, model, "in1")
    exclude = seen_items(model, exclude_seen, query, items) if exclude_seen is not None else None
    with notes():
        ranked = run(model, query, k, items, exclude, by, positive_class)
    if as_json:
        click.echo(json.dumps([{"id": i, "score": s} for i, s in ranked]))
        return
    hp = model.hyperparameters_
    what = "cosine" if by == "embedding" or not hp.has_head else "score" if hp.is_regression else "log-odds"
    click.echo(f"{'rank':>4}  {'id':<24} {what}")
    for rank, (i, s) in enumerate(ranked, 1):
        click.echo(f"{rank:>4}  {i!s:<24} {s:.4f}")


# --------------------------------------------------------------------------------------------------
# cluster and plot


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--side", type=SIDE, help="Which encoder embeds the items [the side the records carry].")
@click.option("--k", "k", required=True, type=click.IntRange(1), help="Number of clusters.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help='Write {"id", "cluster"} per item (JSON Lines).'
)
@click.option("--backend", default="auto", type=click.Choice(["auto", "faiss", "sklearn"]), help="k-means implementation.")
@click.option("--seed", default=0, type=int, help="Seed for k-means.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@friendly_errors
def cluster(
    model_dir: Path,
    data: Path,
    side: str | None,
    k: int,
    output: Path | None,
    backend: str,
    seed: int,
    device: str,
    as_json: bool,
) -> None:
    """k-means on item embeddings: cluster sizes, silhouette, and adjusted Rand / NMI against item labels."""
    from ..files import atomic_write_bytes
    from ..retrieval.clustering import cluster_scores, kmeans

    model = load_model(model_dir, device)
    items = _items(model, data, side)
    vectors = items.vectors(model)
    with console.working(f"k-means: {len(items)} items into {k} clusters"):
        assignments, _ = kmeans(vectors, k, seed, backend=backend)
    with console.working("scoring the clusters"):
        scores = cluster_scores(vectors, assignments, items.labels, seed)
    sizes = np.bincount(assignments, minlength=k).tolist()
    if output is not None:
        lines = [json.dumps({"id": i, "cluster": int(c)}) + "\n" for i, c in zip(items.ids, assignments, strict=True)]
        atomic_write_bytes(output, "".join(lines).encode())
    if as_json:
        click.echo(json.dumps({"items": len(items), "k": k, "sizes": sizes, **scores, "output": str(output) if output else None}))
        return
    click.echo(f"{len(items)} {items.side} items in {k} clusters; sizes: {' '.join(map(str, sizes))}")
    for name, value in scores.items():
        note = " (the items have no labels)" if value is None and name != "silhouette" else ""
        click.echo(f"{name:<14} {fmt(value)}{note}")
    click.echo(f"assignments written to {output}" if output else "pass -o FILE to write the assignments")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image to write (.png, .svg, .pdf, .jpg).",
)
@click.option("--side", type=SIDE, help="Which encoder embeds the items [the side the records carry].")
@click.option("--method", default="umap", type=click.Choice(["umap", "tsne", "pca"]), help="2-D projection.")
@click.option(
    "--color-by",
    type=click.Choice(["label", "cluster", "none"]),
    help="Colour points by item label or k-means cluster [label if the items have labels].",
)
@click.option("--k", "k", default=8, type=click.IntRange(1), help="Clusters for --color-by cluster.")
@click.option(
    "--names",
    "names_file",
    type=click.Path(path_type=Path),
    help='Names of items: JSON Lines {"id", "name"} or "id<TAB>name" lines.',
)
@click.option("--max-names", default=30, type=click.IntRange(0), help="Write the names of this many sampled points.")
@click.option("--title", help="Title [N items (METHOD)].")
@click.option("--seed", default=0, type=int, help="Seed for the projection, clusters and name sample.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@friendly_errors
def plot(
    model_dir: Path,
    data: Path,
    output: Path,
    side: str | None,
    method: str,
    color_by: str | None,
    k: int,
    names_file: Path | None,
    max_names: int,
    title: str | None,
    seed: int,
    device: str,
) -> None:
    """Draw a 2-D map of item embeddings, coloured by label or cluster, with names on a sample of points."""
    from ..retrieval.plots import plot_map

    model = load_model(model_dir, device)
    items = _items(model, data, side)
    vectors = items.vectors(model)
    color_by = color_by or ("label" if items.labels is not None else "none")
    colors: list[Any] | None = None
    if color_by == "label":
        if items.labels is None:
            raise Object2VecError(f'{data}: the items have no "label"; add one per item or use --color-by cluster')
        colors = items.labels
    elif color_by == "cluster":
        from ..retrieval.clustering import kmeans

        with console.working(f"k-means: {len(items)} items into {min(k, len(items))} clusters"):
            colors = [f"cluster {c}" for c in kmeans(vectors, min(k, len(items)), seed)[0]]
    names = items.names
    if names_file is not None:
        names = _read_names(names_file, items)
    with notes(), console.working(f"{method} map of {len(items)} items"):
        plot_map(
            vectors, output, method, colors, names, title, seed, max_names, legend_title=None if colors is None else color_by
        )
    click.echo(f"map of {len(items)} {items.side} items ({method}, coloured by {color_by}) written to {output}")


def _read_names(path: Path, items: Any) -> list[str | None]:
    """Names by id from JSON Lines ``{"id", "name"}`` or ``id<TAB>name`` lines; ids not among the items are ignored."""
    from ..retrieval.items import lookup

    positions = {i: n for n, i in enumerate(items.ids)}
    names: list[str | None] = list(items.names) if items.names is not None else [None] * len(items)
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise DataError([Problem(Line(str(path)), None, f"is not UTF-8 text ({e})")]) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError([Problem(Line(str(path), lineno), None, f"not valid JSON ({e})", _NAMES_LINE)]) from None
            key, name = rec.get("id"), rec.get("name")
        elif "\t" in line:
            key, name = line.split("\t", 1)
        else:
            raise DataError([Problem(Line(str(path), lineno), None, f"got {line[:40]!r}", f"{_NAMES_LINE} or id<TAB>name")])
        row = lookup(positions, key)
        if row is not None and name is not None:
            names[row] = str(name)
    return names


main.add_command(index_group)
main.add_command(recommend)
main.add_command(cluster)
main.add_command(plot)
