"""GPU check: what vrs achieves on a machine with CUDA GPUs, each figure beside the GPU's measured peak.

Run it on the GPU machine from the repository root (about 5 minutes on one modern GPU):

    bash benchmarks/gpu_check.sh                # = python benchmarks/gpu_check.py --out runs/gpu_check

Steps, each printed with its figure:
1. peak: the measured bf16 and fp32 (TF32 off) matmul throughput of GPU 0 (8192^3);
2. the demo (`experiment=demo`, synthetic catalogue) trained on one GPU in bf16 (`trainer=gpu`):
   wall time and test NDCG@10;
3. that checkpoint evaluated with one process and with `trainer=ddp` on every visible GPU: the
   metrics must be identical (integer metric states, every target counted once);
4. the demo trained with `trainer=ddp` on every visible GPU: wall time and test NDCG@10 (not
   identical to step 2: the global batch is larger);
5. image feature extraction, ViT-B/32 architecture with random weights in bf16: images/s and the
   fraction of the bf16 peak;
6. full-ranking evaluation at 1M items (D=64, top-20 lists, seen items excluded): users/s and the
   fraction of the fp32 peak.
Exits 2 without a CUDA GPU (nothing measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def cuda_time(fn, repeats: int = 3) -> float:
    """Best wall time of `repeats` synchronised calls after one warm-up."""
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def peak(dtype: torch.dtype, n: int = 8192) -> float:
    """TFLOP/s of an n^3 matmul on GPU 0 (TF32 off for fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    return 2 * n**3 / cuda_time(lambda: a @ b) / 1e12


def vrs(command: str, args: list[str], log: Path) -> tuple[float, dict]:
    """Runs a vrs command (`python -m vrs.cli.<command>`), returns (wall seconds, metrics.json)."""
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", f"vrs.cli.{command}", *args], stdout=out, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command} {' '.join(args)} failed (exit {proc.returncode}); see {log}")
    return wall, json.loads((Path(run_dir) / "metrics.json").read_text())


def extraction(bf16_peak: float, n_images: int, batch: int) -> None:
    from vrs.encoders.open_clip import build_open_clip_towers

    encoder = build_open_clip_towers("ViT-B-32", None, text=False).image.cuda().eval()
    images = torch.randint(0, 256, (n_images, 3, 224, 224), dtype=torch.uint8, device="cuda")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        encoder(images[:1])
    flops = counter.get_total_flops()

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for chunk in images.split(batch):
                encoder(chunk)

    dt = cuda_time(run)
    rate = n_images / dt
    print(
        f"5. extraction ViT-B/32 bf16, batch {batch}: {rate:,.0f} images/s, {flops / 1e9:.2f} GFLOP/image, "
        f"{rate * flops / 1e12 / bf16_peak:.0%} of the bf16 peak"
    )


def ranking(fp32_peak: float, n_items: int, n_users: int, dim: int = 64, k: int = 20) -> None:
    from vrs.retrieval import rank_and_topk

    g = torch.Generator(device="cuda").manual_seed(0)
    users = torch.randn(n_users, dim, device="cuda", generator=g)
    items = torch.randn(n_items, dim, device="cuda", generator=g)
    targets = torch.randint(0, n_items, (n_users,), device="cuda", generator=g)
    seen = torch.randint(0, n_items, (n_users, 20), device="cuda", generator=g)

    def run() -> None:
        for s in range(0, n_users, 4096):
            rank_and_topk(users[s : s + 4096], items, targets[s : s + 4096], seen[s : s + 4096], k=k)

    dt = cuda_time(run)
    tflops = 2 * n_users * n_items * dim / dt / 1e12
    print(
        f"6. full ranking, N={n_items:,} items, D={dim}, {n_users:,} users, top-{k}: {n_users / dt:,.0f} users/s, "
        f"{tflops:.1f} TFLOP/s = {tflops / fp32_peak:.0%} of the fp32 peak"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/gpu_check"), help="run folders and logs")
    p.add_argument("--max-epochs", type=int, default=5, help="demo epochs (both trainings)")
    p.add_argument("--n-items", type=int, default=1_000_000)
    p.add_argument("--n-users", type=int, default=65_536)
    p.add_argument("--n-images", type=int, default=2048)
    p.add_argument("--skip", nargs="*", default=[], choices=["demo", "ddp", "extract", "rank"])
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; nothing measured")
        raise SystemExit(2)
    n_gpus = torch.cuda.device_count()
    print(f"torch {torch.__version__}, {n_gpus} x {torch.cuda.get_device_name(0)}")
    print("reproduce: python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv))
    bf16, fp32 = peak(torch.bfloat16), peak(torch.float32)
    print(f"1. peak (8192^3 matmul, GPU 0): bf16 {bf16:.0f} TFLOP/s, fp32 {fp32:.1f} TFLOP/s")
    args.out.mkdir(parents=True, exist_ok=True)
    data = f"data.root={args.out.resolve() / 'synthetic'}"
    common = ["experiment=demo", data, f"trainer.max_epochs={args.max_epochs}", "logger=csv"]
    if "demo" not in args.skip:
        one = args.out / "demo_1gpu"
        wall, m = vrs("train", [*common, "trainer=gpu", f"hydra.run.dir={one}"], args.out / "demo_1gpu.log")
        print(
            f"2. demo, 1 GPU, bf16, {args.max_epochs} epochs: {wall:.0f} s, test NDCG@10 {m['test/ndcg_10']:.4f}"
        )
        if n_gpus > 1 and "ddp" not in args.skip:
            run = [f"run_dir={one}", "trainer.precision=bf16-mixed"]
            _, single = vrs(
                "evaluate",
                [*run, "trainer=gpu", f"hydra.run.dir={args.out / 'eval_1'}"],
                args.out / "eval_1.log",
            )
            _, multi = vrs(
                "evaluate",
                [*run, "trainer=ddp", f"hydra.run.dir={args.out / 'eval_ddp'}"],
                args.out / "eval_ddp.log",
            )
            same = {k: single[k] for k in single if k.startswith("test")} == {
                k: multi[k] for k in multi if k.startswith("test")
            }
            print(
                f"3. the checkpoint evaluated on 1 GPU and DDP x {n_gpus}: test metrics {'identical' if same else 'DIFFER'}"
            )
            if not same:
                diff = {k: (single[k], multi.get(k)) for k in single if single[k] != multi.get(k)}
                print(f"   differences: {diff}")
    if n_gpus > 1 and "ddp" not in args.skip:
        wall, m = vrs(
            "train",
            [*common, "trainer=ddp", f"hydra.run.dir={args.out / 'demo_ddp'}"],
            args.out / "demo_ddp.log",
        )
        print(f"4. demo, DDP x {n_gpus}, bf16: {wall:.0f} s, test NDCG@10 {m['test/ndcg_10']:.4f}")
    elif n_gpus == 1:
        print("3-4. one GPU visible: no DDP comparison")
    if "extract" not in args.skip:
        extraction(bf16, args.n_images, batch=256)
    if "rank" not in args.skip:
        ranking(fp32, args.n_items, args.n_users)


if __name__ == "__main__":
    main()
