import json
from pathlib import Path

import pytest

from vrs.data.adapters.amazon_seq import convert_amazon_seq, read_amazon_seq
from vrs.data.schema import DatasetError, load_dataset
from vrs.data.splits import leave_one_out


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    (tmp_path / "Tiny.txt").write_text("1 1 2 3 4\n2 2 3 5\n\n3 1 5 4 2 6\n")
    (tmp_path / "Tiny_item2attributes.json").write_text(json.dumps({"1": [7, 8], "3": [9]}))
    return tmp_path


def test_reads_users_items_order_and_attributes(raw: Path) -> None:
    items, inter = read_amazon_seq(raw, "Tiny")
    assert list(items["item_id"]) == ["1", "2", "3", "4", "5", "6"]
    assert items.set_index("item_id").loc["1", "description"] == "attr7 attr8"
    assert items.set_index("item_id").loc["2", "description"] == ""
    user3 = inter[inter["user_id"] == "3"]
    assert list(user3["item_id"]) == ["1", "5", "4", "2", "6"]
    assert list(user3["timestamp"]) == [0, 1, 2, 3, 4]
    # The file's protocol: last item = test, second-last = validation.
    split = leave_one_out(inter)
    assert split.test.set_index("user_id").loc["3", "item_id"] == "6"
    assert split.val.set_index("user_id").loc["3", "item_id"] == "2"


def test_convert_is_valid_and_idempotent(raw: Path, tmp_path: Path) -> None:
    out = convert_amazon_seq(raw, tmp_path / "out", "Tiny")
    first = load_dataset(out).meta["fingerprint"]
    bytes_before = (out / "interactions.parquet").read_bytes()
    convert_amazon_seq(raw, out, "Tiny")
    assert load_dataset(out).meta["fingerprint"] == first
    assert (out / "interactions.parquet").read_bytes() == bytes_before


def test_bad_line_names_file_and_line(raw: Path) -> None:
    (raw / "Tiny.txt").write_text("1 1 2\n2 x 3\n")
    with pytest.raises(DatasetError, match=r"Tiny.txt: line 2"):
        read_amazon_seq(raw, "Tiny")
    with pytest.raises(DatasetError, match="file not found"):
        read_amazon_seq(raw, "Missing")


@pytest.mark.parametrize(
    ("attributes", "match"),
    [
        ([1, 2, 3], r"Tiny_item2attributes.json: expected a JSON object"),
        ({"1": 7}, r"Tiny_item2attributes.json: item '1': value 7; expected a list of integer"),
        (
            {"1": [7, "x"]},
            r"Tiny_item2attributes.json: item '1': value \[7, 'x'\]; expected a list of integer",
        ),
        ({"1": [7, 1.5]}, r"Tiny_item2attributes.json: item '1'"),
    ],
)
def test_attributes_of_the_wrong_shape(raw: Path, attributes: object, match: str) -> None:
    (raw / "Tiny_item2attributes.json").write_text(json.dumps(attributes))
    with pytest.raises(DatasetError, match=match):
        read_amazon_seq(raw, "Tiny")


@pytest.mark.parametrize("bad_id", ["١٢", "²", "1٣"])
def test_non_ascii_digits_refused(raw: Path, bad_id: str) -> None:
    (raw / "Tiny.txt").write_text(f"1 1 2\n2 {bad_id} 3\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"Tiny.txt: line 2: .*ASCII"):
        read_amazon_seq(raw, "Tiny")


def test_non_utf8_byte_names_line(raw: Path) -> None:
    (raw / "Tiny.txt").write_bytes(b"1 1 2\n2 2 3\n3 \xff 4\n")
    with pytest.raises(DatasetError, match=r"Tiny.txt: line 3: .*UTF-8"):
        read_amazon_seq(raw, "Tiny")


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_says_so(raw: Path, tmp_path: Path, text: str) -> None:
    (raw / "Tiny.txt").write_text(text)
    with pytest.raises(DatasetError, match=r"Tiny.txt: no interactions"):
        convert_amazon_seq(raw, tmp_path / "out", "Tiny")
    assert not (tmp_path / "out").exists()
