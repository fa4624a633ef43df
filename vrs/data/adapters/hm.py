"""H&M Personalized Fashion Recommendations (the ``hm-fashion-sample`` folder, or the full Kaggle data).

``transactions.csv`` (``t_dat`` YYYY-MM-DD, ``customer_id``, ``article_id``, optional ``price`` and
``sales_channel_id``) becomes ``purchase`` events timestamped at midnight UTC of the day; repeated
rows (several units, or the same article bought again) are all kept unless ``preprocess.dedup`` says
otherwise; price and channel are kept as columns. ``articles.csv`` gives the text: ``prod_name`` is
the title, ``product_type_name`` the category and the description joins ``detail_desc`` with the
descriptive columns (colour, appearance, group, department, section, index, garment group). Photos
are ``images/<first 3 digits>/<article_id>.jpg``; an article without one keeps a null image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vrs.data.adapters.common import (
    SourceTables,
    find_file,
    list_files,
    parse_number,
    read_table,
    require_columns,
    require_filled,
    require_known,
    require_rows,
    require_unique,
    write_prepared,
)
from vrs.data.adapters.output import check_out_dir, source_inputs
from vrs.data.adapters.preprocess import PrepareReport, Preprocess, counts
from vrs.data.schema import DatasetError

# (label, column) pairs appended to detail_desc, in this order; absent columns are skipped.
DESCRIPTIVE = (
    ("Colour", "colour_group_name"),
    ("Appearance", "graphical_appearance_name"),
    ("Group", "product_group_name"),
    ("Department", "department_name"),
    ("Section", "section_name"),
    ("Index", "index_name"),
    ("Garment group", "garment_group_name"),
)
_TRANSACTIONS = "t_dat (YYYY-MM-DD), customer_id and article_id on every line"


def _article_text(table: pd.DataFrame) -> pd.Series:
    desc = table["detail_desc"].fillna("").str.strip() if "detail_desc" in table.columns else None
    parts = [] if desc is None else [desc.where(desc.str.endswith(".") | (desc == ""), desc + ".")]
    for label, column in DESCRIPTIVE:
        if column in table.columns:
            value = table[column].fillna("").str.strip()
            parts.append((label + ": " + value + ".").where(value != "", ""))
    if not parts:
        return pd.Series("", index=table.index, dtype="str")
    text = parts[0]
    for part in parts[1:]:
        text = text + " " + part
    return text.str.replace(r"\s+", " ", regex=True).str.strip()


def _read_articles(in_dir: Path) -> pd.DataFrame:
    path = find_file(in_dir / "articles.csv", f"articles.csv (article_id, prod_name, ...) in {in_dir}")
    table = read_table(path, sep=",")
    require_columns(table, path, ["article_id", "prod_name"])
    require_filled(table, path, ["article_id"], "an article_id on every line")
    require_unique(table, path, "article_id")
    category = table["product_type_name"] if "product_type_name" in table.columns else ""
    items = pd.DataFrame(
        {
            "item_id": table["article_id"].str.strip(),
            "title": table["prod_name"].fillna("").str.strip(),
            "description": _article_text(table),
            "category": pd.Series(category, index=table.index, dtype="str").fillna("").str.strip(),
        }
    )
    photos = list_files(in_dir / "images") if (in_dir / "images").is_dir() else set()
    rel = items["item_id"].str.slice(0, 3) + "/" + items["item_id"] + ".jpg"
    items["image"] = rel.where(rel.isin(photos), None)
    return items.reset_index(drop=True)


def read_hm(in_dir: str | Path) -> SourceTables:
    """Reads transactions, articles and photos into canonical tables.

    Raises:
        DatasetError: a missing file or column, an unparsable date or number, a repeated article id,
            or a transaction of an article not in ``articles.csv`` (file and line named).
    """
    in_dir = Path(in_dir)
    items = _read_articles(in_dir)
    path = find_file(
        in_dir / "transactions.csv", f"transactions.csv (t_dat, customer_id, article_id) in {in_dir}"
    )
    table = read_table(path, sep=",")
    require_columns(table, path, ["t_dat", "customer_id", "article_id"])
    require_rows(table, path, _TRANSACTIONS)
    require_filled(table, path, ["t_dat", "customer_id", "article_id"], _TRANSACTIONS)
    table["article_id"] = table["article_id"].str.strip()
    dates = pd.to_datetime(table["t_dat"], format="%Y-%m-%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{path}: line {table.index[row]}: column 't_dat' value {table['t_dat'].iloc[row]!r} is not a "
            f"date; expected YYYY-MM-DD ({int(bad.sum())} bad line(s) in all)"
        )
    require_known(table, path, "article_id", pd.Index(items["item_id"]), "articles.csv")
    interactions = pd.DataFrame(
        {
            "user_id": table["customer_id"].str.strip().to_numpy(),
            "item_id": table["article_id"].to_numpy(),
            "timestamp": dates.to_numpy().astype("datetime64[s]").astype(np.int64),
            "event": "purchase",
        }
    )
    if "price" in table.columns:
        interactions["price"] = parse_number(
            table, path, "price", "a number or empty", False, True
        ).to_numpy()
    if "sales_channel_id" in table.columns:
        channel = parse_number(table, path, "sales_channel_id", "an integer", integer=True)
        interactions["sales_channel_id"] = channel.to_numpy()
    report = PrepareReport(source="hm", read=counts(interactions, items))
    n = int(items["image"].notna().sum())
    report.notes.append(f"{n:,} of {len(items):,} articles read with a photo; the others have a null image")
    return SourceTables(items, interactions, report, image_root=in_dir / "images")


def convert_hm(
    in_dir: str | Path,
    out_dir: str | Path,
    preprocess: Preprocess | None = None,
    image_mode: str = "copy",
    overwrite: bool = False,
) -> Path:
    """Writes the canonical dataset into ``out_dir`` (idempotent); photos go to ``out_dir/images``.

    Args:
        in_dir: the folder with ``transactions.csv``, ``articles.csv`` and ``images/``.
        out_dir: the dataset folder.
        preprocess: shared preprocessing options (:mod:`vrs.data.adapters.preprocess`).
        image_mode: "copy" or "symlink" the photos.
        overwrite: write into a non-empty ``out_dir`` not prepared from these files
            (see :func:`~vrs.data.adapters.common.check_out_dir`).
    """
    inputs = source_inputs("hm", in_dir)
    check_out_dir(out_dir, inputs, overwrite)  # before a long read
    return write_prepared(
        out_dir, read_hm(in_dir), preprocess, image_mode, name="hm",
        source=f"H&M Personalized Fashion Recommendations ({in_dir})",
        licence="Kaggle competition data: non-commercial / academic research only, no redistribution",
        inputs=inputs, overwrite=overwrite,
    )  # fmt: skip
