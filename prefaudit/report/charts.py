"""Charts for the report: matplotlib figures as static SVG, embedded as ``data:`` images.

An SVG shown through ``<img>`` cannot run script and is not styled by the page, so the
report's Content-Security-Policy needs no exception for the charts (``img-src data:``), and
text from the data that ends up on a chart (cluster names, annotator ids) stays inert.
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# One palette for every chart (matplotlib's colour-blind-safe "tab10" order).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "prefaudit",  # stable element ids: the same audit renders the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
# Topic names drawn on the coverage map at most: beyond a dozen they crowd the map even when
# none overlaps; the section's table names every topic.
MAP_LABELS = 12


@dataclass(frozen=True)
class Chart:
    """An embedded chart: its ``data:`` URI and the alternative text that describes it."""

    src: str
    alt: str


def _figure(width: float = 6.4, height: float = 3.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure, alt: str) -> Chart:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Chart(f"data:image/svg+xml;base64,{data}", alt)


def _styled(draw):
    """Run a chart builder under the report's matplotlib style: artists read it when they are
    made, the SVG writer when the figure is saved (both happen inside the builder)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Chart:
        import matplotlib

        with matplotlib.rc_context(_STYLE):
            return draw(*args, **kwargs)

    return wrapper


@_styled
def histogram(
    edges: Sequence[float],
    counts: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str = "count",
    alt: str,
    marks: Mapping[str, float] | None = None,
    log_x: bool = False,
) -> Chart:
    """Already-binned counts (one series per label) as step outlines over shared ``edges``;
    ``marks`` draws labelled vertical lines (thresholds)."""
    figure = _figure()
    axes = figure.subplots()
    for (label, values), colour in zip(counts.items(), _colours(), strict=False):
        axes.stairs(values, edges, label=label, color=colour, linewidth=1.5)
    for (label, x), colour in zip((marks or {}).items(), _colours(3), strict=False):
        axes.axvline(x, color=colour, linestyle="--", linewidth=1, label=label)
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if len(counts) > 1 or marks:
        axes.legend(frameon=False)
    return _svg(figure, alt)


@_styled
def bars(
    labels: Sequence[str], values: Sequence[float], *, xlabel: str, alt: str, share: bool = False
) -> Chart:
    """Horizontal bars, first label on top; ``share`` formats the axis as percentages."""
    figure = _figure(height=0.6 + 0.28 * max(len(labels), 1))
    axes = figure.subplots()
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions, values, color=COLOURS[0])
    axes.set_yticks(positions, [_short(label) for label in labels])
    axes.set_xlabel(xlabel)
    axes.grid(axis="y", visible=False)
    if share:
        from matplotlib.ticker import PercentFormatter

        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    return _svg(figure, alt)


@_styled
def heatmap(
    matrix: Sequence[Sequence[float | None]],
    labels: Sequence[str],
    *,
    title: str,
    alt: str,
    vmin: float = -1.0,
    vmax: float = 1.0,
) -> Chart:
    """A square matrix with its values written in the cells (missing values left blank)."""
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    size = 1.6 + 0.55 * len(labels)
    figure = _figure(width=size + 1.2, height=size)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="RdYlGn", vmin=vmin, vmax=vmax)
    ticks = np.arange(len(labels))
    names = [_short(label, 16) for label in labels]
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    axes.grid(visible=False)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return _svg(figure, alt)


@_styled
def scatter_clusters(
    x: Sequence[float],
    y: Sequence[float],
    cluster: Sequence[int],
    names: Mapping[int, str],
    *,
    alt: str,
    highlight: Sequence[int] = (),
) -> Chart:
    """Points coloured by cluster, the largest clusters' names at their centres (as many as fit
    without overlapping); ``highlight`` clusters are drawn in red (e.g. the smallest ones)."""
    return _svg(cluster_map(x, y, cluster, names, highlight=highlight), alt)


@_styled
def cluster_map(
    x: Sequence[float],
    y: Sequence[float],
    cluster: Sequence[int],
    names: Mapping[int, str],
    *,
    highlight: Sequence[int] = (),
    max_labels: int = MAP_LABELS,
):
    """The figure :func:`scatter_clusters` draws (a matplotlib ``Figure``, whose label texts
    tests can measure)."""
    from matplotlib import colormaps

    xs, ys, labels = np.asarray(x), np.asarray(y), np.asarray(cluster)
    figure = _figure(width=6.4, height=4.6)
    # Fixed margins instead of the layout engine (the map has no ticks or axis labels): the
    # label boxes are measured before saving, and a layout pass at save time would move them.
    figure.set_layout_engine("none")
    axes = figure.add_axes((0.01, 0.01, 0.98, 0.98))
    palette = colormaps["tab20"]
    for k in np.unique(labels):
        at = labels == k
        colour = "#d62728" if k in highlight else palette(int(k) % 20)
        axes.scatter(xs[at], ys[at], s=6, color=colour, alpha=0.7, linewidths=0)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.grid(visible=False)
    axes.autoscale_view()  # the label boxes below are measured against the final limits
    _label_clusters(axes, xs, ys, labels, names, max_labels)
    return figure


def _label_clusters(axes, xs, ys, labels, names: Mapping[int, str], limit: int) -> None:
    """Each named cluster's name at its median point, largest cluster first, up to ``limit``
    names. A name whose box would overlap one already drawn, or cross the frame, is left out:
    topics that lie close together on the map would otherwise pile their names into an
    unreadable heap (every topic is named in the section's table anyway)."""
    renderer = _renderer(axes.figure)
    frame = axes.get_window_extent(renderer)
    clusters, counts = np.unique(labels, return_counts=True)
    placed: list = []
    for k in clusters[np.lexsort((clusters, -counts))]:
        if len(placed) >= limit:
            break
        if k not in names:
            continue
        at = labels == k
        text = axes.text(
            float(np.median(xs[at])),
            float(np.median(ys[at])),
            _short(names[k], 24),
            fontsize=7,
            ha="center",
            va="center",
            # A light backing keeps the name legible over the points (it fits in _label_box).
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.6, "linewidth": 0},
        )
        box = _label_box(text.get_window_extent(renderer))
        inside = (
            frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        )
        if inside and not any(box.overlaps(other) for other in placed):
            placed.append(box)
        else:
            text.remove()


def _label_box(extent):
    """A label's measured extent with room to spare: the SVG's text is set by the browser,
    whose fallback font may run wider than matplotlib's metrics."""
    from matplotlib.transforms import Bbox

    grow_x, grow_y = 0.08 * extent.width + 2, 0.15 * extent.height + 1
    return Bbox.from_extents(
        extent.x0 - grow_x, extent.y0 - grow_y, extent.x1 + grow_x, extent.y1 + grow_y
    )


def _renderer(figure):
    """A renderer that measures text as the saved figure will lay it out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(figure).get_renderer()


@_styled
def lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    alt: str,
) -> Chart:
    """One line per named (x, y) series, with markers when a series has few points."""
    figure = _figure(height=2.6)
    axes = figure.subplots()
    for (label, (xs, ys)), colour in zip(series.items(), _colours(), strict=False):
        marker = "o" if len(xs) <= 20 else None
        axes.plot(xs, ys, label=label, color=colour, marker=marker, markersize=3)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(frameon=False)
    return _svg(figure, alt)


def _colours(start: int = 0):
    """The palette from ``start``, round and round (never runs out for many series)."""
    return itertools.islice(itertools.cycle(COLOURS), start, None)


def _short(text: str, limit: int = 32) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
