"""k-means on embeddings: it recovers planted groups, is repeatable, and its scores mean what they say."""

from __future__ import annotations

import numpy as np
import pytest

from object2vec.errors import DataError
from object2vec.retrieval.clustering import cluster_scores, kmeans
from object2vec.retrieval.items import read_items
from usecases_data import (
    item_records,
    one_thread,  # noqa: F401 - autouse fixture
    trained_model,
)

pytest.importorskip("sklearn")


def blobs(n_per: int = 50, groups: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10, size=(groups, 8))
    labels = np.repeat(np.arange(groups), n_per)
    return (centres[labels] + rng.normal(size=(len(labels), 8))).astype(np.float32), labels


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_kmeans_recovers_well_separated_groups(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    x, labels = blobs()
    assignments, centroids = kmeans(x, 4, seed=0, backend=backend)
    assert centroids.shape == (4, 8) and assignments.shape == (200,)
    assert cluster_scores(x, assignments, labels)["adjusted_rand"] > 0.99


def test_clusters_of_trained_item_embeddings_recover_the_planted_groups():
    model = trained_model()
    items = read_items(item_records(), model)
    vectors = items.vectors(model)
    assignments, _ = kmeans(vectors, 8, seed=0)
    scores = cluster_scores(vectors, assignments, items.labels)
    assert scores["adjusted_rand"] > 0.8 and scores["nmi"] > 0.8 and scores["silhouette"] > 0


def test_the_same_seed_gives_the_same_clusters():
    x, _ = blobs(groups=6, seed=3)
    assert (kmeans(x, 6, seed=1)[0] == kmeans(x, 6, seed=1)[0]).all()


def test_random_clusters_score_near_zero_and_labels_may_be_any_strings():
    x, labels = blobs()
    shuffled = np.random.default_rng(0).permutation(labels)
    scores = cluster_scores(x, shuffled, [f"label {v}" for v in labels])
    assert abs(scores["adjusted_rand"]) < 0.05 and scores["silhouette"] < 0.1


def test_scores_that_need_labels_or_two_clusters_are_none():
    x, _ = blobs()
    assert cluster_scores(x, np.zeros(len(x), dtype=int)) == {"silhouette": None, "adjusted_rand": None, "nmi": None}


@pytest.mark.parametrize("k", [0, 201])
def test_k_outside_one_to_the_number_of_items_is_refused(k):
    x, _ = blobs()
    with pytest.raises(DataError, match=rf"k: {k} clusters for 200 items; expected an integer in \[1, 200\]"):
        kmeans(x, k)
