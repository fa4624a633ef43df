"""The canonical dataset format's files and columns, its error and the loaded `Dataset`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ITEMS_FILE = "items.parquet"
INTERACTIONS_FILE = "interactions.parquet"
META_FILE = "dataset.json"
IMAGES_DIR = "images"
DEFAULT_EVENT = "interaction"
# dataset.json key: folders that image symlinks may lead into (vrs-prepare image_mode=symlink).
IMAGE_LINKS_KEY = "image_links_to"

ITEM_COLUMNS = ("item_id", "title", "description", "category", "image")
REQUIRED_ITEM_COLUMNS = ("item_id", "title")  # the others default to "", "" and null when absent
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")


class DatasetError(ValueError):
    """A dataset folder or table breaks the canonical format; the message says where and how."""


@dataclass
class Dataset:
    """A validated dataset with normalised dtypes.

    Attributes:
        root: the dataset folder; ``items.image`` paths are relative to it.
        items: one row per item in catalogue order (ids and texts ``str``, ``image`` ``str`` or NaN).
        interactions: one row per event in file order (ids ``str``, ``timestamp`` int64, ``event`` str).
        meta: the contents of ``dataset.json`` ({} when the file is absent).
    """

    root: Path
    items: pd.DataFrame
    interactions: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)
