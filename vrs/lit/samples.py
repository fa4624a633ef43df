"""Sample users of an evaluation as a W&B table with pictures: history, top-K, held-out item."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from vrs.data.content import ItemContent

N_USERS = 8  # users per table
N_SHOWN = 5  # history items and recommendations per user
_GAP = 4


@dataclass
class Samples:
    """The first users of an evaluation: (U, T) history (-1 padding), (U, K) top-K, (U,) targets
    and ranks."""

    history: Tensor
    topk: Tensor
    targets: Tensor
    ranks: Tensor


def capture(items: Tensor, mask: Tensor, topk: Tensor, targets: Tensor, ranks: Tensor) -> Samples:
    n = min(N_USERS, items.shape[0])
    history = items[:n].masked_fill(~mask[:n], -1)  # (U, T)
    return Samples(history.cpu(), topk[:n].cpu(), targets[:n].cpu(), ranks[:n].cpu())


def strip(content: ItemContent, idx: list[int], highlight: int | None = None) -> Image.Image | None:
    """Images of `idx` side by side; the `highlight` item gets a red frame. None without images."""
    pixels = content.pixels(idx) if idx else None  # (n, 3, H, W); only these items decoded
    if pixels is None:
        return None
    tiles = []
    for i, image in zip(idx, pixels, strict=True):
        tile = Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8))
        if i == highlight:
            ImageDraw.Draw(tile).rectangle(
                [0, 0, tile.width - 1, tile.height - 1], outline=(230, 0, 0), width=3
            )
        tiles.append(tile)
    side = tiles[0].height
    canvas = Image.new("RGB", (len(tiles) * (side + _GAP) - _GAP, side), "white")
    for n, tile in enumerate(tiles):
        canvas.paste(tile, (n * (side + _GAP), 0))
    return canvas


def wandb_table(samples: Samples, content: ItemContent, k: int):  # noqa: ANN201 (wandb.Table)
    """A `wandb.Table`: one row per user with history / recommendation / target images and captions."""
    import wandb

    def image(idx: list[int], highlight: int | None = None) -> object:
        picture = strip(content, idx, highlight)
        caption = " | ".join(content.texts[i][:40] for i in idx)
        return wandb.Image(picture, caption=caption) if picture is not None else caption

    table = wandb.Table(columns=["row", "history", "recommended", "target", f"hit@{k}", "rank"])
    for row in range(samples.targets.shape[0]):
        history = [int(i) for i in samples.history[row] if i >= 0][-N_SHOWN:]
        recommended = [int(i) for i in samples.topk[row] if i >= 0][:N_SHOWN]
        target = int(samples.targets[row])
        rank = int(samples.ranks[row])
        table.add_data(row, image(history), image(recommended, target), image([target]), rank < k, rank)
    return table


def user_cards(samples: Samples, content: ItemContent, k: int) -> list:
    """One `wandb.Image` per user: history | recommended (target framed) | target, with a caption."""
    import wandb

    cards = []
    for row in range(samples.targets.shape[0]):
        history = [int(i) for i in samples.history[row] if i >= 0][-N_SHOWN:]
        recommended = [int(i) for i in samples.topk[row] if i >= 0][:N_SHOWN]
        target, rank = int(samples.targets[row]), int(samples.ranks[row])
        parts = [strip(content, history), strip(content, recommended, target), strip(content, [target])]
        parts = [p for p in parts if p is not None]
        if not parts:
            return []
        gap = 4 * _GAP
        card = Image.new(
            "RGB", (sum(p.width for p in parts) + gap * (len(parts) - 1), parts[0].height), "white"
        )
        x = 0
        for part in parts:
            card.paste(part, (x, 0))
            x += part.width + gap
        caption = f"history | top-{N_SHOWN} | held-out (rank {rank}{', hit@' + str(k) if rank < k else ''})"
        cards.append(wandb.Image(card, caption=caption))
    return cards


def log_to_wandb(loggers: list, stage: str, samples: Samples, content: ItemContent, k: int) -> bool:
    """Logs "{stage}/samples" (a table) and "{stage}/sample_users" (one picture per user) to every
    W&B logger; False when there is none. The pictures are logged on their own too because offline
    W&B runs keep images only outside tables (wandb/wandb#4611)."""
    from lightning.pytorch.loggers import WandbLogger

    targets = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    for logger in targets:
        logger.experiment.log(
            {
                f"{stage}/samples": wandb_table(samples, content, k),
                f"{stage}/sample_users": user_cards(samples, content, k),
            }
        )
    return bool(targets)


__all__ = ["Samples", "capture", "log_to_wandb", "strip", "user_cards", "wandb_table"]
