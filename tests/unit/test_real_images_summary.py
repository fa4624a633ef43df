"""experiments/real_images/summarize.py: one table row per content-profile family, its best validation run."""

from __future__ import annotations

from tests.scripts import load_script


def test_each_profile_family_keeps_its_best_validation_run() -> None:
    summarize = load_script("experiments/real_images/summarize.py", "real_images_summarize")
    runs = [
        ("hm", "content_profile_w1", 0.035), ("hm", "content_profile_w2", 0.034),
        ("hm", "content_profile_white0.1_w2", 0.041), ("hm", "content_profile_white0.01_w2", 0.0425),
        ("hm", "content_profile_white0.01_w3", 0.041), ("ml100k", "content_profile_white0.01_w2", 0.03),
        ("hm", "content_profile_text_w1", 0.0355), ("hm", "concat_cm", 0.0353), ("hm", "concat_cm", 0.0349),
    ]  # fmt: skip
    found = [{"dataset": d, "arm": a, "val_ndcg_10": v} for d, a, v in runs]
    kept = {(r["dataset"], r["arm"], r["val_ndcg_10"]) for r in summarize._best_windows(found)}
    assert kept == {
        ("hm", "content_profile_w1", 0.035),
        ("hm", "content_profile_white0.01_w2", 0.0425),
        ("ml100k", "content_profile_white0.01_w2", 0.03),
        ("hm", "content_profile_text_w1", 0.0355),
        ("hm", "concat_cm", 0.0353),
        ("hm", "concat_cm", 0.0349),  # trained arms keep every seed
    }
