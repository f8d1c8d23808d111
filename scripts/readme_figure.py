"""Make the README's figure of the face stage on a real photo: what runs without model weights, shown honestly.

    python scripts/readme_figure.py examples/astronaut_degraded.jpg -o docs/images/face_stage.jpg

Panels: the photo with each detection (box, 5 landmarks), the FFHQ-aligned crop the diffusion model receives, the
feathered paste mask, and the photo with the crop pasted back (no restoration: the crop is pasted unchanged, which
shows the alignment round trip is seamless). No diffusion output is shown: that needs real weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def make_figure(photo: Path, panel: int = 320) -> np.ndarray:
    from authface import io
    from authface.face import create_detector, paste_mask
    from authface.face.stage import FaceStage

    rgb = io.read_image(photo).rgb
    stage = FaceStage(create_detector("dlib"), crop_size=512)
    faces = stage.align(rgb)
    if not faces:
        raise SystemExit(f"{photo}: no face found")
    shown = rgb.copy()
    for f in faces:
        x0, y0, x1, y1 = (int(v) for v in f.face.box)
        cv2.rectangle(shown, (x0, y0), (x1, y1), (0, 255, 0), 2)
        for x, y in f.face.landmarks:
            cv2.circle(shown, (int(x), int(y)), 4, (255, 0, 0), -1)
    mask = paste_mask(faces[0].affine, 512, rgb.shape[:2])
    mask_rgb = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    pasted = stage.paste(rgb, [f.crop for f in faces], faces, upscale=1)

    def fit(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, (panel, panel), interpolation=cv2.INTER_AREA)

    panels = [
        _label(fit(shown), "1. detect: box + 5 landmarks"),
        _label(fit(faces[0].crop), "2. align: FFHQ 512 crop"),
        _label(fit(mask_rgb), "3. feathered paste mask"),
        _label(fit(pasted), "4. paste back (crop unchanged)"),
    ]
    return np.concatenate(panels, axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/face_stage.jpg"))
    args = parser.parse_args(argv)
    from authface import io

    io.write_image(args.output, make_figure(args.photo), quality=88)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
