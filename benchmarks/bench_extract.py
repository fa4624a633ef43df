"""Image feature extraction throughput of vrs's cache path against the machine's matmul peak.

For the chosen encoder (weights do not change the speed: random weights unless --pretrained), this
prints the FLOPs per image, then images/s of `FeatureCache` extraction (uint8 tensors -> resize ->
normalise -> tower, batched, inference mode, shards written to disk) for each batch size, in fp32 and
in bf16 (bf16 weights under autocast), as GFLOP/s and as a fraction of the measured fp32 / bf16 matmul peak; then the
same images through a plain open_clip loop (PIL preprocess + `model.encode_image` one image at a
time) and the speed ratio.

    python benchmarks/bench_extract.py --encoder clip_b32 --n-images 256 --batch-size 16 32 64
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from PIL import Image
from timing import best_time, matmul_peak, parse_run_args, print_setup
from torch.utils.flop_counter import FlopCounterMode

from vrs.encoders.cache import FeatureCache
from vrs.encoders.open_clip import build_open_clip_towers
from vrs.encoders.pretrained import build_effnet_towers

ENCODERS = {"clip_b32": "ViT-B-32", "clip_b16": "ViT-B-16", "effnet": None}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=sorted(ENCODERS), default="clip_b32")
    p.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint (speed is the same)")
    p.add_argument("--n-images", type=int, default=256)
    p.add_argument(
        "--image-size", type=int, default=256, help="side of the stored images (resized by the tower)"
    )
    p.add_argument("--batch-size", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--baseline-images", type=int, default=64, help="images through the plain loop")
    args = parse_run_args(p, argv, repeats=1)
    print_setup("bench_extract.py", argv)

    name = ENCODERS[args.encoder]
    if name is None:
        encoder = build_effnet_towers(text=None).image
        model = None
    else:
        import open_clip

        encoder = build_open_clip_towers(name, args.pretrained, text=False).image
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
        model.visual.load_state_dict(encoder.visual.state_dict())
        model.eval()
    encoder.eval()

    images = torch.randint(0, 256, (args.n_images, 3, args.image_size, args.image_size), dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        encoder(images[:1])
    flops = counter.get_total_flops()  # per image (a multiply-add counts 2)
    peak32, peak16 = matmul_peak(torch.float32, 3), matmul_peak(torch.bfloat16, 3)
    print(f"encoder {args.encoder}: {flops / 1e9:.2f} GFLOP per image at {encoder.image_size} px")
    print(f"matmul peak (2048^3): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s")

    start = time.perf_counter()
    FeatureCache("unused").key("image", encoder, images)
    print(
        f"cache key (hash of the weights and of every input pixel): {time.perf_counter() - start:.2f} s, once per run"
    )

    best: dict[str, float] = {}
    for precision, peak in (("fp32", peak32), ("bf16", peak16)):
        for bs in args.batch_size:

            def extract(bs: int = bs, precision: str = precision) -> None:
                # Every shard of a fresh entry: batching, autocast, the bf16 weight copy and the
                # atomic shard writes, i.e. all of an extraction except the one-off key above.
                with tempfile.TemporaryDirectory() as tmp:
                    cache = FeatureCache(tmp, batch_size=bs, progress=False, precision=precision)
                    cache.encode_shards("bench", encoder, images)

            dt = best_time(extract, args.repeats)
            rate = args.n_images / dt
            gf = rate * flops / 1e9
            best[precision] = max(best.get(precision, 0.0), rate)
            print(
                f"  vrs {precision} batch {bs:>3}: {rate:7.1f} images/s  {gf:6.0f} GFLOP/s  "
                f"{gf / peak:5.1%} of {precision} peak"
            )

    if model is not None:
        pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images[: args.baseline_images]]

        def plain() -> None:
            with torch.no_grad():
                for img in pil:
                    model.encode_image(preprocess(img)[None])

        dt = best_time(plain, 1)
        rate = len(pil) / dt
        print(
            f"  plain open_clip loop (PIL preprocess + encode_image, 1 image per call): {rate:7.1f} images/s"
        )
        print(
            f"  vrs fp32 best / plain loop: {best['fp32'] / rate:.2f}x; bf16 best / plain: {best['bf16'] / rate:.2f}x"
        )
    print(
        f"best: fp32 {best['fp32']:.1f} images/s = {best['fp32'] * flops / 1e9 / peak32:.1%} of fp32 peak; "
        f"bf16 {best['bf16']:.1f} images/s = {best['bf16'] * flops / 1e9 / peak16:.1%} of bf16 peak"
    )


if __name__ == "__main__":
    main()
