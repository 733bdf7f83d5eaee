"""k-means on embeddings, and how good the clusters are.

:func:`kmeans` uses faiss (fast, several restarts) when installed and scikit-learn otherwise; both are
seeded, so the same vectors and seed give the same clusters. :func:`cluster_scores` reports the
silhouette (Euclidean, the geometry k-means optimises) and, when the items have known
labels, the adjusted Rand index and normalised mutual information between clusters and labels.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optional import require
from ..errors import DataError

SILHOUETTE_SAMPLE = 5000  # the silhouette costs O(n^2); beyond this many points it is estimated on a sample


def kmeans(
    vectors: np.ndarray, k: int, seed: int = 0, *, restarts: int = 5, iterations: int = 50, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``vectors`` ``(n, dim)`` into ``k`` groups: ``(assignments (n,) int64, centroids (k, dim))``.

    ``restarts`` runs keep the one with the lowest inertia. ``backend`` is ``faiss``, ``sklearn``
    or ``auto`` (faiss if installed).

    Raises:
        DataError: ``k`` below 1 or above the number of vectors.

    >>> x = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1]], dtype=np.float32)
    >>> assignments, centroids = kmeans(x, 2, backend="sklearn")
    >>> len(set(assignments[:2])), len(set(assignments[2:])), bool(assignments[0] != assignments[2])
    (1, 1, True)
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise DataError([f"vectors: shape {x.shape}; expected a non-empty 2-D array (rows, dim)"])
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(x):
        raise DataError([f"k: {k!r} clusters for {len(x)} items; expected an integer in [1, {len(x)}]"])
    if backend == "auto":
        backend = "faiss" if importlib.util.find_spec("faiss") else "sklearn"
    if backend == "faiss":
        faiss = require("faiss", "k-means with backend='faiss'")
        km = faiss.Kmeans(x.shape[1], int(k), niter=iterations, nredo=restarts, seed=seed, min_points_per_centroid=1)
        km.max_points_per_centroid = max(256, len(x))  # cluster every point, no subsampling
        km.train(x)
        _, assignments = km.index.search(x, 1)
        return assignments[:, 0].astype(np.int64), np.asarray(km.centroids, dtype=np.float32)
    if backend != "sklearn":
        raise DataError([f"backend: {backend!r} is not a k-means backend; expected auto, faiss or sklearn"])
    cluster = require("sklearn.cluster", "k-means")
    km = cluster.KMeans(n_clusters=int(k), n_init=restarts, max_iter=max(iterations, 100), random_state=seed).fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def cluster_scores(
    vectors: np.ndarray, assignments: Sequence[int] | np.ndarray, labels: Sequence[Any] | None = None, seed: int = 0
) -> dict[str, float | None]:
    """``{"silhouette", "adjusted_rand", "nmi"}``; a score that is undefined or needs labels is ``None``.

    The silhouette needs 2 to n-1 clusters; with more than 5000 items it is estimated on a sample
    of 5000. Labels can be any strings or numbers.

    >>> x = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1]])
    >>> scores = cluster_scores(x, [0, 0, 1, 1], labels=["a", "a", "b", "b"])
    >>> round(scores["silhouette"], 2), scores["adjusted_rand"], scores["nmi"]
    (0.99, 1.0, 1.0)
    """
    metrics = require("sklearn.metrics", "cluster scores")
    x = np.asarray(vectors, dtype=np.float64)
    a = np.asarray(assignments)
    if len(a) != len(x):
        raise DataError([f"assignments: {len(a)} for {len(x)} vectors; expected one per vector"])
    out: dict[str, float | None] = {"silhouette": None, "adjusted_rand": None, "nmi": None}
    if 2 <= len(np.unique(a)) <= len(x) - 1:
        sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
        out["silhouette"] = float(metrics.silhouette_score(x, a, sample_size=sample, random_state=seed))
    if labels is not None:
        truth = [str(v) for v in labels]  # one type, so 1 and "1" are the same category
        if len(truth) != len(a):
            raise DataError([f"labels: {len(truth)} for {len(a)} items; expected one per item"])
        out["adjusted_rand"] = float(metrics.adjusted_rand_score(truth, a))
        out["nmi"] = float(metrics.normalized_mutual_info_score(truth, a))
    return out
