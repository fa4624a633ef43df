"""The category modality: a learned embedding of an item's category (or attribute) tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vrs.encoders.base import ModalityEncoder
from vrs.encoders.toy import hashed_id

if TYPE_CHECKING:
    from vrs.data.content import ItemContent


class CategoryEncoder(ModalityEncoder):
    """Mean of learned token embeddings over the tokens of one column of the items table.

    The column's value is split into tokens (on `separator`, whitespace when None; lower-cased),
    each hashed to one of `vocab_size - 1` rows, so the table needs no vocabulary built from the
    data and a checkpoint rebuilds from its config alone. An item whose value is empty has no
    category (absent for the fusion). Trained with the model, whatever the encoder's fine-tuning.

    Args:
        out_dim: embedding width.
        column: the items-table column holding the tokens: `category`, or `description` for the
            Amazon attribute tokens ("attr12 attr40").
        vocab_size: hash buckets, padding id 0 included.
        max_tokens: L, tokens kept per item (the first ones).
        separator: what splits a value into tokens (None: whitespace; "|" for "Tops|Knitwear").
    """

    def __init__(
        self,
        out_dim: int = 16,
        column: str = "category",
        vocab_size: int = 1024,
        max_tokens: int = 8,
        separator: str | None = None,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (id 0 is padding), got {vocab_size}")
        self.out_dim = out_dim
        self.column = column
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens
        self.separator = separator
        self.embedding = nn.EmbeddingBag(vocab_size, out_dim, mode="mean", padding_idx=0)

    def tokenize(self, values: Sequence[object]) -> Tensor:
        """Column values -> (n, L) long ids, right-padded with 0; a missing value has no tokens."""
        tokens = torch.zeros(len(values), self.max_tokens, dtype=torch.long)  # (n, L)
        for row, value in enumerate(values):
            words = str(value).lower().split(self.separator) if isinstance(value, str) else []
            ids = [hashed_id(w.strip(), self.vocab_size) for w in words if w.strip()][: self.max_tokens]
            if ids:
                tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return tokens

    def read(self, content: ItemContent) -> tuple[Tensor, Tensor]:
        tokens = self.tokenize(content.column(self.column))  # (N, L)
        return tokens, (tokens != 0).any(dim=1)

    def forward(self, tokens: Tensor) -> Tensor:
        """(n, L) long ids -> (n, out_dim): the mean over the non-padding tokens (zeros for none)."""
        return self.embedding(tokens)
