"""Dataset folder -> split -> loaders of RecBatches, for Lightning."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from vrs.data.content import ItemContent
from vrs.data.images import load_item_content
from vrs.data.samplers import LengthGroupedBatchSampler
from vrs.data.schema import META_FILE, Dataset, fingerprint, load_dataset
from vrs.data.sequences import (
    EvalDataset,
    SequenceData,
    TrainSequenceDataset,
    UnpaddedDistributedSampler,
    check_train_stride,
    check_train_windows,
    collate_eval,
    collate_train,
)
from vrs.data.splits import Split, describe, make_split
from vrs.rng import rng_states, set_rng_states


class RecDataModule(L.LightningDataModule):
    """Loads a canonical dataset, splits it and serves train/val/test RecBatches.

    Args:
        root: dataset folder in the canonical format.
        generate: keyword arguments for `vrs.data.synthetic.generate`; when given, the synthetic
            dataset is generated into `root` unless the same parameters already generated it.
            Anything else in `root` (another catalogue, dataset or files) is refused, not replaced.
        overwrite: with `generate`, replace whatever `root` holds by the requested catalogue.
        split: "leave_one_out" or "temporal".
        split_options: keyword arguments of the split function.
        max_len: histories are truncated to their most recent `max_len` events (T).
        batch_size: training users per batch.
        eval_batch_size: evaluation targets per batch.
        num_workers: DataLoader workers.
        image_size: side of the square uint8 images handed to the image tower.
        load_images: False skips pixels (ID-only or text-only models on big catalogues).
        on_bad_image: "error" | "skip" | "blank" for missing or corrupt image files.
        seed: shuffling seed of the training sampler.
        length_grouping: training batches are drawn from groups of this many batches sorted by
            history length, so little of each batch is padding; 1 = plain shuffled batches (default).
        train_windows: "last": one training sample per user, its last `max_len` + 1 train events;
            "all": every train event a target once per epoch (`TrainSequenceDataset`).
        train_stride: with train_windows="all", the step between the windows' ends (None: max_len,
            no overlap); a smaller step gives each target more history before it.
        first_target: each user's first train event is a target too (history-free user encoders
            only: `user=mf`, `lightgcn`, `freedom`; refused with one that reads the history).
    """

    def __init__(
        self,
        root: str,
        generate: dict[str, Any] | None = None,
        overwrite: bool = False,
        split: str = "leave_one_out",
        split_options: dict[str, Any] | None = None,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        image_size: int = 64,
        load_images: bool = True,
        on_bad_image: str = "error",
        seed: int = 0,
        length_grouping: int = 1,
        train_windows: str = "last",
        first_target: bool = False,
        train_stride: int | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.generate = generate
        self.overwrite = overwrite
        self.split_kind = split
        self.split_options = dict(split_options or {})
        self.max_len = max_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.load_images = load_images
        self.on_bad_image = on_bad_image
        self.seed = seed
        self.length_grouping = length_grouping
        self.train_windows = check_train_windows(train_windows)  # refused here, not at the first epoch
        self.first_target = bool(first_target)
        check_train_stride(train_stride, self.train_windows, max_len)
        self.train_stride = train_stride
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.data: SequenceData | None = None
        self._content: ItemContent | None = None
        self._prepared = False
        self._train_batches: LengthGroupedBatchSampler | None = None
        self._resumed_epoch = 0
        self._fingerprint = ""

    def prepare_data(self) -> None:
        # The commands call this before building the model and Lightning calls it again in fit.
        if self.generate is not None and not self._prepared:
            from vrs.data.synthetic import generate, generation_conflict, generation_lock

            # Decided and done under the lock: ranks starting together with data.overwrite=true must
            # not each replace the catalogue the first one generated (and may be reading).
            with generation_lock(self.root):
                # Only the catalogue asked for may be written: `data.root=X` alone keeps data=synthetic
                # and its default parameters, which must not silently replace what X holds.
                conflict = generation_conflict(self.root, **self.generate)
                if conflict is not None and not self.overwrite:
                    raise FileExistsError(
                        f"{conflict}; the synthetic data config would generate another catalogue there. "
                        f"To use the dataset as it is, pass data=canonical data.root={self.root}; to "
                        "generate the requested one, pass data.overwrite=true (or another data.root); or "
                        "pass the data.generate.* parameters it was generated with"
                    )
                generate(self.root, **self.generate, overwrite=conflict is not None)
            self._prepared = True

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.dataset = load_dataset(self.root, check_images=self.load_images)
        # Hash what was read (a fraction of a second for 300k rows): dataset.json may be stale.
        self._fingerprint = fingerprint(self.dataset.items, self.dataset.interactions)
        recorded = self.dataset.meta.get("fingerprint")
        if recorded and recorded != self._fingerprint:
            warnings.warn(
                f"{self.root / META_FILE} records fingerprint {recorded}, but the tables read from "
                f"{self.root} hash to {self._fingerprint}: they changed after dataset.json was written",
                stacklevel=2,
            )
        self.split = make_split(self.dataset.interactions, self.split_kind, **self.split_options)
        self.data = SequenceData(self.dataset.items, self.dataset.interactions, self.split)

    # -- facts the model is built from ------------------------------------------------------
    @property
    def n_items(self) -> int:
        return self._require().n_items

    @property
    def n_users(self) -> int:
        return self._require().n_users

    @property
    def n_events(self) -> int:
        return self._require().n_events

    @property
    def train_counts(self) -> torch.Tensor:
        return torch.as_tensor(self._require().train_counts, dtype=torch.float32)

    @property
    def item_categories(self) -> torch.Tensor | None:
        """(N,) long category code of each item (-1: none), or None when items.parquet has no
        category column."""
        from vrs.list_metrics import category_codes

        self._require()
        items = self.dataset.items
        return category_codes(items["category"]) if "category" in items.columns else None

    @property
    def train_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user index, item index) of every training event, (E,) each (graph models' edges)."""
        data = self._require()
        offsets = torch.as_tensor(np.asarray(data.offsets), dtype=torch.long)
        train_len = torch.as_tensor(np.asarray(data.train_len), dtype=torch.long)
        items = torch.as_tensor(np.asarray(data.items_flat), dtype=torch.long)
        users = torch.repeat_interleave(torch.arange(len(train_len)), offsets[1:] - offsets[:-1])
        keep = torch.arange(len(items)) - offsets[users] < train_len[users]
        return users[keep], items[keep]

    @property
    def n_categories(self) -> int:
        """Number of distinct item categories (0 without a category column)."""
        codes = self.item_categories
        return int(codes.max()) + 1 if codes is not None and len(codes) else 0

    @property
    def fingerprint(self) -> str:
        """Content hash of the tables read (`vrs.data.schema.fingerprint`, as in dataset.json)."""
        self._require()
        return self._fingerprint

    @property
    def has_cold_targets(self) -> bool:
        return len(self._require().test_cold_targets) > 0

    @property
    def content(self) -> ItemContent:
        """Pixels and text of the whole catalogue. Images are decoded when first read, not here: a
        run whose frozen image features are cached never decodes them (see `ItemContent`)."""
        if self._content is None:
            self._require()
            self._content = load_item_content(
                self.dataset, self.image_size, self.on_bad_image, load_images=self.load_images, decode=False
            )
        return self._content

    # -- resuming ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the epoch of the next training pass and the global generators,
        so that a resumed run draws exactly what the uninterrupted one would have."""
        epoch = self._train_batches.epoch if self._train_batches is not None else self._resumed_epoch
        return {"train_epoch": epoch, "rng": rng_states()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resumed_epoch = int(state.get("train_epoch", 0))
        if self._train_batches is not None:
            self._train_batches.set_epoch(self._resumed_epoch)
        if "rng" in state:  # checkpoints written before the generators were saved have none
            set_rng_states(state["rng"])

    def describe(self) -> dict[str, Any]:
        self._require()
        return describe(self.split)

    # -- loaders ----------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        dataset = TrainSequenceDataset(
            self._require(), self.max_len, self.train_windows, self.first_target, self.train_stride
        )
        world, rank = self._world()
        batches = LengthGroupedBatchSampler(
            dataset.lengths,
            self.batch_size,
            seed=self.seed,
            group_batches=self.length_grouping,
            num_replicas=world,
            rank=rank,
        )
        batches.set_epoch(self._resumed_epoch)
        self._train_batches = batches
        return DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate_train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=self._generator(),
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self.eval_dataloader(stage) for stage in self.test_stages()]

    def test_stages(self) -> list[str]:
        return ["test", "test_cold"] if self.has_cold_targets else ["test"]

    def eval_dataloader(self, stage: str) -> DataLoader:
        """Loader over the `stage` targets ("val", "test" or "test_cold"), sharded without padding, in
        order of history length: a batch is padded to its longest history, so similar lengths
        together cost less (the metrics are sums, and per-user results are kept by sample index)."""
        data = self._require()
        targets = {"val": data.val_targets, "test": data.test_targets, "test_cold": data.test_cold_targets}
        if stage not in targets:
            raise ValueError(f"unknown evaluation stage {stage!r}; expected one of {sorted(targets)}")
        dataset = EvalDataset(data, targets[stage], self.max_len)
        world, rank = self._world()
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            sampler=UnpaddedDistributedSampler(
                len(dataset), world, rank, order=np.argsort(dataset.lengths, kind="stable")
            ),
            collate_fn=collate_eval,
            num_workers=self.num_workers,
            generator=self._generator(),
        )

    def _generator(self) -> torch.Generator:
        # A loader's own generator: starting an epoch's pass then draws nothing from the global one.
        return torch.Generator().manual_seed(self.seed)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _require(self) -> SequenceData:
        if self.data is None:
            self.setup()
        assert self.data is not None
        return self.data
