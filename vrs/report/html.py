"""HTML pieces of the report: inlined thumbnails, the metrics table, user cards, the page."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

import pandas as pd
from PIL import Image, ImageOps

from vrs.data.images import BAD_IMAGE_ERRORS
from vrs.report.evaluation import UserCard
from vrs.report.plots import CHART_CSS

STAGE_ORDER = ("test", "test_cold", "val")
METRIC_ORDER = (
    "recall", "ndcg", "mrr", "precision", "hit_rate", "map", "coverage", "gini", "novelty", "arp",
    "ild_category", "ild_visual", "n_users", "seen_target_share",
)  # fmt: skip
COUNTS = ("n_users",)  # printed as integers, never "best"
NEUTRAL = ("n_users", "seen_target_share", "arp")  # no better direction: not bolded
LOWER_IS_BETTER = ("gini",)  # exposure concentrated on few items


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class Thumbnails:
    """Item images as base64 data URIs, shrunk to fit `size` pixels, each made once.

    Inlined images keep the report one self-contained file that still shows its pictures when it is
    moved or mailed. Each thumbnail is stored as PNG or JPEG, whichever is smaller (flat synthetic
    drawings compress best as PNG, photographs as JPEG).

    Args:
        root: the dataset folder that relative image paths start from.
        images: per item (catalogue order), its image path, or None / NaN when it has none.
        size: longest side of a thumbnail in pixels.
    """

    def __init__(self, root: Path, images: Sequence[object], size: int = 96) -> None:
        self.root = Path(root)
        self.images = list(images)
        self.size = size
        self._cache: dict[int, str | None] = {}

    def uri(self, item: int) -> str | None:
        """The item's thumbnail as a data URI; None when it has no image or it cannot be read."""
        if item not in self._cache:
            self._cache[item] = self._make(self.images[item])
        return self._cache[item]

    def _make(self, path: object) -> str | None:
        if not isinstance(path, str) or not path:
            return None
        try:
            with Image.open(self.root / path) as img:
                img = ImageOps.exif_transpose(img)
                rgba = img.convert("RGBA")
        except BAD_IMAGE_ERRORS:
            # A missing, broken or oversized file shows as a placeholder, not a broken <img>;
            # load_item_content has already warned about it (or refused it) by name.
            return None
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        flat.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        encoded = []
        for fmt, mime, opts in (
            ("PNG", "image/png", {"optimize": True}),
            ("JPEG", "image/jpeg", {"quality": 85}),
        ):
            buf = io.BytesIO()
            flat.save(buf, format=fmt, **opts)
            encoded.append((len(buf.getvalue()), mime, buf.getvalue()))
        _, mime, data = min(encoded, key=lambda e: e[0])
        return data_uri(data, mime)


def _key_order(key: str) -> tuple:
    stage, _, name = key.partition("/")
    base, _, k = name.rpartition("_")
    if not k.isdigit():
        base, k = name, ""
    stage_pos = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
    metric_pos = METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER)
    return stage_pos, stage, metric_pos, base, int(k) if k else 0


def metrics_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """One row per metric key, one column per run; the best value of each row in bold."""
    keys = sorted({k for m in columns.values() for k in m}, key=_key_order)
    if not keys:
        return "<p>No metrics.json found for this run or its baselines.</p>"
    head = "".join(f"<th>{escape(name)}</th>" for name in columns)
    rows = []
    for key in keys:
        values = [m.get(key) for m in columns.values()]
        known = [v for v in values if v is not None]
        base = _key_order(key)[3]
        pick = min if base in LOWER_IS_BETTER else max
        best = pick(known) if known and base not in NEUTRAL and len(columns) > 1 else None
        cells = []
        for v in values:
            if v is None:
                cells.append('<td class="na">–</td>')
                continue
            text = f"{v:.0f}" if key.rpartition("/")[2] in COUNTS else f"{v:.4f}"
            cells.append(f'<td class="best">{text}</td>' if v == best else f"<td>{text}</td>")
        rows.append(f"<tr><th>{escape(key)}</th>{''.join(cells)}</tr>")
    return _table(f"<th>metric</th>{head}", rows)


