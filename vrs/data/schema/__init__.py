"""The canonical on-disk dataset format: loading, validation, atomic writing and summaries.

A dataset is a folder holding

- ``items.parquet``: ``item_id`` (str, unique), ``title`` (str), ``description`` (str, may be empty),
  ``category`` (str, may be empty), ``image`` (str path relative to the folder, may be null); extra
  columns are kept. Row order is catalogue order. Only ``item_id`` and ``title`` are required
  columns; absent ``description``/``category`` read as "" and an absent ``image`` as null.
- ``interactions.parquet``: ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int64, seconds or an
  order index), ``event`` (str such as view/click/purchase; "interaction" when the column is absent).
- ``images/`` with the image files and ``dataset.json`` (name, source, licence, counts, fingerprint).

Every problem found in a dataset is reported as one :class:`DatasetError` whose message names the
file, the column, the first offending row (0-based position) or value, and what was expected.
"""

from vrs.data.schema.checks import check_image_links, in_int64, preview, validate_tables
from vrs.data.schema.files import fingerprint, load_dataset, write_dataset
from vrs.data.schema.spec import (
    DEFAULT_EVENT,
    IMAGE_LINKS_KEY,
    IMAGES_DIR,
    INTERACTION_COLUMNS,
    INTERACTIONS_FILE,
    ITEM_COLUMNS,
    ITEMS_FILE,
    META_FILE,
    REQUIRED_ITEM_COLUMNS,
    Dataset,
    DatasetError,
)
from vrs.data.schema.summary import format_summary, summarize

__all__ = [
    "DEFAULT_EVENT",
    "IMAGE_LINKS_KEY",
    "IMAGES_DIR",
    "INTERACTION_COLUMNS",
    "INTERACTIONS_FILE",
    "ITEM_COLUMNS",
    "ITEMS_FILE",
    "META_FILE",
    "REQUIRED_ITEM_COLUMNS",
    "Dataset",
    "DatasetError",
    "check_image_links",
    "fingerprint",
    "format_summary",
    "in_int64",
    "load_dataset",
    "preview",
    "summarize",
    "validate_tables",
    "write_dataset",
]
