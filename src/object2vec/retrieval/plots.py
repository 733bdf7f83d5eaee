"""2-D maps of embeddings: project with UMAP, t-SNE or PCA, draw a scatter someone can read.

A readable map has a title, a legend of the largest categories (at most ``max_categories`` colours;
smaller categories share one grey "other" entry, because twenty near-identical colours tell nothing
apart), and the names of a sample of points (all of them would cover the map). Figures are drawn
with matplotlib's Agg renderer on a private ``Figure`` (no pyplot state, no display needed) and
written atomically. UMAP and t-SNE need a handful of points; below that the map falls back to PCA.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import DataError
from ..files import atomic_write_bytes

METHODS = ("umap", "tsne", "pca")
FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")
MIN_POINTS_FOR_NEIGHBOURS = 5  # UMAP and t-SNE need a neighbourhood; fewer points get PCA
OTHER_COLOUR = "#b0b0b0"


def project_2d(vectors: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Coordinates ``(n, 2)`` of ``vectors`` ``(n, dim)`` by ``umap``, ``tsne`` or ``pca`` (seeded).

    >>> project_2d(np.eye(3), "pca").shape
    (3, 2)
    """
    if method not in METHODS:
        raise DataError([f"method: {method!r} is not a projection; expected one of {', '.join(METHODS)}"])
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise DataError([f"vectors: shape {x.shape}; expected a non-empty 2-D array (rows, dim)"])
    n = len(x)
    if n == 1:
        return np.zeros((1, 2), np.float32)  # one point: the centre of the map
    if method != "pca" and n < MIN_POINTS_FOR_NEIGHBOURS:
        warnings.warn(f"{method} needs at least {MIN_POINTS_FOR_NEIGHBOURS} points; {n} are drawn by PCA", stacklevel=2)
        method = "pca"
    if method == "umap":
        umap = require("umap", "a UMAP map")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap warns that a fixed seed disables parallelism
            reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed)
            out = reducer.fit_transform(x)
    elif method == "tsne":
        manifold = require("sklearn.manifold", "a t-SNE map")
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
        out = manifold.TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    else:
        decomposition = require("sklearn.decomposition", "a PCA map")
        components = min(2, n, x.shape[1])
        out = decomposition.PCA(n_components=components, random_state=seed).fit_transform(x)
        out = np.pad(out, ((0, 0), (0, 2 - components)))  # a single point or dimension: a flat map
    return np.asarray(out, dtype=np.float32)


def plot_map(
    vectors: np.ndarray,
    path: str | os.PathLike,
    method: str = "umap",
    colors: Sequence[Any] | None = None,
    names: Sequence[str | None] | None = None,
    title: str | None = None,
    seed: int = 0,
    max_names: int = 30,
    *,
    max_categories: int = 10,
    legend_title: str | None = None,
    size: tuple[int, int] = (1200, 900),
    dpi: int = 150,
) -> Path:
    """Draw ``vectors`` as a 2-D scatter and write it to ``path`` (PNG, SVG, PDF or JPEG by suffix).

    Args:
        colors: one category per point (labels or cluster ids); the ``max_categories`` largest get
            their own colour and a legend entry with their count, the rest are grey.
        names: one name (or ``None``) per point; ``max_names`` of the named points, chosen at random
            with ``seed``, are written beside their point.
        title: defaults to "N items (METHOD)".
        size: pixels (width, height) of a raster image.

    Returns:
        ``path``.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in FORMATS:
        raise DataError([f"{path}: .{fmt} is not an image format here; expected one of {', '.join('.' + f for f in FORMATS)}"])
    n = len(vectors)
    for what, values in (("colors", colors), ("names", names)):
        if values is not None and len(values) != n:
            raise DataError([f"{what}: {len(values)} values for {n} points; expected one per point"])
    xy = project_2d(vectors, method, seed)
    require("matplotlib", "a map")
    from matplotlib import patheffects, rc_context
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_subplot()
    point_size = float(np.clip(3000 / max(n, 1), 3, 40))
    if colors is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=point_size, c="#1f77b4", alpha=0.8, linewidths=0)
    else:
        _scatter_by_category(ax, xy, [str(c) for c in colors], point_size, max_categories, legend_title)
    if names is not None:
        named = [i for i, name in enumerate(names) if name]
        rng = np.random.default_rng(seed)
        shown: list[int] = rng.choice(named, size=min(max_names, len(named)), replace=False).tolist() if named else []
        outline = [patheffects.withStroke(linewidth=2.5, foreground="white")]
        for i in shown:
            ax.annotate(_short(str(names[i])), xy[i], xytext=(3, 3), textcoords="offset points", fontsize=7, path_effects=outline)
    label = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}[method]
    ax.set_title(title or f"{n} items ({label})")
    ax.set_xlabel(f"{label} 1")
    ax.set_ylabel(f"{label} 2")
    ax.set_xticks([])
    ax.set_yticks([])  # projected axes have no units worth reading
    fig.tight_layout()
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable and editable
        fig.savefig(buffer, format="jpeg" if fmt == "jpg" else fmt, dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _scatter_by_category(
    ax: Any, xy: np.ndarray, colors: list[str], point_size: float, max_categories: int, legend_title: str | None
) -> None:
    counts = Counter(colors)
    top = [c for c, _ in counts.most_common(max_categories)]
    palette = _palette(len(top))
    rest = np.array([c not in set(top) for c in colors])
    if rest.any():  # drawn first, so the named categories sit on top
        others = len(counts) - len(top)
        ax.scatter(
            *xy[rest].T,
            s=point_size,
            c=OTHER_COLOUR,
            alpha=0.5,
            linewidths=0,
            label=f"other: {others} categories ({int(rest.sum())})",
        )
    for colour, category in zip(palette, top, strict=True):
        mask = np.array([c == category for c in colors])
        ax.scatter(
            *xy[mask].T, s=point_size, color=colour, alpha=0.85, linewidths=0, label=f"{_short(category)} ({int(mask.sum())})"
        )
    handles, labels = ax.get_legend_handles_labels()
    if rest.any():  # the grey entry last
        handles, labels = handles[1:] + handles[:1], labels[1:] + labels[:1]
    ax.legend(
        handles,
        labels,
        title=legend_title,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=8,
        markerscale=max(1.0, 30 / point_size) ** 0.5,
        frameon=False,
    )


def _palette(count: int) -> list[Any]:
    """tab20's strong colours, then its light ones, leaving out its greys (grey means "other")."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [i for i in [*range(0, 20, 2), *range(1, 20, 2)] if i not in (14, 15)]
    return [cmap(order[i % len(order)]) for i in range(count)]


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
