#!/usr/bin/env python
"""AuthFace benchmark: cost per face of the identity models used by identity guidance.

    python benchmarks/bench_identity.py            # CPU (and CUDA when present): batches 1 and 4, 512 px crops
    python benchmarks/bench_identity.py --quick    # smoke run: batch 1, 256 px crops, few repeats
    python benchmarks/bench_identity.py --device cuda --crop 512 --batches 1 8

Two encoders, side by side in one process, on the same ``[-1, 1] RGB (B, 3, S, S)`` FFHQ-aligned crops:

- ``dlib``: :class:`authface.models.dlib_resnet.DlibIdentityEncoder` (dlib's ResNet-29 from the installed
  ``.dat``; fixed warp to the 150 px chip, antialiased);
- ``arcface-r50``: :class:`authface.models.arcface.ArcFaceEncoder` over an IResNet-50 with RANDOM weights
  (convolutions re-initialised with std 1/sqrt(fan_in) so activations stay finite; the cost does not depend on
  the values); warp to 112 px, antialiased.

For each device and batch size: median milliseconds per face of ``embed`` without gradients (``forward``) and of
``embed`` + ``backward`` to the input crops (``fwd+bwd``, what a guidance step pays), after a warm-up, the two
encoders alternating every round. Ratios are ``arcface / dlib`` (above 1: dlib is cheaper).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build_encoders(device: torch.device) -> dict[str, torch.nn.Module]:
    from authface.models.arcface import ArcFaceEncoder
    from authface.models.dlib_resnet import DlibIdentityEncoder
    from authface.models.iresnet import iresnet

    backbone = iresnet("r50")
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0.0, fan_in**-0.5)
    return {
        "dlib": DlibIdentityEncoder.from_pretrained(device=device),
        "arcface-r50": ArcFaceEncoder(backbone).to(device),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(encoder: torch.nn.Module, faces: torch.Tensor, backward: bool) -> float:
    """Seconds of one ``embed`` (and backward to ``faces`` when ``backward``)."""
    _sync(faces.device)
    start = time.perf_counter()
    if backward:
        x = faces.detach().requires_grad_(True)
        encoder.embed(x).sum().backward()
    else:
        with torch.no_grad():
            encoder.embed(faces)
    _sync(faces.device)
    return time.perf_counter() - start


def bench_device(device: torch.device, crop: int, batches: list[int], repeats: int) -> list[tuple]:
    encoders = build_encoders(device)
    rows = []
    for batch in batches:
        faces = torch.rand(batch, 3, crop, crop, device=device, generator=None) * 2 - 1
        times: dict[tuple[str, str], list[float]] = {}
        for mode in ("forward", "fwd+bwd"):
            for enc in encoders.values():  # warm-up
                time_call(enc, faces, mode == "fwd+bwd")
            for _ in range(repeats):
                for name, enc in encoders.items():
                    times.setdefault((name, mode), []).append(time_call(enc, faces, mode == "fwd+bwd"))
        for mode in ("forward", "fwd+bwd"):
            ms = {name: statistics.median(times[(name, mode)]) * 1e3 / batch for name in encoders}
            rows.append(
                (device.type, batch, mode, ms["dlib"], ms["arcface-r50"], ms["arcface-r50"] / ms["dlib"])
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, 256 px crops, 3 repeats")
    parser.add_argument(
        "--device", action="append", help="cpu / cuda (repeatable); default cpu + cuda if present"
    )
    parser.add_argument("--crop", type=int, default=512, help="crop side S (default 512)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    args = parser.parse_args()
    if args.quick:
        args.crop, args.batches, args.repeats = 256, [1], 3
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"# bench_identity: crop {args.crop}px, batches {args.batches}, {args.repeats} repeats, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    if torch.cuda.is_available():
        print(f"# cuda: {torch.cuda.get_device_name(0)}")
    print(
        f"{'device':<6} {'batch':>5} {'mode':<8} {'dlib ms/face':>13} {'arcface-r50 ms/face':>20} {'ratio':>6}"
    )
    for dev in devices:
        for device, batch, mode, dlib_ms, arc_ms, ratio in bench_device(
            torch.device(dev), args.crop, args.batches, args.repeats
        ):
            print(f"{device:<6} {batch:>5} {mode:<8} {dlib_ms:>13.2f} {arc_ms:>20.2f} {ratio:>6.2f}")
            print(f"RATIO arcface-r50/dlib {device} b{batch} {mode} {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
