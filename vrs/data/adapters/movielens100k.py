"""MovieLens-100K ratings with movie posters (the ``movielens-100k-posters`` folder).

``ml-100k/u.data`` holds "user_id TAB item_id TAB rating TAB timestamp" (unix seconds) and becomes
``rating`` events with the rating kept as an int column; ``ml-100k/u.item`` holds
"item_id|title|release date|video release date|IMDb URL|19 genre flags" (latin-1). The title keeps
its year ("Toy Story (1995)"), the genres become the category ("Animation, Children's, Comedy") and
the release date the description. The poster map CSV (``ml100k_item_id``, ``has_poster``,
``poster_file`` relative to the folder, ``poster_is_placeholder``) gives the images; items without a
poster, and the few placeholder title cards, keep a null image.
"""

from __future__ import annotations

import csv
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

POSTER_MAP = "ml100k_to_ml1m_poster_map.csv"
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_DATA = "4 tab-separated fields: user_id item_id rating timestamp, integers"


def _genres(ml: Path) -> list[str]:
    path = ml / "u.genre"
    if not path.is_file():
        return list(GENRES)
    table = read_table(path, sep="|", names=["genre", "index"], encoding="latin-1", quoting=csv.QUOTE_NONE)
    require_filled(table, path, ["genre", "index"], "'genre|index' lines")
    index = parse_number(table, path, "index", "'genre|index' with an integer index", integer=True)
    return list(table["genre"].to_numpy()[np.argsort(index.to_numpy(), kind="stable")])


def _read_items(ml: Path) -> pd.DataFrame:
    path = find_file(ml / "u.item", "u.item (item_id|title|release date|video release|URL|genre flags)")
    genres = _genres(ml)
    names = ["item_id", "title", "release", "video_release", "url", *genres]
    table = read_table(path, sep="|", names=names, encoding="latin-1", quoting=csv.QUOTE_NONE)
    expected = f"{len(names)} '|'-separated fields with 0/1 genre flags"
    require_filled(table, path, ["item_id", *genres], expected)
    parse_number(table, path, "item_id", "an integer item id", integer=True)
    require_unique(table, path, "item_id")
    category = pd.Series("", index=table.index, dtype="str")
    for genre in genres:  # 19 columns, not rows
        flag = parse_number(table, path, genre, expected, integer=True)
        bad = ~flag.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{path}: line {table.index[row]}: genre flag '{genre}' is {flag.iloc[row]}; expected 0 or 1"
            )
        if genre != "unknown":
            category = category.where(flag == 0, category + ", " + genre)
    release = table["release"].fillna("")
    return pd.DataFrame(
        {
            "item_id": table["item_id"],
            "title": table["title"].fillna("").str.strip(),
            "description": ("Released " + release + ".").where(release != "", ""),
            "category": category.str.removeprefix(", "),
        }
    ).reset_index(drop=True)


def _read_posters(
    in_dir: Path, map_name: str, items: pd.DataFrame, keep_placeholders: bool
) -> tuple[pd.Series, list[str]]:
    path = find_file(in_dir / map_name, f"the poster map CSV in {in_dir} (or poster_map=null for no images)")
    table = read_table(path, sep=",")
    require_columns(table, path, ["ml100k_item_id", "has_poster", "poster_file"])
    require_filled(table, path, ["ml100k_item_id", "has_poster"], "an item id and has_poster True/False")
    require_known(table, path, "ml100k_item_id", pd.Index(items["item_id"]), "u.item")
    has = table["has_poster"].str.strip().str.lower()
    bad = ~has.isin(["true", "false"]).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{path}: line {table.index[row]}: has_poster is {table['has_poster'].iloc[row]!r}; expected True or False"
        )
    with_poster = table[(has == "true").to_numpy()]
    require_filled(with_poster, path, ["poster_file"], "a poster file path when has_poster is True")
    files = list_files(in_dir)
    missing = ~with_poster["poster_file"].isin(files).to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DatasetError(
            f"{path}: line {with_poster.index[row]}: poster_file {with_poster['poster_file'].iloc[row]!r} "
            f"not found under {in_dir} ({int(missing.sum())} missing); expected a path relative to the folder"
        )
    notes = []
    if "poster_is_placeholder" in with_poster.columns and not keep_placeholders:
        placeholder = with_poster["poster_is_placeholder"].fillna("").str.strip().str.lower() == "true"
        if placeholder.any():
            notes.append(
                f"{int(placeholder.sum())} placeholder poster(s) left out (keep_placeholder_posters=true keeps them)"
            )
            with_poster = with_poster[~placeholder.to_numpy()]
    posters = with_poster.drop_duplicates("ml100k_item_id").set_index("ml100k_item_id")["poster_file"]
    return items["item_id"].map(posters), notes


