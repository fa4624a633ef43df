"""SASRec-style causal transformer over the history's item vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POSITIONS = ("forward", "inverse")
BLOCKS = ("prenorm", "sasrec")


def history_positions(mask: Tensor, max_len: int, order: str = "forward") -> Tensor:
    """(B, T) bool -> (B, T) long ordinal of each event within its history.

    "forward": 0 = the oldest real event; counting from the first real event (not from the
    tensor's left edge) makes the encoding independent of how much left padding a batch carries and
    depends only on the past. "inverse": 0 = the most recent event (RecTools' and eSASRec's learnable
    inverse positions), so the event the next item follows always has the same embedding, however
    long the history. Positions past `max_len - 1` share the last embedding.
    """
    if order == "inverse":
        return (mask.long().flip(1).cumsum(dim=1).flip(1) - 1).clamp(min=0, max=max_len - 1)
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0, max=max_len - 1)


def attention_mask(mask: Tensor, causal: bool) -> Tensor:
    """(B, T) bool -> (B, 1, T, T) bool, True where query i may attend to key j.

    Queries never see padded keys; the diagonal is always visible so that no row is fully masked
    (which would give NaN) — padded queries thus attend only to themselves.
    """
    t = mask.shape[1]
    allowed = mask[:, None, :].expand(-1, t, -1)  # (B, T, T) keys that are real
    eye = torch.eye(t, dtype=torch.bool, device=mask.device)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    return (allowed | eye)[:, None]  # (B, 1, T, T)


class TransformerBlock(nn.Module):
    """A transformer block (attention + MLP) taking an explicit boolean attention mask.

    "prenorm": x + Attn(LN(x)), then + MLP(LN(.)). "sasrec": the SASRec authors' block, as RecTools
    runs it: queries from LN(x), keys and values from x, and both residuals taken from the normalised
    input (q + Attn(q, x, x), then f + MLP(f) with f = LN(.)).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        dropout: float,
        kind: str = "prenorm",
        ff_mult: int = 4,
        activation: str = "gelu",
    ):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        if kind not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {kind!r}")
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be gelu or relu, got {activation!r}")
        self.kind = kind
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = ff_mult * dim
        act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), act, nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.resid_drop = nn.Dropout(dropout)

    def _attend(
        self, q_in: Tensor, kv_in: Tensor, index: Tensor, shape: tuple[int, int], allowed: Tensor
    ) -> Tensor:
        """Attention of queries from `q_in` over keys and values from `kv_in`, both (N, D) packed
        real positions (see `SASRecUserEncoder.forward`); the scores are computed on the padded
        (B, H, T, T) grid, the projections on the N real positions only."""
        n, d = q_in.shape
        b, t = shape
        if q_in is kv_in:
            qkv = self.qkv(q_in)  # (N, 3D)
        else:  # the fused projection, split between the two inputs
            w, bias = self.qkv.weight, self.qkv.bias
            qkv = torch.cat([F.linear(q_in, w[:d], bias[:d]), F.linear(kv_in, w[d:], bias[d:])], dim=-1)
        grid = qkv.new_zeros(b * t, 3 * d).index_copy(0, index, qkv).view(b, t, 3 * d)
        q, k, v = (
            z.reshape(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in grid.split(d, dim=-1)
        )  # (B, H, T, D/H)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).reshape(b * t, d).index_select(0, index))  # (N, D)

    def forward(self, x: Tensor, index: Tensor, shape: tuple[int, int], allowed: Tensor) -> Tensor:
        """x (N, D) the real positions of a (B, T) = `shape` batch, at flat positions `index` (N,);
        allowed (B, 1, T, T) bool -> (N, D)."""
        if self.kind == "sasrec":
            q = self.norm1(x)
            x = q + self.resid_drop(self._attend(q, x, index, shape, allowed))
            f = self.norm2(x)
            return f + self.mlp(f)
        h = self.norm1(x)
        x = x + self.resid_drop(self._attend(h, h, index, shape, allowed))
        return x + self.mlp(self.norm2(x))


class SASRecUserEncoder(nn.Module):
    """Causal pre-LN transformer (SASRec) over left-padded histories.

    Input = item vector + learned position embedding (ordinal within the history) + event-type
    embedding; output at position t depends only on events <= t. Padded positions output zeros.

    Args:
        dim: item / user vector width D.
        max_len: number of learned position embeddings (longest history T).
        n_events: number of event types E (ids 1..E, 0 = padding).
        n_layers: transformer blocks.
        n_heads: attention heads (must divide `dim`).
        dropout: dropout on the input embeddings, attention and residual branches.
        positions: "forward" (0 = oldest event) or "inverse" (0 = most recent; see
            `history_positions`).
        block: "prenorm" or "sasrec" (see `TransformerBlock`).
        ff_mult: MLP width as a multiple of `dim` (4 in GPT-style blocks, 1 in SASRec's).
        activation: "gelu" or "relu" in the MLP.
        event_embedding: add a learned embedding of each event's type.
    """

    causal: bool = True

    def __init__(
        self,
        dim: int,
        max_len: int,
        n_events: int,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        positions: str = "forward",
        block: str = "prenorm",
        ff_mult: int = 4,
        activation: str = "gelu",
        event_embedding: bool = True,
    ):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.dim = dim
        self.max_len = max_len
        self.positions = positions
        self.use_events = event_embedding
        self.pos_emb = nn.Embedding(max_len, dim)
        self.event_emb = nn.Embedding(n_events + 1, dim, padding_idx=0)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        nn.init.normal_(self.event_emb.weight, std=0.02)
        with torch.no_grad():
            self.event_emb.weight[0].zero_()
        # Kept when unused (same initialisation order, checkpoints load either way) but frozen: DDP
        # refuses trainable parameters that take no part in the loss.
        self.event_emb.weight.requires_grad_(event_embedding)
        self.input_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, dropout, block, ff_mult, activation) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: Tensor, mask: Tensor, events: Tensor) -> Tensor:
        """h (B, T, D) history item vectors, mask (B, T) bool, events (B, T) long -> (B, T, D).

        Only the real positions go through the position-wise layers (packed to (N, D)): histories
        are mostly padding (on Amazon Beauty 15% of a 128-history batch is real), and the
        projections and MLP are most of a block's work.
        """
        mask = mask.bool()
        b, t = mask.shape
        index = mask.reshape(-1).nonzero().squeeze(1)  # (N,) flat positions of the real events
        x = h + self.pos_emb(history_positions(mask, self.max_len, self.positions))
        if self.use_events:
            x = x + self.event_emb(events)
        x = self.input_drop(x.reshape(b * t, self.dim).index_select(0, index))  # (N, D)
        allowed = attention_mask(mask, causal=self.causal)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, index, (b, t), allowed)
        out = self.norm(x)
        return out.new_zeros(b * t, self.dim).index_copy(0, index, out).view(b, t, self.dim)  # (B, T, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}, causal={self.causal}"
