"""Training batches of similar-length histories.

A batch is padded to its longest history, so random batches of a long-tailed length distribution
(Amazon Beauty: mean 7 training events, max 50 after truncation) are mostly padding, and the user
encoder spends most of its time on it. Grouping by length keeps batches random in composition at
the scale of a group while cutting the padding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose members have similar lengths.

    Each epoch: shuffle all indices, cut them into groups of `batch_size * group_batches`, sort each
    group by length, split it into batches, shuffle the batches. Each pass over the sampler is the
    next epoch (`epoch` counts the passes; `set_epoch` sets it): Lightning only tells a loader's
    `sampler` its epoch, never its batch sampler, and a resumed run restores the count. Under DDP the shuffled indices are
    padded by repetition to a multiple of `num_replicas` and sharded `rank::num_replicas`, so every
    rank runs the same number of batches (a training sample seen twice per epoch is harmless;
    evaluation never uses this sampler).

    Args:
        lengths: (n,) length of each sample.
        batch_size: samples per batch.
        seed: base seed; the epoch is added to it.
        group_batches: batches per sorted group (1 = no grouping, plain shuffled batches).
        num_replicas: DDP world size.
        rank: this process's rank.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        group_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1 or group_batches < 1:
            raise ValueError(f"batch_size and group_batches must be >= 1, got {batch_size}, {group_batches}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass."""
        self.epoch = epoch

    def _shard(self, order: np.ndarray) -> np.ndarray:
        if self.num_replicas == 1 or len(order) == 0:
            return order
        total = -(-len(order) // self.num_replicas) * self.num_replicas
        order = np.resize(order, total)  # repeats from the start to pad
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        # Not a generator function: the epoch is taken (and advanced) when the pass starts.
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        return self._batches(rng)

    def _batches(self, rng: np.random.Generator) -> Iterator[list[int]]:
        order = self._shard(rng.permutation(len(self.lengths)))
        group = self.batch_size * self.group_batches
        batches: list[np.ndarray] = []
        for start in range(0, len(order), group):
            chunk = order[start : start + group]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        for b in rng.permutation(len(batches)):
            yield batches[b].tolist()

    def __len__(self) -> int:
        per_rank = -(-len(self.lengths) // self.num_replicas)
        group = self.batch_size * self.group_batches
        full, rest = divmod(per_rank, group)
        return full * self.group_batches + -(-rest // self.batch_size)
