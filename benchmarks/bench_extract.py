"""Image feature extraction throughput of vrs's cache path against the machine's matmul peak, and
end to end from real JPEG files.

For each chosen encoder architecture (weights do not change the speed: random weights unless
--pretrained), this prints the FLOPs per image, then images/s of `FeatureCache` extraction from
uint8 tensors in memory (resize -> normalise -> tower, batched, inference mode, shards written to
disk) for each batch size, in fp32 and in bf16 (bf16 weights under autocast), as GFLOP/s and as a
fraction of the measured fp32 / bf16 matmul peak, and for reference the encoder as built called by
one thread in fp32 (no inference copy, no worker threads). Then the end-to-end rows: the same extraction
from --n-files real JPEGs (--images, H&M's product photos by default) keyed by their bytes, so
hashing the files, decoding (centre crop, bicubic resize to --image-size) and encoding are all
timed; and decoding alone, for scale. For open_clip towers, last, the same images through a plain
open_clip loop (PIL preprocess + `model.encode_image` one image at a time) and the speed ratio.

    python benchmarks/bench_extract.py --encoder effnet clip_b32 --image-size 224 --batch-size 16 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from timing import best_time, matmul_peak, parse_run_args, print_setup
from torch.utils.flop_counter import FlopCounterMode

from vrs.data.images import ImageFiles
from vrs.encoders.cache import FeatureCache
from vrs.encoders.inference import map_workers
from vrs.encoders.open_clip import build_open_clip_towers
from vrs.encoders.pretrained import build_effnet_towers

ENCODERS = {"clip_b32": "ViT-B-32", "clip_b16": "ViT-B-16", "effnet": None}
HM_IMAGES = Path(__file__).resolve().parents[2] / "shared/data/hm-fashion-sample/images"


def build(name: str | None, pretrained: str | None) -> tuple[torch.nn.Module, object, object]:
    """The vrs image tower, and for open_clip the plain model and its preprocess."""
    if name is None:
        return build_effnet_towers(text=None).image.eval(), None, None
    import open_clip

    encoder = build_open_clip_towers(name, pretrained, text=False).image.eval()
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    model.visual.load_state_dict(encoder.visual.state_dict())
    return encoder, model.eval(), preprocess


def end_to_end(encoder: torch.nn.Module, files: list[str], root: Path, args: argparse.Namespace) -> None:
    """Rows for extraction from the files themselves: hash, decode and encode, as vrs-extract does."""
    for precision in ("fp32", "bf16"):
        for bs in args.batch_size:

            def run(bs: int = bs, precision: str = precision) -> None:
                source = ImageFiles(root, list(files), args.image_size)  # fresh: nothing hashed yet
                with tempfile.TemporaryDirectory() as tmp:
                    cache = FeatureCache(tmp, batch_size=bs, progress=False, precision=precision)
                    cache.encode_shards(cache.key("image", encoder, source), encoder, source)

            rate = len(files) / best_time(run, args.repeats)
            print(
                f"  vrs {precision} batch {bs:>3} end to end (hash + decode + encode): {rate:7.1f} images/s"
            )

    def decode() -> None:
        source = ImageFiles(root, list(files), args.image_size)
        chunks = [range(i, min(len(files), i + 16)) for i in range(0, len(files), 16)]
        map_workers(lambda c: source.load(chunks[c]), len(chunks), torch.get_num_threads())

    rate = len(files) / best_time(decode, args.repeats)
    print(f"  decoding alone ({torch.get_num_threads()} threads): {rate:7.1f} images/s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=sorted(ENCODERS), nargs="+", default=["clip_b32"])
    p.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint (speed is the same)")
    p.add_argument("--n-images", type=int, default=256)
    p.add_argument(
        "--image-size",
        type=int,
        default=256,
        help="side of the stored / decoded images (resized by the tower)",
    )
    p.add_argument("--batch-size", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--baseline-images", type=int, default=64, help="images through the plain loop")
    p.add_argument("--images", type=Path, default=HM_IMAGES, help="folder of JPEGs for the end-to-end rows")
    p.add_argument("--n-files", type=int, default=512, help="JPEGs in the end-to-end rows (0: none)")
    args = parse_run_args(p, argv, repeats=1)
    print_setup("bench_extract.py", argv)
    peak32, peak16 = matmul_peak(torch.float32, 3), matmul_peak(torch.bfloat16, 3)
    print(f"matmul peak (2048^3): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s")
    files = sorted(str(f.relative_to(args.images)) for f in args.images.rglob("*.jpg"))[: args.n_files]
    if args.n_files and not files:
        print(f"no JPEG under {args.images}: no end-to-end rows (pass --images DIR)")
    for enc_name in args.encoder:
        bench_encoder(enc_name, args, peak32, peak16, files)


def bench_encoder(
    enc_name: str, args: argparse.Namespace, peak32: float, peak16: float, files: list[str]
) -> None:
    encoder, model, preprocess = build(ENCODERS[enc_name], args.pretrained)
    images = torch.randint(0, 256, (args.n_images, 3, args.image_size, args.image_size), dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        encoder(images[:1])
    flops = counter.get_total_flops()  # per image (a multiply-add counts 2)
    print(f"encoder {enc_name}: {flops / 1e9:.2f} GFLOP per image at {encoder.image_size} px")

    start = time.perf_counter()
    FeatureCache("unused").key("image", encoder, images)
    print(
        f"cache key of in-memory pixels (hash of the weights and of every pixel): "
        f"{time.perf_counter() - start:.2f} s, once per run"
    )

    best: dict[str, float] = {}
    for precision, peak in (("fp32", peak32), ("bf16", peak16)):
        for bs in args.batch_size:

            def extract(bs: int = bs, precision: str = precision) -> None:
                # Every shard of a fresh entry: batching, autocast, the inference copy (folded,
                # fused, bf16) and the atomic shard writes, i.e. all of an extraction except the
                # one-off key above.
                with tempfile.TemporaryDirectory() as tmp:
                    cache = FeatureCache(tmp, batch_size=bs, progress=False, precision=precision)
                    cache.encode_shards("bench", encoder, images)

            dt = best_time(extract, args.repeats)
            rate = args.n_images / dt
            gf = rate * flops / 1e9
            best[precision] = max(best.get(precision, 0.0), rate)
            print(
                f"  vrs {precision} batch {bs:>3} from memory: {rate:7.1f} images/s  {gf:6.0f} GFLOP/s  "
                f"{gf / peak:5.1%} of {precision} peak"
            )

    def as_built(bs: int = max(args.batch_size)) -> None:
        # The encoder as built, called by one thread with torch's thread pool: no inference copy,
        # no worker threads (what vrs-extract ran before them, in fp32).
        with torch.inference_mode():
            for chunk in images.split(bs):
                encoder(chunk)

    rate = args.n_images / best_time(as_built, args.repeats)
    print(
        f"  reference: the encoder as built, one caller, {torch.get_num_threads()} torch threads, fp32, batch "
        f"{max(args.batch_size)}: {rate:7.1f} images/s"
    )
    if files:
        end_to_end(encoder, files, args.images, args)

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
        f"best from memory: fp32 {best['fp32']:.1f} images/s = {best['fp32'] * flops / 1e9 / peak32:.1%} "
        f"of fp32 peak; bf16 {best['bf16']:.1f} images/s = {best['bf16'] * flops / 1e9 / peak16:.1%} of bf16 peak"
    )


if __name__ == "__main__":
    main()
