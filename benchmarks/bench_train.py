"""Training throughput of an ID-only SASRec on the S3-Rec Amazon Beauty file.

    python benchmarks/bench_train.py --epochs 3
    python benchmarks/bench_train.py --name Toys_and_Games --batch-size 512

Prints sequences/s, target positions/s and seconds per epoch of SASRec (2 layers, D=64, history 50,
full softmax over the catalogue, one causal pass per user). The reference point named in the issue
tracker: RecBole 1.2.1's SASRec with the same sizes spends several minutes per epoch on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from vrs.data.adapters.amazon_seq import convert_amazon_seq
from vrs.data.datamodule import RecDataModule
from vrs.lit.module import RecModule

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-seq"


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.positions = 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self.positions = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.positions += int((batch.targets >= 0).sum())

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--name", default="Beauty")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = convert_amazon_seq(args.data, Path(tmp) / args.name, args.name)
        dm = RecDataModule(str(root), max_len=args.max_len, batch_size=args.batch_size, load_images=False)
        dm.setup()
        module = RecModule(
            n_items=dm.n_items,
            n_events=dm.n_events,
            max_len=args.max_len,
            dim=args.dim,
            use_id=True,
            encoder=None,
            fusion={
                "_target_": "vrs.fusion.single_modality.SingleModalityFusion",
                "_partial_": True,
                "modality": "id",
            },
            user={
                "_target_": "vrs.user.sasrec.SASRecUserEncoder",
                "_partial_": True,
                "n_layers": 2,
                "n_heads": 2,
            },
            loss={"_target_": "vrs.losses.FullSoftmaxLoss"},
        )
        module.attach_data(dm.content, dm.train_counts)
        timer = EpochTimer()
        trainer = L.Trainer(
            accelerator="cpu",
            precision=args.precision,
            max_epochs=args.epochs,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            callbacks=[timer],
        )
        trainer.fit(module, datamodule=dm)

    n_seq = len(dm.train_dataloader().dataset)
    print(f"dataset: {args.name}  users={dm.data.n_users}  items={dm.n_items}  training sequences={n_seq}")
    print(
        f"model: SASRec id-only, 2 layers, D={args.dim}, history {args.max_len}, full softmax; "
        f"batch {args.batch_size}; precision {args.precision}; {torch.get_num_threads()} threads"
    )
    for epoch, seconds in enumerate(timer.times):
        print(
            f"epoch {epoch}: {seconds:7.2f} s   {n_seq / seconds:9.0f} sequences/s   "
            f"{timer.positions / seconds:9.0f} target positions/s"
        )
    steady = timer.times[1:] or timer.times
    print(
        f"seconds per epoch (mean of epochs {len(timer.times) - len(steady)}..{len(timer.times) - 1}): "
        f"{sum(steady) / len(steady):.2f}"
    )
    print(
        f"reproduce: python benchmarks/bench_train.py --name {args.name} --epochs {args.epochs} "
        f"--batch-size {args.batch_size} --precision {args.precision}"
    )


if __name__ == "__main__":
    main()
