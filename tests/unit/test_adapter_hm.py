"""H&M adapter on hand-made files: purchases, article text, photos, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vrs.data.adapters.hm import convert_hm, read_hm
from vrs.data.adapters.preprocess import Preprocess
from vrs.data.schema import DatasetError, load_dataset

ARTICLES = (
    "article_id,product_code,prod_name,product_type_name,product_group_name,colour_group_name,"
    "graphical_appearance_name,department_name,index_name,section_name,garment_group_name,detail_desc\n"
    '0108775015,108775,Strap top,Vest top,Garment Upper body,Black,Solid,Jersey Basic,Ladieswear,"Womens, Basics",'
    "Jersey Basic,Jersey top with narrow shoulder straps.\n"
    "0110065001,110065,OP T-shirt (Idro),Bra,Underwear,White,Solid,Clean Lingerie,Lingeries/Tights,Womens Lingerie,"
    "Under-,\n"
    "0200000001,200000,Sock,Socks,Socks & Tights,Grey,Melange,Socks,Menswear,Men Underwear,Socks,Warm socks\n"
)
TRANSACTIONS = (
    "t_dat,customer_id,article_id,price,sales_channel_id\n"
    "2018-09-20,c1,0108775015,0.05,2\n"
    "2018-09-20,c1,0108775015,0.05,2\n"  # two units: kept
    "2018-09-21,c2,0110065001,0.02,1\n"
    "2018-09-22,c1,0110065001,0.02,1\n"
)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "articles.csv").write_text(ARTICLES)
    (root / "transactions.csv").write_text(TRANSACTIONS)
    for article in ("0108775015", "0110065001"):  # the sock has no photo
        (root / "images" / article[:3]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 6), (0, 0, 0)).save(root / "images" / article[:3] / f"{article}.jpg")
    return root


def test_reads_purchases_text_and_photos(raw: Path) -> None:
    t = read_hm(raw)
    items = t.items.set_index("item_id")
    assert list(t.items["item_id"]) == ["0108775015", "0110065001", "0200000001"]  # zero padding kept
    top = items.loc["0108775015"]
    assert (top["title"], top["category"]) == ("Strap top", "Vest top")
    assert top["description"] == (
        "Jersey top with narrow shoulder straps. Colour: Black. Appearance: Solid. Group: Garment Upper body. "
        "Department: Jersey Basic. Section: Womens, Basics. Index: Ladieswear. Garment group: Jersey Basic."
    )
    assert items.loc["0110065001", "description"].startswith("Colour: White.")  # no detail_desc
    assert top["image"] == "010/0108775015.jpg" and items["image"].isna().tolist() == [False, False, True]
    inter = t.interactions
    assert len(inter) == 4 and set(inter["event"]) == {"purchase"}
    assert list(inter["timestamp"]) == [1537401600, 1537401600, 1537488000, 1537574400]  # midnight UTC
    assert list(inter["price"]) == [0.05, 0.05, 0.02, 0.02] and list(inter["sales_channel_id"]) == [
        2,
        2,
        1,
        1,
    ]
    assert "2 of 3 articles read with a photo" in t.report.notes[0]


def test_convert_keeps_repeats_unless_deduplicated(raw: Path, tmp_path: Path) -> None:
    ds = load_dataset(convert_hm(raw, tmp_path / "out"), check_images=True)
    assert len(ds.interactions) == 4 and len(ds.items) == 2  # the sock was never bought
    assert ds.items["image"].tolist() == ["images/010/0108775015.jpg", "images/011/0110065001.jpg"]
    ds = load_dataset(convert_hm(raw, tmp_path / "out", Preprocess(dedup="last")))
    assert len(ds.interactions) == 3
    assert ds.meta["preparation"]["drops"][0] == {
        "step": "dedup=last", "reason": "repeated (user, item) pair; kept the last event",
        "interactions": 1, "users": 0, "items": 0,
    }  # fmt: skip


def test_out_dir_holding_the_source_photos_is_refused(raw: Path) -> None:
    with pytest.raises(ValueError, match="holds the source images"):
        convert_hm(raw, raw)
    assert (raw / "images" / "010" / "0108775015.jpg").is_file()


@pytest.mark.parametrize(
    ("file", "text", "match"),
    [
        (
            "transactions.csv",
            "t_dat,customer_id\n2018-09-20,c1\n",
            r"transactions.csv: missing column\(s\) \['article_id'\]",
        ),
        (
            "transactions.csv",
            TRANSACTIONS + "20/09/2018,c3,0108775015,0.1,1\n",
            r"transactions.csv: line 6: column 't_dat' value '20/09/2018' is not a date; expected YYYY-MM-DD",
        ),
        (
            "transactions.csv",
            TRANSACTIONS + "2018-09-23,c3,0999999999,0.1,1\n",
            r"transactions.csv: line 6: column 'article_id' value '0999999999' is not in articles.csv",
        ),
        (
            "transactions.csv",
            TRANSACTIONS + "2018-09-23,,0108775015,0.1,1\n",
            r"transactions.csv: line 6: column 'customer_id' is empty",
        ),
        (
            "transactions.csv",
            TRANSACTIONS + "2018-09-23,c3,0108775015,cheap,1\n",
            r"transactions.csv: line 6: column 'price' value 'cheap' is not a number",
        ),
        (
            "transactions.csv",
            TRANSACTIONS + "2018-09-23,c3,0108775015,0.1,1,extra\n",
            r"transactions.csv: line 6: 6 fields, expected 5",
        ),
        (
            "articles.csv",
            ARTICLES + ARTICLES.splitlines()[1] + "\n",
            r"articles.csv: line 5: column 'article_id' value '0108775015' repeats line 2",
        ),
        (
            "articles.csv",
            "article_id,product_code\n0108775015,1\n",
            r"articles.csv: missing column\(s\) \['prod_name'\]",
        ),
    ],
)
def test_bad_files_name_file_and_line(raw: Path, file: str, text: str, match: str) -> None:
    (raw / file).write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_hm(raw)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"articles.csv: file not found"):
        read_hm(tmp_path)
