"""Plots without a plotting library: a 2-D item map as PNG (PIL) and metric curves as inline SVG."""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image, ImageDraw
from torch import Tensor

# Tableau 10: distinct hues that stay distinct for most colour-blind readers.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]  # fmt: skip
OTHER = "#cfcfcf"
# The charts' own styles: the report's page carries them once, a chart saved alone (`standalone`) inline.
CHART_CSS = """svg.chart{font-size:11px;fill:#333;background:#fff} svg .chart-title{font-size:13px;font-weight:bold}
svg .axis{stroke:#666} svg .grid{stroke:#eee}
"""


def standalone(svg: str) -> str:
    """A chart of `line_chart_svg` with its styles inside, for a file of its own."""
    head, end, rest = svg.partition(">")
    return f"{head}{end}\n<style>{CHART_CSS}</style>{rest}"


def pca_2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """The first two principal components of (N, D) rows.

    Exact SVD (not `torch.pca_lowrank`, which is randomised) with each axis's sign fixed so that
    the largest loading is positive: the same vectors always give the same picture.

    Returns:
        points (N, 2) and the share of the variance each axis explains (2,).
    """
    x = x.detach().double().cpu()
    x = x - x.mean(0, keepdim=True)  # (N, D)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # s (R,), vh (R, D)
    axes = vh[:2]  # (2, D)
    sign = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))  # (2, 1)
    axes = axes * torch.where(sign == 0, 1.0, sign)
    points = x @ axes.T  # (N, 2)
    if points.shape[1] < 2:  # D == 1: a flat second axis
        points = torch.cat([points, torch.zeros(len(points), 2 - points.shape[1], dtype=points.dtype)], 1)
    var = s**2
    share = var[:2] / var.sum().clamp_min(1e-12)
    return points.float(), torch.cat([share, torch.zeros(2 - len(share), dtype=share.dtype)]).float()


def scatter_png(
    points: Tensor, colours: Sequence[str], hollow: Tensor | None = None, size: int = 560, radius: float = 3.0
) -> bytes:
    """A square scatter plot of (N, 2) points as PNG bytes.

    Drawn at twice the size and downsampled, which anti-aliases the dots.

    Args:
        points: (N, 2) coordinates (any scale: they are fitted into the frame).
        colours: one CSS hex colour per point.
        hollow: (N,) bool, points drawn as rings instead of dots.
        size: side of the image in pixels.
        radius: dot radius in pixels.
    """
    scale = 2
    side, pad, r = size * scale, 12 * scale, radius * scale
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, side - 1, side - 1], outline="#999999", width=scale)
    if len(points):
        lo, hi = points.min(0).values, points.max(0).values  # (2,), (2,)
        span = float((hi - lo).max().clamp_min(1e-9))
        centre = (lo + hi) / 2
        xy = ((points - centre) / span * (side - 2 * pad) + side / 2).tolist()  # (N, 2), aspect kept
        rings = hollow.tolist() if hollow is not None else [False] * len(xy)
        # Rings first, so that the (usually more numerous) trained items stay visible on top.
        for want_ring in (True, False):
            for (x, y), colour, ring in zip(xy, colours, rings, strict=True):
                if ring != want_ring:
                    continue
                box = [x - r, side - y - r, x + r, side - y + r]  # y grows upwards
                if ring:
                    draw.ellipse(box, outline=colour, width=scale)
                else:
                    draw.ellipse(box, fill=colour)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@dataclass
class Series:
    """One line (or, with `line=False`, a set of markers) of a chart: (x, y) points."""

    name: str
    points: list[tuple[float, float]]
    colour: str
    dashed: bool = False
    line: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def line_chart_svg(
    series: Sequence[Series],
    title: str,
    x_label: str = "K",
    width: int = 420,
    height: int = 280,
    log_x: bool = True,
    legend: bool = False,
) -> str:
    """A line chart with a log-scaled x axis (cut-offs K span 1..50; `log_x=False`: linear, e.g.
    epochs) as an inline <svg> element; `legend` names the series under the chart.

    Each point carries a <title>, so hovering shows its exact value.
    """
    xs = sorted({x for s in series for x, _ in s.points})
    ys = [y for s in series for _, y in s.points]
    if not xs:
        return ""
    left, right, top, bottom = 48, 12, 28, 36
    rows = math.ceil(len(series) / 3) if legend else 0
    height += 16 * rows
    bottom += 16 * rows
    scale = math.log if log_x else float
    x_lo, x_hi = scale(xs[0]), scale(xs[-1])
    step = _nice_step(max(ys) if ys else 0.0)
    n_ticks = max(1, math.ceil((max(ys) if ys else 0.0) / step - 1e-9))
    y_hi = step * n_ticks

    def px(x: float) -> float:
        frac = 0.5 if x_hi == x_lo else (scale(x) - x_lo) / (x_hi - x_lo)
        return left + frac * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - y / y_hi * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="chart-title">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>',
    ]
    # A linear axis labels about 8 round values; a log one (few cut-offs) labels each.
    labels = xs if log_x else [x for x in xs if x % _nice_step(xs[-1], 8) == 0] or xs
    for x in labels:
        out.append(f'<text x="{px(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">{x:g}</text>')
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - bottom + 32}" text-anchor="middle">{x_label}</text>'
    )
    for i, s in enumerate(series if legend else []):
        x, y = left + (i % 3) * (width - left) / 3, height - 16 * (rows - i // 3) + 8
        out.append(f'<rect x="{x:.1f}" y="{y - 8:.1f}" width="10" height="10" fill="{s.colour}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{y + 1:.1f}">{html.escape(s.name)}</text>')
    for i in range(n_ticks + 1):
        y = step * i
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{width - right}" y2="{py(y):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for s in series:
        pts = sorted(s.points)
        if s.line and len(pts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        for x, y in pts:
            shape = (
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{s.colour}">'
                if s.line
                else f'<rect x="{px(x) - 4:.1f}" y="{py(y) - 4:.1f}" width="8" height="8" fill="{s.colour}">'
            )
            tag = "circle" if s.line else "rect"
            out.append(f"{shape}<title>{html.escape(s.name)} @ {x:g}: {y:.4f}</title></{tag}>")
    out.append("</svg>")
    return "\n".join(out)


def _nice_step(top: float, ticks: int = 4) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` steps up to `top`."""
    if top <= 0:
        return 0.25
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
