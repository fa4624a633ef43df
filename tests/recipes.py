"""The small examples docs/architecture.md's recipes are followed with (tests/integration/test_recipes.py):
each is what a user would write in their own package to extend vrs."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrs.data.adapters.common import SourceTables, parse_number, read_table, write_prepared
from vrs.data.adapters.preprocess import PrepareReport
from vrs.data.content import ItemContent
from vrs.encoders.base import ImageEncoder, ModalityEncoder, Towers
from vrs.fusion.base import missing_vector, modality_order, present_matrix, zero_absent
from vrs.losses import Loss


class MeanColourEncoder(ImageEncoder):
    """Encoder recipe: an image's mean colour per quadrant, projected."""

    def __init__(self, out_dim: int = 8) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = nn.Linear(12, out_dim)

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        quadrants = F.adaptive_avg_pool2d(x, 2).flatten(1)  # (n, 3 * 2 * 2)
        return self.proj(quadrants)


def build_mean_colour_towers(out_dim: int = 8) -> Towers:
    return Towers(image=MeanColourEncoder(out_dim), text=None)


class TitleLengthEncoder(ModalityEncoder):
    """Modality recipe: a number from the items table (the title's word count), embedded."""

    def __init__(self, out_dim: int = 4) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = nn.Linear(1, out_dim)

    def read(self, content: ItemContent) -> tuple[Tensor, Tensor]:
        titles = content.column("title")
        words = torch.tensor(
            [len(t.split()) if isinstance(t, str) else 0 for t in titles], dtype=torch.float32
        )
        return words[:, None].log1p(), words > 0  # (N, 1), (N,)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)  # (n, 1) -> (n, out_dim)


class MaxFusion(nn.Module):
    """Fusion recipe: element-wise maximum of the projected present modalities."""

    def __init__(self, in_dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.modalities = modality_order(in_dims)
        self.proj = nn.ModuleDict({m: nn.Linear(in_dims[m], out_dim) for m in self.modalities})
        self.missing = missing_vector(out_dim)
        self.out_dim = out_dim

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        pres = present_matrix(present, self.modalities)
        x = torch.stack([self.proj[m](zero_absent(feats[m], present[m])) for m in self.modalities], 1)
        best = torch.where(pres[..., None], x, -torch.inf).amax(1)
        return torch.where(pres.any(1, keepdim=True), best, self.missing.to(x.dtype))


class DecayUserEncoder(nn.Module):
    """User encoder recipe: exponentially decayed sum of the history, one state per position."""

    causal = True

    def __init__(self, dim: int, max_len: int, n_events: int, decay: float = 0.5) -> None:
        super().__init__()
        self.decay = decay
        self.out = nn.Linear(dim, dim)

    def forward(self, h: Tensor, mask: Tensor, events: Tensor) -> Tensor:
        x = torch.where(mask.bool()[..., None], h, 0.0)
        states, running = [], torch.zeros_like(x[:, 0])
        for t in range(x.shape[1]):
            running = self.decay * running + x[:, t]
            states.append(running)
        return self.out(torch.stack(states, 1))


class OneNegativeHingeLoss(Loss):
    """Loss recipe: a margin between each target and one uniformly drawn item."""

    def __init__(self, margin: float = 1.0, n_items: int | None = None) -> None:
        super().__init__()
        self.margin = margin
        self.n_items = n_items

    def forward(self, states: Tensor, targets: Tensor, encode_items, log_q: Tensor | None = None) -> Tensor:
        n = self.n_items if self.n_items is not None else log_q.numel()
        negatives = torch.randint(0, n, targets.shape, device=targets.device)
        ids, inverse = torch.unique(torch.cat([targets, negatives]), return_inverse=True)
        vecs = encode_items(ids)[inverse]
        pos = (states * vecs[: len(targets)]).sum(-1)
        neg = (states * vecs[len(targets) :]).sum(-1)
        return F.relu(self.margin - pos + neg).mean()


def convert_plain_csv(
    in_dir: str | Path,
    out_dir: str | Path,
    preprocess=None,
    image_mode: str = "copy",
    overwrite: bool = False,
) -> Path:
    """Adapter recipe: events.csv (user,item,time) and titles.csv (item,title) -> canonical dataset."""
    from vrs.data.adapters.output import check_out_dir, source_inputs

    in_dir = Path(in_dir)
    inputs = source_inputs("plain_csv", in_dir)
    check_out_dir(out_dir, inputs, overwrite)
    events = read_table(in_dir / "events.csv", sep=",", names=["user_id", "item_id", "timestamp"])
    titles = read_table(in_dir / "titles.csv", sep=",", names=["item_id", "title"])
    time = parse_number(events, in_dir / "events.csv", "timestamp", "an integer time", integer=True)
    interactions = events.assign(timestamp=time)
    report = PrepareReport(source=str(in_dir), read={"interactions": len(events), "items": len(titles)})
    tables = SourceTables(items=titles.reset_index(drop=True), interactions=interactions.reset_index(drop=True),
                          report=report)  # fmt: skip
    return write_prepared(out_dir, tables, preprocess, image_mode, name="plain_csv", source=str(in_dir),
                          licence="test data", inputs=inputs, overwrite=overwrite)  # fmt: skip
