#!/usr/bin/env python
"""The Markdown table of a ``benchmarks/gpu_suite.sh`` run, from the logs it wrote into one folder.

    python benchmarks/suite_table.py DIR [--seconds N]

Rows: AuthFace vs diffusers (``pipeline.log``), the 20-/4-/1-step modes (``speed_b*.log``), guidance variants
(``guidance.log``) and training steps (``train.log``). Columns: seconds per face, faces per second, TFLOP per face
(from the issue's per-call costs at 512², scaled by the pixel count: UNet 677 + ControlNet 233 GFLOP per
evaluation, VAE encode 1.1 and decode 2.5 TFLOP), TFLOP/s achieved, that as a share of the bound (the issue's
~40 TFLOP per face at ~800 TFLOP/s dense bf16/fp16 on an H100/H200), and peak memory. TFLOP are given only where
the work is known from the mode (not for guidance objectives or training steps).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EVAL_TFLOP, ENC_TFLOP, DEC_TFLOP = 0.91, 1.1, 2.5  # per face at 512²
PEAK_TFLOPS = 800.0  # dense bf16/fp16 matrix throughput of an H100/H200 (the bound: 40 TFLOP in ~50 ms)


def tflop(evals: float, encode: bool, size: int) -> float:
    """TFLOP per face: ``evals`` ControlNet+UNet evaluations, optional VAE encode, one decode, at ``size``²."""
    return (evals * EVAL_TFLOP + (ENC_TFLOP if encode else 0.0) + DEC_TFLOP) * (size / 512) ** 2


def row(name: str, s_face: float, flop: float | None = None, peak: str = "-") -> str:
    if flop is None:
        achieved = share = "-"
    else:
        achieved = f"{flop / s_face:.1f}"
        share = f"{100 * flop / s_face / PEAK_TFLOPS:.1f}%"
    flop_s = "-" if flop is None else f"{flop:.2f}"
    return f"| {name} | {s_face:.4f} | {1 / s_face:.2f} | {flop_s} | {achieved} | {share} | {peak} |"


def pipeline_rows(text: str) -> list[str]:
    rows = []
    cases = re.findall(r"RATIO authface/diffusers = .*?batch (\d+); steps (\d+); size (\d+)x", text)
    faces = re.findall(r"PER FACE authface ([\d.]+) s/face .*?diffusers ([\d.]+) s/face", text)
    mems = re.findall(r"MEMORY peak \w+: authface ([\d.]+) MiB .*?diffusers ([\d.]+) MiB", text)
    strength = float((re.search(r"--strength ([\d.]+)", text) or [None, 0.7])[1])
    for i, ((b, steps, size), (ours, theirs)) in enumerate(zip(cases, faces)):
        mem = mems[i] if i < len(mems) else ("-", "-")
        evals = 2 * int(int(steps) * strength)  # CFG doubles every step
        flop = tflop(evals, True, int(size))
        rows.append(row(f"AuthFace {size}², {steps} steps ×{strength} CFG, batch {b}", float(ours), flop,
                        f"{mem[0]} MiB"))  # fmt: skip
        rows.append(row(f"diffusers ControlNet img2img, same, batch {b}", float(theirs), flop, f"{mem[1]} MiB"))
    return rows


def speed_rows(text: str) -> list[str]:
    head = re.search(r"model (\w+), (\d+)², batch (\d+)", text)
    if head is None:
        return []
    size, batch = int(head[2]), int(head[3])
    rows = []
    for mode, _call, face, _fps, calls, peak in re.findall(
        r"SPEED (\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\S+)", text
    ):
        evals = int(calls) * (2 if mode.startswith("20") else 1) / batch  # the 20-step modes run CFG
        flop = tflop(evals, mode == "1-step", size)
        rows.append(row(f"{mode} ({head[1]}, {size}², batch {batch})", float(face), flop,
                        "-" if peak == "-" else f"{peak} MiB"))  # fmt: skip
    return rows


def guidance_rows(text: str) -> list[str]:
    return [row(f"guidance: {name.strip()}", float(face))
            for name, face in re.findall(r"^\s+(\S[^\n]*?)\s+per call: median [\d.]+ s \(([\d.]+) s/face", text,
                                         re.M)]  # fmt: skip


def train_rows(text: str) -> list[str]:
    return [row(f"training: {name.strip()} (s/step)", float(ms) / 1e3)
            for name, ms in re.findall(r"^\s+(\S[^\n]*?)\s+([\d.]+) ms/step \(", text, re.M)]  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--seconds", type=int, default=None, help="wall time of the suite, for the footer")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    logs = {f.stem: f.read_text(errors="replace") for f in sorted(folder.glob("*.log"))}
    device = next((m[1] for t in logs.values() if (m := re.search(r"device: ([^\n]+)", t))), "see the logs")
    print(f"# AuthFace GPU suite\n\ndevice: {device}\n")
    print("| case | s/face | faces/s | TFLOP/face | TFLOP/s | of ~800 TFLOP/s | peak memory |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, text in logs.items():
        parse = {"pipeline": pipeline_rows, "guidance": guidance_rows, "train": train_rows}.get(
            name, speed_rows if name.startswith("speed") else None
        )
        for line in parse(text) if parse else []:
            print(line)
    print("\nTraining rows give seconds per optimiser step (batch in train.log), not per face. SDXL: not measured "
          "(no SDXL benchmark yet).")  # fmt: skip
    for name, text in logs.items():
        ratios = re.findall(r"^RATIO [^\n]+", text, re.M)
        if ratios:
            print(f"\n{name}:\n" + "\n".join(f"- `{r}`" for r in ratios))
    if args.seconds is not None:
        print(f"\nsuite wall time: {args.seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
