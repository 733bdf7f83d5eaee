"""Neighbour indexes: exact search agrees with numpy, approximate search keeps recall, folders survive."""

from __future__ import annotations

import json

import numpy as np
import pytest

from object2vec.errors import IndexFormatError, UnknownIdError
from object2vec.retrieval.export import load_embeddings_npy, save_embeddings_npy, save_projector_tsv
from object2vec.retrieval.neighbors import NeighborIndex, recall_at_k
from usecases_data import one_thread  # noqa: F401 - autouse fixture

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """2000 points around 20 centres in 32 dimensions: neighbourhoods worth searching."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    return (centres[rng.integers(0, 20, 2000)] + 0.5 * rng.normal(size=(2000, 32))).astype(np.float32)


@pytest.fixture(scope="module")
def ids() -> list[str]:
    return [f"item-{i}" for i in range(2000)]


def numpy_neighbours(x: np.ndarray, q: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        d = np.linalg.norm(q[:, None, :] - x[None], axis=2)
        order = np.argsort(d, axis=1)[:, :k]
        return order, np.take_along_axis(d, order, axis=1)
    s = q @ x.T
    order = np.argsort(-s, axis=1)[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_exact_search_returns_the_true_nearest_neighbours(vectors, ids, metric):
    index = NeighborIndex.build(vectors, ids, metric=metric)
    queries = vectors[:50] + 0.1
    found, scores = index.search(queries, k=5)
    order, expected = numpy_neighbours(vectors, queries, metric, 5)
    assert found == [[ids[r] for r in row] for row in order]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_l2_scores_are_distances_nearest_first_and_cosine_scores_similarities(vectors, ids):
    l2 = NeighborIndex.build(vectors, ids, metric="l2")
    _, distances = l2.search(vectors[:3], k=4)
    assert np.allclose(distances[:, 0], 0, atol=1e-3)  # each point is at distance 0 from itself
    assert (np.diff(distances, axis=1) >= 0).all()
    _, similarities = NeighborIndex.build(vectors, ids).search(vectors[:3], k=4)
    assert np.allclose(similarities[:, 0], 1, atol=1e-5) and (np.diff(similarities, axis=1) <= 0).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_keep_recall_at_10_above_0_9(vectors, ids, kind):
    exact = NeighborIndex.build(vectors, ids, metric="cosine")
    approx = NeighborIndex.build(vectors, ids, metric="cosine", kind=kind)
    queries = vectors[::10] + 0.05
    assert recall_at_k(approx, exact, queries, k=10) >= 0.9


def test_recall_of_a_poor_index_is_low(vectors, ids):
    exact = NeighborIndex.build(vectors, ids)
    starved = NeighborIndex.build(vectors, ids, kind="ivf", nlist=40, nprobe=1)
    assert recall_at_k(starved, exact, vectors[:200], k=10) < recall_at_k(exact, exact, vectors[:200], k=10) == 1.0


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_saved_index_answers_exactly_as_before(tmp_path, vectors, ids, kind):
    index = NeighborIndex.build(vectors, ids, metric="ip", kind=kind, info={"side": "in1"})
    index.save(tmp_path / "index")
    again = NeighborIndex.load(tmp_path / "index")
    assert again.search(vectors[:20], 10)[0] == index.search(vectors[:20], 10)[0]
    assert (again.metric, again.kind, again.dim, again.meta["info"]) == ("ip", kind, 32, {"side": "in1"})
    np.testing.assert_allclose(again.vector_of("item-7"), vectors[7], atol=1e-6)


def test_integer_and_string_ids_keep_their_type_and_a_typed_string_finds_an_integer(tmp_path):
    x = np.eye(3, dtype=np.float32)
    NeighborIndex.build(x, [5, "five", np.int64(7)]).save(tmp_path / "i")
    index = NeighborIndex.load(tmp_path / "i")
    assert index.ids == [5, "five", 7]
    np.testing.assert_array_equal(index.vector_of("7"), x[2])  # ids typed on a command line are strings


def test_neighbors_of_an_id_leave_the_item_itself_out(vectors, ids):
    index = NeighborIndex.build(vectors, ids)
    found, scores = index.neighbors("item-3", k=5)
    assert "item-3" not in found and len(found) == len(scores) == 5


def test_unknown_id_is_named_in_the_error(vectors, ids):
    index = NeighborIndex.build(vectors, ids)
    with pytest.raises(UnknownIdError, match=r"id 'nope' is not in the index \(2000 ids, e.g. 'item-0'"):
        index.neighbors("nope")


def test_k_larger_than_the_catalogue_is_clipped_with_a_warning():
    index = NeighborIndex.build(np.eye(4, dtype=np.float32), list("abcd"))
    with pytest.warns(UserWarning, match="k=10 is more than the 4 items"):
        found, scores = index.search(np.eye(4, dtype=np.float32)[:1], k=10)
    assert len(found[0]) == 4 and scores.shape == (1, 4)
    with pytest.warns(UserWarning, match="3 other items"):
        assert len(index.neighbors("a", k=10)[0]) == 3


@pytest.mark.parametrize(
    ("vectors", "ids", "message"),
    [
        (np.zeros((2, 3)), ["a", "a"], "'a' appears more than once"),
        (np.zeros((2, 3)), ["a"], "1 ids for 2 vectors"),
        (np.array([[0.0, np.nan]]), ["a"], "row 0 is not finite"),
        (np.zeros(3), ["a"], "expected a 2-D array"),
        (np.zeros((1, 3)), [1.5], "expected strings or integers"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(vectors, ids, message):
    with pytest.raises(ValueError, match=message):
        NeighborIndex.build(vectors, ids)


@pytest.fixture
def saved(tmp_path):
    NeighborIndex.build(np.eye(8, dtype=np.float32), list(range(8)), kind="hnsw").save(tmp_path / "index")
    return tmp_path / "index"


def test_corrupt_index_file_is_a_format_error(saved):
    (saved / "index.faiss").write_bytes(b"this is not a faiss index" * 4)
    with pytest.raises(IndexFormatError, match=r"index.faiss: cannot be read .*rebuild it"):
        NeighborIndex.load(saved)


def test_truncated_index_file_is_a_format_error(saved):
    data = (saved / "index.faiss").read_bytes()
    (saved / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="cannot be read"):
        NeighborIndex.load(saved)


def test_ids_that_do_not_match_the_index_are_a_format_error(saved):
    (saved / "ids.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(IndexFormatError, match=r"holds 8 vectors .* has 3 ids"):
        NeighborIndex.load(saved)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "meta.json").unlink(), "has no meta.json"),
        (lambda f: (f / "meta.json").write_text("{"), "meta.json: is not valid JSON"),
        (lambda f: (f / "meta.json").write_text('{"format": "other"}'), "wrong file format"),
        (lambda f: (f / "meta.json").write_text('{"format": "object2vec-index", "format_version": 99}'), "format_version 99"),
    ],
)
def test_missing_or_foreign_meta_is_a_format_error(saved, damage, message):
    damage(saved)
    with pytest.raises(IndexFormatError, match=message):
        NeighborIndex.load(saved)


def test_a_missing_folder_is_a_format_error(tmp_path):
    with pytest.raises(IndexFormatError, match="no such index folder"):
        NeighborIndex.load(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------
# export


def test_npy_export_round_trips_vectors_and_ids(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    paths = save_embeddings_npy(tmp_path / "emb.npy", x, [0, "b", np.int64(2)])
    assert [p.name for p in paths] == ["emb.npy", "emb.ids.json"]
    vectors, ids = load_embeddings_npy(tmp_path / "emb.npy")
    np.testing.assert_array_equal(vectors, x)
    assert ids == [0, "b", 2]


def test_projector_tsv_has_one_line_per_vector_and_a_header_only_for_several_columns(tmp_path):
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    save_projector_tsv(tmp_path / "one", x, ["a\tb", "c"])
    assert (tmp_path / "one" / "vectors.tsv").read_text() == "0.5\t-1\n2\t0.25\n"
    assert (tmp_path / "one" / "metadata.tsv").read_text() == "a b\nc\n"  # a tab inside a value would add a column
    save_projector_tsv(tmp_path / "two", x, {"id": [1, 2], "genre": ["x", None]})
    assert (tmp_path / "two" / "metadata.tsv").read_text() == "id\tgenre\n1\tx\n2\t\n"
    assert 'metadata_path: "metadata.tsv"' in (tmp_path / "two" / "projector_config.pbtxt").read_text()
    with pytest.raises(ValueError, match="1 values for 2 vectors"):
        save_projector_tsv(tmp_path / "bad", x, {"id": [1]})
