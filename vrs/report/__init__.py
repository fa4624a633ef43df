"""The HTML report of a trained run: metrics beside baselines, metric-vs-K curves, an item map, user cards."""

from vrs.report.build import ReportSettings, build_report
from vrs.report.evaluation import UserCard, metrics_at_k, pick_users, rank_targets, user_cards
from vrs.report.plots import line_chart_svg, pca_2d, scatter_png

__all__ = [
    "ReportSettings",
    "UserCard",
    "build_report",
    "line_chart_svg",
    "metrics_at_k",
    "pca_2d",
    "pick_users",
    "rank_targets",
    "scatter_png",
    "user_cards",
]