def curve_table(curves: Mapping[str, Mapping[str, float]], ks: Sequence[int]) -> str:
    """Recall/NDCG/MRR at every K for each evaluated stage (the numbers behind the charts)."""
    head = "".join(f"<th>K={k}</th>" for k in ks)
    rows = []
    for stage, values in curves.items():
        for metric in ("recall", "ndcg", "mrr"):
            cells = "".join(f"<td>{values.get(f'{metric}_{k}', float('nan')):.4f}</td>" for k in ks)
            rows.append(f"<tr><th>{escape(stage)}/{metric}</th>{cells}</tr>")
    return _table(f"<th></th>{head}", rows)


def _table(head: str, rows: Sequence[str]) -> str:
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _thumb(thumbs: Thumbnails, items: pd.DataFrame, item: int, css: str = "", small: bool = False) -> str:
    title = f"{items['item_id'].iat[item]}: {items['title'].iat[item]}"
    uri = thumbs.uri(item)
    cls = "thumb small" if small else "thumb"
    if uri is None:
        return f'<div class="{cls} noimg {css}" title="{escape(title)}">no image</div>'
    side = thumbs.size // 3 if small else thumbs.size
    return (
        f'<img class="{cls} {css}" src="{uri}" alt="{escape(title)}" title="{escape(title)}" '
        f'width="{side}" height="{side}">'
    )


def user_card(card: UserCard, items: pd.DataFrame, thumbs: Thumbnails, n_history: int) -> str:
    """A user's recent history and held-out item, then the top-K with scores and explanations."""
    shown = list(zip(card.history, card.events, strict=True))[-n_history:]
    history = "".join(
        f"<figure>{_thumb(thumbs, items, i)}<figcaption>{escape(ev)}<br>"
        f'<span class="title">{escape(str(items["title"].iat[i]))}</span></figcaption></figure>'
        for i, ev in shown
    )
    target = (
        f'<figure class="target">{_thumb(thumbs, items, card.target, "target")}'
        f'<figcaption><b>held out (test)</b><br><span class="title">'
        f"{escape(str(items['title'].iat[card.target]))}</span></figcaption></figure>"
    )
    recs = []
    for rank, (item, score, because, weights) in enumerate(
        zip(card.items, card.scores, card.because, card.because_weights, strict=True), start=1
    ):
        hit = item == card.target
        why = "".join(
            f'<span class="why">{_thumb(thumbs, items, b, small=True)}<span>{w:.2f}</span></span>'
            for b, w in zip(because, weights, strict=True)
        )
        recs.append(
            f'<figure class="{"rec hit" if hit else "rec"}">'
            f'<div class="rank">#{rank}{" ✓ hit" if hit else ""}</div>{_thumb(thumbs, items, item)}'
            f'<figcaption>score {score:.3f}<br><span class="title">{escape(str(items["title"].iat[item]))}'
            f'</span></figcaption><div class="because" title="history items closest to this one (cosine)">'
            f'<span class="label-because">because</span>{why}</div></figure>'
        )
    if card.hit:
        verdict = f'<span class="badge hit">hit: held-out item at rank {card.target_rank + 1}</span>'
    elif card.target_rank >= len(items):
        verdict = '<span class="badge miss">miss: held-out item was already seen</span>'
    else:
        verdict = f'<span class="badge miss">miss: held-out item at rank {card.target_rank + 1}</span>'
    return (
        f'<section class="card" data-user="{escape(card.user_id)}">'
        f"<h3>user {escape(card.user_id)} {verdict}</h3>"
        f'<div class="label">history: last {len(shown)} of {len(card.history)} events the model read, '
        f'oldest first, then the held-out item</div><div class="strip">{history}{target}</div>'
        f'<div class="label">top {len(card.items)} recommendations</div>'
        f'<div class="strip">{"".join(recs)}</div>'
        "</section>"
    )


