"""The report's charts: the coverage map's topic names never pile on top of each other."""

from __future__ import annotations

import itertools

import numpy as np

from prefaudit.report import charts


def _clusters(centres: np.ndarray, per_cluster: int = 30, spread: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    x, y, cluster = [], [], []
    for k, (cx, cy) in enumerate(centres):
        size = per_cluster + 5 * k  # distinct sizes: the largest cluster is the last one
        x.extend(rng.normal(cx, spread, size))
        y.extend(rng.normal(cy, spread, size))
        cluster.extend([k] * size)
    return np.array(x), np.array(y), np.array(cluster)


def _label_boxes(figure):
    renderer = figure.canvas.get_renderer()
    texts = figure.axes[0].texts
    return texts, [text.get_window_extent(renderer) for text in texts]


def test_topic_names_on_the_map_never_overlap():
    """Forty topics with nearby centres (the AlpacaEval map piled about fifteen names into one
    heap): the names drawn are the largest topics', and no two of their boxes intersect."""
    rng = np.random.default_rng(1)
    centres = rng.uniform(0.0, 1.0, (40, 2)) * [1.0, 0.5]  # crowded: half the height
    x, y, cluster = _clusters(centres)
    names = {k: f"topic {k}, words, more words" for k in range(40)}
    figure = charts.cluster_map(x, y, cluster, names)
    texts, boxes = _label_boxes(figure)
    assert 1 <= len(texts) <= charts.MAP_LABELS
    for (a, first), (b, second) in itertools.combinations(zip(texts, boxes, strict=True), 2):
        assert not first.overlaps(second), (a.get_text(), b.get_text())
    frame = figure.axes[0].get_window_extent(figure.canvas.get_renderer())
    assert all(frame.x0 <= box.x0 and box.x1 <= frame.x1 for box in boxes)
    assert texts[0].get_text().startswith("topic 39,")  # the largest topic is named first


def test_topics_far_apart_are_all_named_up_to_the_limit():
    grid = np.array([(i, j) for i in range(4) for j in range(4)], dtype=float)
    x, y, cluster = _clusters(grid, spread=0.02)
    names = {k: f"t{k}" for k in range(len(grid))}
    texts, _ = _label_boxes(charts.cluster_map(x, y, cluster, names))
    assert len(texts) == min(len(grid), charts.MAP_LABELS)
    few, _ = _label_boxes(charts.cluster_map(x, y, cluster, names, max_labels=3))
    assert [t.get_text() for t in few] == ["t15", "t14", "t13"]


def test_the_map_is_an_svg_image():
    x, y, cluster = _clusters(np.array([[0.0, 0.0], [1.0, 1.0]]))
    chart = charts.scatter_clusters(x, y, cluster, {0: "a", 1: "b"}, alt="map", highlight=[0])
    assert chart.src.startswith("data:image/svg+xml;base64,") and chart.alt == "map"