def read_movielens100k(
    in_dir: str | Path, poster_map: str | None = POSTER_MAP, keep_placeholder_posters: bool = False
) -> SourceTables:
    """Reads ratings, movies and posters into canonical tables.

    Args:
        in_dir: the folder holding ``ml-100k/`` and the poster map, or the ``ml-100k`` folder itself
            (then pass ``poster_map=None``).
        poster_map: the poster map CSV, relative to ``in_dir``; None gives every item a null image.
        keep_placeholder_posters: keep the posters flagged as placeholder title cards.

    Raises:
        DatasetError: a missing file or column, a line that does not parse, a rating of an item not in
            ``u.item``, a map row for an unknown item or a poster file that is not there.
    """
    in_dir = Path(in_dir)
    ml = in_dir / "ml-100k" if (in_dir / "ml-100k").is_dir() else in_dir
    items = _read_items(ml)
    path = find_file(ml / "u.data", f"u.data in {in_dir} or its ml-100k/ folder")
    table = read_table(path, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    require_rows(table, path, _DATA)
    require_filled(table, path, table.columns, _DATA)
    for column in ("user_id", "item_id"):
        parse_number(table, path, column, _DATA, integer=True)
    rating = parse_number(table, path, "rating", _DATA, integer=True)
    timestamp = parse_number(table, path, "timestamp", _DATA, integer=True)
    require_known(table, path, "item_id", pd.Index(items["item_id"]), "u.item")
    interactions = pd.DataFrame(
        {
            "user_id": table["user_id"].to_numpy(),
            "item_id": table["item_id"].to_numpy(),
            "timestamp": timestamp.to_numpy(),
            "event": "rating",
            "rating": rating.to_numpy(),
        }
    )
    report = PrepareReport(source="movielens100k", read=counts(interactions, items))
    if poster_map is None:
        items["image"] = None
        report.notes.append("no poster map: every item has a null image")
    else:
        items["image"], notes = _read_posters(in_dir, poster_map, items, keep_placeholder_posters)
        report.notes += notes
        n = int(items["image"].notna().sum())
        report.notes.append(f"{n:,} of {len(items):,} items read with a poster; the others have a null image")
    return SourceTables(items, interactions, report, image_root=in_dir if poster_map else None)


def convert_movielens100k(
    in_dir: str | Path,
    out_dir: str | Path,
    poster_map: str | None = POSTER_MAP,
    keep_placeholder_posters: bool = False,
    preprocess: Preprocess | None = None,
    image_mode: str = "copy",
    overwrite: bool = False,
) -> Path:
    """Writes the canonical dataset into ``out_dir`` (idempotent); posters go to ``out_dir/images``.

    Args:
        in_dir, poster_map, keep_placeholder_posters: see :func:`read_movielens100k`.
        out_dir: the dataset folder.
        preprocess: shared preprocessing options (:mod:`vrs.data.adapters.preprocess`).
        image_mode: "copy" or "symlink" the posters.
        overwrite: write into a non-empty ``out_dir`` not prepared from these files
            (see :func:`~vrs.data.adapters.common.check_out_dir`).
    """
    inputs = source_inputs("movielens100k", in_dir)
    check_out_dir(out_dir, inputs, overwrite)
    tables = read_movielens100k(in_dir, poster_map, keep_placeholder_posters)
    return write_prepared(
        out_dir, tables, preprocess, image_mode, name="movielens100k",
        source=f"MovieLens-100K + posters ({in_dir})",
        licence="GroupLens research licence (no redistribution); posters: studio copyright, research use only",
        inputs=inputs, overwrite=overwrite,
    )  # fmt: skip
