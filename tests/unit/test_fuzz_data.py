"""Fuzzing the canonical loader and every adapter with malformed rows.

Every failure must be one DatasetError (never another exception type), and a failure must leave the
output folder as it was. The runs are derandomised and bounded (a few seconds per test).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrs.data.adapters.amazon_reviews import convert_amazon_reviews
from vrs.data.adapters.amazon_seq import convert_amazon_seq
from vrs.data.adapters.hm import convert_hm
from vrs.data.adapters.movielens100k import convert_movielens100k
from vrs.data.adapters.recbole import convert_recbole
from vrs.data.schema import DatasetError, load_dataset, write_dataset

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text that breaks parsers: separators, quotes, other scripts' digits, huge numbers, NaN words.
JUNK = st.sampled_from(
    ["", " ", "x", "-1", "1.5", "1e30", "-1e30", "9223372036854775808", "nan", "inf", "١٢", "²", '"', "'",
     ",", "\t", "|", ";", "\\", "None", "null", "true", "2020-13-45", "0", "007", "a b"]
)  # fmt: skip
SMALL_INT = st.integers(0, 6).map(str)
FIELD = st.one_of(SMALL_INT, SMALL_INT, JUNK, st.text(max_size=4))
JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=4)
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _snapshot(root: Path) -> dict[str, bytes] | None:
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _converts_or_fails_cleanly(convert: Callable[[], Path], out: Path) -> None:
    before = _snapshot(out)
    try:
        convert()
    except DatasetError:
        assert _snapshot(out) == before, "a failed conversion changed the output folder"
    else:
        load_dataset(out, check_images=True)


def _mostly(valid: st.SearchStrategy, junk: st.SearchStrategy = FIELD) -> st.SearchStrategy:
    """Usually a valid value, sometimes junk."""
    return st.one_of(valid, valid, valid, valid, valid, junk)


# One malformation per line at most, mostly none, so many inputs get through to the later checks.
MUTATION = st.tuples(st.sampled_from(["none"] * 5 + ["replace", "drop", "add"]), st.integers(0, 30), FIELD)


def _mutate(fields: list[str], mutation: tuple[str, int, str]) -> list[str]:
    kind, at, junk = mutation
    at %= len(fields)
    if kind == "replace":
        return fields[:at] + [junk] + fields[at + 1 :]
    if kind == "drop":
        return fields[:at] + fields[at + 1 :]
    return fields + [junk] if kind == "add" else fields


def _lines(columns: list[st.SearchStrategy], sep: str) -> st.SearchStrategy:
    """Up to 6 lines of valid fields, each line perhaps with one field replaced, dropped or added."""
    row = st.tuples(st.tuples(*columns), MUTATION).map(lambda r: sep.join(_mutate(list(r[0]), r[1])))
    return st.lists(row, max_size=6).map(lambda rows: "".join(r + "\n" for r in rows))


RARELY = st.sampled_from([False, False, False, False, True])


def _bytes(text: str, bad_byte: bool) -> bytes:
    data = text.encode("utf-8")
    return data[: len(data) // 2] + b"\xff" + data[len(data) // 2 :] if bad_byte else data


def test_fuzz_canonical_loader_and_writer(tmp_path: Path) -> None:
    value = st.one_of(
        st.text(max_size=3),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(),
        st.none(),
        st.sampled_from(["i0", "i1"]),
    )
    columns = st.sampled_from(
        ["item_id", "title", "description", "category", "image", "user_id", "timestamp"]
    )

    @FUZZ
    @given(
        st.dictionaries(columns, st.lists(value, min_size=2, max_size=2), min_size=1),
        st.dictionaries(columns, st.lists(value, min_size=3, max_size=3), min_size=1),
    )
    def run(items: dict, inter: dict) -> None:
        items_df, inter_df = pd.DataFrame(items), pd.DataFrame(inter)
        raw = tmp_path / "raw"
        raw.mkdir(exist_ok=True)
        try:
            items_df.to_parquet(raw / "items.parquet", index=False)
            inter_df.to_parquet(raw / "interactions.parquet", index=False)
        except Exception:  # pyarrow cannot store this mix of types: not the loader's input
            return
        try:
            ds = load_dataset(raw, check_images=True)
        except DatasetError:
            pass
        else:
            assert ds.interactions["timestamp"].dtype == np.int64
        out = tmp_path / "out"
        before = _snapshot(out)
        try:
            write_dataset(out, items_df, inter_df, name="fuzz", source="fuzz", licence="none")
        except DatasetError:
            assert _snapshot(out) == before

    run()


def test_fuzz_amazon_seq(tmp_path: Path) -> None:
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    line = st.tuples(st.lists(SMALL_INT, min_size=2, max_size=5), MUTATION).map(
        lambda r: " ".join(_mutate(*r))
    )
    attributes = st.dictionaries(SMALL_INT, _mostly(st.lists(st.integers(0, 9), max_size=3), JSON_VALUE))

    @FUZZ
    @given(
        st.lists(line, max_size=6).map(lambda rows: "".join(r + "\n" for r in rows)),
        RARELY,
        st.one_of(st.none(), attributes, attributes, JSON_VALUE),
    )
    def run(text: str, bad_byte: bool, attributes: object) -> None:
        (in_dir / "B.txt").write_bytes(_bytes(text, bad_byte))
        attr = in_dir / "B_item2attributes.json"
        attr.unlink(missing_ok=True)
        if attributes is not None:
            attr.write_text(json.dumps(attributes))
        _converts_or_fails_cleanly(lambda: convert_amazon_seq(in_dir, out, "B"), out)

    run()


def test_fuzz_amazon_reviews(tmp_path: Path) -> None:
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    ids = st.sampled_from(["A1", "A2", "U1"])
    review = st.fixed_dictionaries(
        {
            "reviewerID": ids,
            "asin": ids,
            "unixReviewTime": st.integers(0, 10**10),
            "overall": st.floats(1, 5),
        }
    )
    urls = st.lists(st.sampled_from(["https://x/a.jpg", ""]), max_size=2)
    meta = st.fixed_dictionaries(
        {"asin": ids},
        optional={
            "title": st.text(max_size=4),
            "description": st.lists(st.text(max_size=4), max_size=2),
            "category": st.lists(st.text(max_size=4), max_size=2),
            "imageURL": urls,
            "imageURLHighRes": urls,
        },
    )

    def broken(record: dict, mutation: tuple[str, int, str], value: object) -> str:
        """The record as a JSON line, perhaps with one value replaced or one key dropped, or junk."""
        kind, at, junk = mutation
        key = sorted(record)[at % len(record)]
        if kind == "replace":
            record = {**record, key: value}
        elif kind == "drop":
            record = {k: v for k, v in record.items() if k != key}
        return junk if kind == "add" and at % 4 == 0 else json.dumps(record)

    def jsonl(record: st.SearchStrategy) -> st.SearchStrategy:
        line = st.builds(broken, record, MUTATION, JSON_VALUE)
        return st.lists(line, max_size=5).map(lambda rows: "".join(r + "\n" for r in rows))

    @settings(FUZZ, max_examples=60)  # the metadata checks come last: more tries to reach them
    @given(jsonl(review), jsonl(meta), RARELY, st.sampled_from(["drop", "error"]))
    def run(reviews: str, metadata: str, bad_byte: bool, unknown: str) -> None:
        (in_dir / "B.json").write_bytes(_bytes(reviews, bad_byte))
        (in_dir / "meta_B.json").write_text(metadata)
        _converts_or_fails_cleanly(
            lambda: convert_amazon_reviews(in_dir, out, "B", unknown_items=unknown), out
        )

    run()


def test_fuzz_hm(tmp_path: Path) -> None:
    in_dir, out = tmp_path / "in", tmp_path / "out"
    (in_dir / "images" / "010").mkdir(parents=True)
    (in_dir / "images" / "010" / "0108775015.jpg").write_bytes(b"jpeg")
    article = st.sampled_from(["0108775015", "0108775044"])
    date = st.sampled_from(["2020-09-01", "2020-09-02"])

    @FUZZ
    @given(
        _lines([date, SMALL_INT, article, st.just("0.05"), st.just("2")], ","),
        _lines([article, st.just("Tee"), st.just("Top")], ","),
        RARELY,
    )
    def run(transactions: str, articles: str, bad_byte: bool) -> None:
        header = "t_dat,customer_id,article_id,price,sales_channel_id\n"
        (in_dir / "transactions.csv").write_bytes(_bytes(header + transactions, bad_byte))
        (in_dir / "articles.csv").write_text("article_id,prod_name,product_type_name\n" + articles)
        _converts_or_fails_cleanly(lambda: convert_hm(in_dir, out), out)

    run()


def test_fuzz_movielens100k(tmp_path: Path) -> None:
    in_dir, out = tmp_path / "in", tmp_path / "out"
    (in_dir / "ml-100k").mkdir(parents=True)
    (in_dir / "posters").mkdir()
    (in_dir / "posters" / "p1.jpg").write_bytes(b"jpeg")
    item = st.sampled_from(["1", "2"])
    flag = st.sampled_from(["0", "1"])

    @FUZZ
    @given(
        _lines([SMALL_INT, item, st.just("4"), st.just("881250949")], "\t"),
        _lines(
            [item, st.just("Heat (1995)"), st.just("01-Jan-1995"), st.just(""), st.just("http://x")]
            + [flag] * 19,
            "|",
        ),
        _lines([item, st.sampled_from(["True", "False"]), st.just("posters/p1.jpg"), st.just("False")], ","),
        st.booleans(),
    )
    def run(data: str, items: str, posters: str, with_map: bool) -> None:
        (in_dir / "ml-100k" / "u.data").write_text(data)
        (in_dir / "ml-100k" / "u.item").write_text(items, encoding="latin-1", errors="replace")
        (in_dir / "map.csv").write_text(
            "ml100k_item_id,has_poster,poster_file,poster_is_placeholder\n" + posters
        )
        poster_map = "map.csv" if with_map else None
        _converts_or_fails_cleanly(lambda: convert_movielens100k(in_dir, out, poster_map=poster_map), out)

    run()


def test_fuzz_recbole(tmp_path: Path) -> None:
    in_dir, out = tmp_path / "in", tmp_path / "out"
    (in_dir / "img").mkdir(parents=True)
    (in_dir / "img" / "a.png").write_bytes(b"png")
    item = st.sampled_from(["a", "b"])
    headers = st.sampled_from(
        [
            "user_id:token\titem_id:token\ttimestamp:float\tevent:token",
            "user_id:token\titem_id:token\ttimestamp:float\trating:float",
            "user_id:token\titem_id:token\ttimestamp:float\tevent:token",
            "user_id:token\titem_id:token\ttimestamp:float\trating:float",
            "user_id:token\titem_id:token\ttimestamp:float\tevent:token",
            "user_id:token\titem_id:token\ttimestamp:float\trating:float",
            "user_id:token\titem_id:token\ttimestamp:float\ttimestamp:float",
            "user_id:token\titem_id:blob\tx:token\ty:token",
            "user_id:token\t\tx:token\ty:token",
        ]
    )

    @FUZZ
    @given(
        headers,
        _lines([SMALL_INT, item, st.just("881250949.5"), st.just("view")], "\t"),
        st.none() | _lines([item, st.just("Toy Story"), st.just("a.png")], "\t"),
        RARELY,
    )
    def run(header: str, inter: str, items: str | None, bad_byte: bool) -> None:
        (in_dir / "r.inter").write_bytes(_bytes(header + "\n" + inter, bad_byte))
        item_file = in_dir / "r.item"
        item_file.unlink(missing_ok=True)
        if items is not None:
            item_file.write_text("item_id:token\ttitle:token_seq\timage:token\n" + items)
        _converts_or_fails_cleanly(lambda: convert_recbole(in_dir, out, "r", image_dir="img"), out)

    run()


@pytest.mark.parametrize("text", ["", "\n", "header only\n"])
def test_empty_sources_raise_dataset_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "r.inter").write_text(text.replace("header only", "user_id:token\titem_id:token"))
    with pytest.raises(DatasetError, match=r"r.inter"):
        convert_recbole(tmp_path, tmp_path / "out", "r")
    assert not (tmp_path / "out").exists()