def legend(entries: Sequence[tuple[str, str, str]], hollow_label: str | None = None) -> str:
    """Swatches with labels: (label, colour, shape) where shape is "" (dot), "dash" or "square";
    `hollow_label` adds a ring entry for hollow points."""
    parts = []
    for name, c, shape in entries:
        fill = f"repeating-linear-gradient(90deg,{c} 0 5px,transparent 5px 8px)" if shape == "dash" else c
        parts.append(
            f'<span class="key"><i class="{shape}" style="background:{fill}"></i>{escape(name)}</span>'
        )
    if hollow_label:
        parts.append(f'<span class="key"><i class="ring"></i>{escape(hollow_label)}</span>')
    return f'<div class="legend">{"".join(parts)}</div>'


def page(title: str, facts: Mapping[str, str], sections: Sequence[tuple[str, str]]) -> str:
    """The whole document: a header with `facts`, then (heading, inner HTML) sections."""
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts.items())
    body = "".join(f'<section class="part"><h2>{escape(h)}</h2>{inner}</section>' for h, inner in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style></head>
<body><h1>{escape(title)}</h1><table class="facts">{fact_rows}</table>{body}</body></html>
"""


CSS = (
    """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1500px;
 padding:0 16px;color:#222}
h1{font-size:22px;margin-bottom:6px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:0 0 6px}
table.facts{font-size:13px;color:#555;border-collapse:collapse}
table.facts th{text-align:left;padding-right:12px}
table.metrics{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
table.metrics th,table.metrics td{border:1px solid #ddd;padding:3px 10px;text-align:right}
table.metrics thead th{background:#f3f3f3} table.metrics tbody th{text-align:left;font-weight:normal}
td.best{font-weight:bold} td.na{color:#aaa}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.legend{font-size:13px;margin:6px 0} .legend .key{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;border-radius:6px;margin-right:4px;vertical-align:-1px}
.legend i.dash{height:3px;border-radius:0;width:18px;vertical-align:3px}
.legend i.square{border-radius:0;width:9px;height:9px}
.legend i.ring{border:2px solid #888;width:8px;height:8px;background:none}
.map img{border:1px solid #ddd}
.card{border:1px solid #ddd;border-radius:6px;padding:10px;margin:14px 0;background:#fcfcfc}
.badge{font-size:12px;font-weight:normal;border-radius:10px;padding:2px 8px;margin-left:8px}
.badge.hit{background:#d9f2d9;color:#185c18} .badge.miss{background:#f4e3e3;color:#7a2020}
.label{font-size:12px;color:#666;margin:6px 0 2px}
.strip{display:flex;gap:8px;overflow-x:auto;padding-bottom:4px;align-items:flex-start}
figure{margin:0;width:112px;flex:none;font-size:11px;text-align:center}
figcaption{margin-top:2px;line-height:1.25} .title{color:#555}
.thumb{display:block;margin:0 auto;border:2px solid transparent;border-radius:4px;background:#fff}
.thumb.small{display:inline-block;border-width:1px;border-color:#ddd}
.noimg{width:92px;height:92px;display:flex;align-items:center;justify-content:center;color:#999;
 background:#eee;font-size:11px}
.noimg.small{width:30px;height:30px;font-size:8px}
figure.target .thumb{border:2px dashed #2a7ab0}
figure.rec.hit{background:#e3f6e3;border-radius:6px;outline:3px solid #2e9e2e}
.rank{font-weight:bold;font-size:12px} figure.rec.hit .rank{color:#1d7a1d}
.because{font-size:10px;color:#777;margin-top:3px;display:flex;flex-wrap:wrap;justify-content:center;gap:3px}
.label-because{flex-basis:100%}
.why{display:inline-flex;flex-direction:column;align-items:center}
"""
    + CHART_CSS
)
