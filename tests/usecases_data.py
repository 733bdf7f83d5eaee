"""Toy data with planted groups for the use-case tests, and one small model trained on it per session.

8 groups of in0 users and in1 items, one token per side (vocabulary 90: tokens ``10*g .. 10*g+9`` of
group ``g`` and a shared band 80..89 that no pair uses). A user of group ``g`` likes exactly the
items of one matched group, so a good ranker puts those 10 items first, and the item embeddings
form 8 clusters.
"""

from __future__ import annotations

import functools

import pytest
import torch

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs

VOCAB, GROUPS, BAND = 90, 8, 10
HYPERPARAMETERS = {
    "enc0_max_seq_len": 1,
    "enc0_vocab_size": VOCAB,
    "enc0_network": "pooled_embedding",
    "enc_dim": 16,
    "mlp_dim": 16,
    "mlp_layers": 1,
    "epochs": 8,
    "mini_batch_size": 32,
    "learning_rate": 0.02,
}


def pairs(n: int, seed: int) -> list[dict]:
    return make_pairs(n, vocab_size=(VOCAB, VOCAB), groups=GROUPS, max_len=(1, 1), noise=0.0, seed=seed)


def item_records() -> list[dict]:
    """The 80 grouped in1 items, labelled with their group and named."""
    return [{"in1": [t], "label": f"group {t // BAND}", "name": f"item {t}"} for t in range(GROUPS * BAND)]


@functools.cache
def trained_model() -> Object2Vec:
    """Trained once per test session (about a second); treat it as read-only."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small gains nothing from threads, and on a busy machine they spin (10x slower)
    try:
        return Object2Vec(seed=0, device="cpu", **HYPERPARAMETERS).fit(pairs(2000, seed=1))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """faiss, scikit-learn and torch on one thread: on a shared 2-core machine their OpenMP threads spin
    against each other (t-SNE on 120 points took 50 s instead of 1 s); import this into a test module."""
    import importlib.util

    from threadpoolctl import threadpool_limits

    for name in ("faiss", "sklearn.cluster", "sklearn.manifold"):  # limits reach only the thread pools already loaded
        if importlib.util.find_spec(name.split(".")[0]):
            importlib.import_module(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)
