"""Tiny image and text towers for tests, smoke runs and CPU-only experiments."""

from __future__ import annotations

import re
import zlib

import torch
from torch import Tensor, nn

from vrs.encoders.base import ImageEncoder, TextEncoder, Towers
from vrs.encoders.pixels import resize_normalize

_WORD = re.compile(r"[^\W_]+")  # runs of unicode letters/digits; everything else separates words


def hashed_id(token: str, vocab_size: int) -> int:
    """Id in 1..vocab_size-1 of a token (0 is padding): crc32, the same in every process."""
    return 1 + zlib.crc32(token.encode("utf-8")) % (vocab_size - 1)


class ToyImageEncoder(ImageEncoder):
    """Three strided conv blocks, global average pool and a linear head.

    GroupNorm rather than BatchNorm: item features are computed in chunks of arbitrary composition
    (the whole catalogue at eval, a sampled subset in training), and batch statistics would make an
    item's vector depend on which other items shared its chunk.

    Args:
        out_dim: Output feature size.
        image_size: Side the input is resized to before the convolutions.
        width: Channels of the first conv block; doubled at each of the next two.
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, out_dim: int = 32, image_size: int = 32, width: int = 16) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.image_size = image_size
        chans = [3, width, 2 * width, 4 * width]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(1, c_out),
                nn.GELU(),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], out_dim)

    def forward(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or float in [0, 1] -> (n, out_dim)."""
        x = resize_normalize(images, self.image_size, self.mean, self.std)  # (n, 3, S, S)
        x = self.features(x)  # (n, 4w, S/8, S/8)
        return self.head(x.mean(dim=(2, 3)))  # (n, out_dim)


class ToyTextEncoder(TextEncoder):
    """Hashed bag of words: word ids from crc32, masked mean of their embeddings, linear head.

    crc32 rather than Python's ``hash`` because string hashing is salted per process, which would
    change token ids between the run that trained a model and the run that reloads it.

    Args:
        out_dim: Output feature size (also the word-embedding size).
        vocab_size: Number of ids including the padding id 0; words map to 1..vocab_size-1.
        max_tokens: L, the token length every row is truncated or right-padded to.
    """

    def __init__(self, out_dim: int = 32, vocab_size: int = 4096, max_tokens: int = 32) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (id 0 is padding), got {vocab_size}")
        self.out_dim = out_dim
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens
        self.embedding = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.head = nn.Linear(out_dim, out_dim)

    def word_id(self, word: str) -> int:
        """Id in 1..vocab_size-1 of one (already lower-cased) word."""
        return hashed_id(word, self.vocab_size)

    def tokenize(self, texts: list[str]) -> Tensor:
        """Strings -> (n, L) long ids, right-padded with 0 and truncated to L words."""
        tokens = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)  # (n, L)
        for row, text in enumerate(texts):
            ids = [self.word_id(w) for w in _WORD.findall(text.lower())[: self.max_tokens]]
            if ids:
                tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return tokens

    def forward(self, tokens: Tensor) -> Tensor:
        """(n, L) long ids -> (n, out_dim); an all-padding row maps to the head's bias."""
        mask = (tokens != 0).unsqueeze(-1)  # (n, L, 1)
        emb = self.embedding(tokens) * mask  # (n, L, D)
        # clamp keeps empty texts finite (0 / 1) instead of 0 / 0.
        pooled = emb.sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # (n, D)
        return self.head(pooled)  # (n, out_dim)


def build_toy_towers(
    image_dim: int = 32,
    text_dim: int = 32,
    image_size: int = 32,
    vocab_size: int = 4096,
    image: bool = True,
) -> Towers:
    """Build the toy image and text towers.

    Args:
        image_dim: Output size of the image tower.
        text_dim: Output size of the text tower.
        image_size: Side images are resized to.
        vocab_size: Hashed vocabulary size of the text tower, padding id included.
        image: Build the image tower (False: text tower only, e.g. for attribute tokens).

    Returns:
        Towers with the text tower and, unless ``image=False``, the image tower.
    """
    return Towers(
        image=ToyImageEncoder(out_dim=image_dim, image_size=image_size) if image else None,
        text=ToyTextEncoder(out_dim=text_dim, vocab_size=vocab_size),
    )
