"""2-D maps: an image of the requested size, readable (title, legend, names), written atomically."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from object2vec.errors import DataError
from object2vec.retrieval.plots import _palette, plot_map, project_2d
from usecases_data import one_thread  # noqa: F401 - autouse fixture

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 14, 300)  # 14 categories: 10 coloured, 4 grey
    return (rng.normal(size=(14, 16))[labels] * 4 + rng.normal(size=(300, 16))).astype(np.float32), [f"genre {v}" for v in labels]


def test_pca_map_is_a_png_of_the_requested_size(tmp_path, points):
    x, labels = points
    out = plot_map(
        x, tmp_path / "map.png", method="pca", colors=labels, names=[f"item {i}" for i in range(300)], size=(800, 600), dpi=100
    )
    assert out == tmp_path / "map.png" and png_size(out) == (800, 600)
    assert out.stat().st_size > 10_000  # points, legend and names, not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_map_carries_the_title_legend_and_names_of_a_sample_of_points(tmp_path, points):
    x, labels = points
    names = [f"item {i}" for i in range(300)]
    texts = {}
    for shown in (0, 5):
        path = tmp_path / f"map{shown}.svg"
        plot_map(x, path, method="pca", colors=labels, names=names, title="Genres", max_names=shown)
        svg = path.read_text()
        texts[shown] = svg.count('<g id="text_')  # one group per text artist (names are drawn outlined, as paths)
    assert "Genres" in svg
    assert "other: 4 categories" in svg  # the 10 largest get colours, the rest one grey entry
    assert "genre 0" in svg
    assert texts[5] - texts[0] == 5


def test_tsne_projection_gives_finite_coordinates_for_every_point(points):
    x, _ = points
    xy = project_2d(x[:120], "tsne")
    assert xy.shape == (120, 2) and np.isfinite(xy).all()


def test_too_few_points_for_umap_fall_back_to_pca(tmp_path):
    with pytest.warns(UserWarning, match="umap needs at least 5 points; 3 are drawn by PCA"):
        plot_map(np.eye(3, 4), tmp_path / "tiny.png", method="umap")
    assert png_size(tmp_path / "tiny.png") == (1200, 900)


def test_a_single_point_still_draws(tmp_path):
    plot_map(np.ones((1, 4)), tmp_path / "one.png", method="pca", colors=["a"], names=["only"])
    assert (tmp_path / "one.png").stat().st_size > 0


def test_the_palette_leaves_grey_for_other():
    greys = [c for c in _palette(18) if c[0] == c[1] == c[2]]
    assert not greys


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "map.bmp"}, r"\.bmp is not an image format"),
        ({"colors": ["a"]}, "colors: 1 values for 3 points"),
        ({"method": "mds"}, "method: 'mds' is not a projection"),
    ],
)
def test_bad_requests_are_refused_before_drawing(tmp_path, kwargs, message):
    args = {"path": "map.png", "method": "pca", **kwargs}
    args["path"] = tmp_path / args["path"]
    with pytest.raises(DataError, match=message):
        plot_map(np.eye(3), **args)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_umap_map(tmp_path, points):
    x, labels = points
    plot_map(x, tmp_path / "umap.png", colors=labels)
    assert png_size(tmp_path / "umap.png") == (1200, 900)
