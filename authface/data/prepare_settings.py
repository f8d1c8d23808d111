"""Settings of ``authface prepare`` (:class:`PrepareSettings`, a config of :mod:`authface.config`) and its
usage error :class:`PrepareError`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import io
from ..config import ConfigError, DetectorName
from ..config.base import choices

__all__ = ["PrepareError", "PrepareSettings", "parse_quality_spec"]


class PrepareError(ConfigError):
    """A usage problem found before any photo is processed: a bad setting, input or dataset folder (the command
    exits 2). A :class:`~authface.config.ConfigError`, hence a ValueError."""


@dataclass
class PrepareSettings:
    """Everything that decides what ``prepare`` keeps and writes (saved in ``prepare_config.json``).

    Loadable with ``authface.config.load_config(PrepareSettings, yaml, ["crop_size=256"])``; :meth:`validate`
    checks the ranges (the messages name the command-line option).

    Attributes:
        crop_size: side of the aligned crops in pixels (FFHQ template scaled to it), >= 64.
        min_face_size: faces whose detected size ``sqrt(box w * box h)`` is smaller are rejected ``too_small``.
        detector / detector_model / upsample: see :func:`authface.face.create_detector` (upsample: dlib only).
        quality: scorer specs ``NAME`` or ``NAME=MODEL_PATH`` (:func:`authface.models.quality.create_quality_scorer`);
            the first one's normalised score is ``quality_score``.
        caption_template: caption of every face (None: no caption), also the fallback for faces missing from
            ``captions``.
        captions: CSV with a path column (path relative to its SRC, or basename, or absolute) and ``caption_column``.
        caption_path_column: the CSV's path column (None: the first of ``CAPTION_PATH_COLUMNS`` present).
        dedupe_threshold: a face whose pHash is within this Hamming distance (of 64 bits) of a kept face is a
            duplicate; negative disables deduplication.
        max_faces: keep at most N faces per photo (largest first); None = all.
        device: device of the quality scorers.
        recursive: walk sub-folders of SRC folders.
        max_pixels: refuse larger images (decompression bombs) as unreadable.
    """

    crop_size: int = 512
    min_face_size: float = 64.0
    detector: DetectorName = "dlib"
    detector_model: str | None = None
    upsample: int = 1
    quality: list[str] = field(default_factory=lambda: ["sharpness"])
    caption_template: str | None = None
    captions: str | None = None
    caption_column: str = "text"
    caption_path_column: str | None = None
    dedupe_threshold: int = 6
    max_faces: int | None = None
    aligned: bool = False
    """Inputs already are aligned face crops (FFHQ, CelebA-HQ): no detection, each image is one face resized to
    ``crop_size`` (its size counts as the face size)."""
    device: str = "cpu"
    recursive: bool = True
    max_pixels: int = io.DEFAULT_MAX_PIXELS

    def validate(self) -> None:
        """Raise :class:`PrepareError` naming the option, the value and the fix."""
        if isinstance(self.crop_size, bool) or int(self.crop_size) != self.crop_size or self.crop_size < 64:
            raise PrepareError(f"--crop-size must be an integer >= 64, got {self.crop_size!r} (e.g. 512)")
        if not math.isfinite(float(self.min_face_size)) or self.min_face_size < 0:
            raise PrepareError(f"--min-face-size must be >= 0 pixels, got {self.min_face_size!r}")
        if self.detector not in choices(DetectorName):
            raise PrepareError(f"--detector must be one of {', '.join(choices(DetectorName))}, got {self.detector!r}")
        if int(self.dedupe_threshold) != self.dedupe_threshold or self.dedupe_threshold > 64:
            raise PrepareError(f"--dedupe-threshold must be an integer <= 64 (negative disables it), got "
                               f"{self.dedupe_threshold!r}")  # fmt: skip
        if self.max_faces is not None and (int(self.max_faces) != self.max_faces or self.max_faces < 1):
            raise PrepareError(f"--max-faces must be a positive integer, got {self.max_faces!r}")
        if int(self.upsample) != self.upsample or self.upsample < 0:
            raise PrepareError(f"--upsample must be an integer >= 0, got {self.upsample!r}")
        if int(self.max_pixels) != self.max_pixels or self.max_pixels < 1:
            raise PrepareError(f"--max-pixels must be a positive integer, got {self.max_pixels!r}")
        if not self.quality:
            raise PrepareError("--quality needs at least one scorer, e.g. --quality sharpness")
        names = [parse_quality_spec(q)[0] for q in self.quality]
        if len(set(names)) != len(names):
            raise PrepareError(f"--quality names a scorer twice: {','.join(self.quality)}")
        if self.captions is not None and not Path(self.captions).expanduser().is_file():
            raise PrepareError(f"--captions {self.captions}: no such file (a CSV with a path and a caption column)")

    @property
    def primary_quality(self) -> str:
        """Name of the first scorer (its normalised score is ``quality_score``)."""
        return parse_quality_spec(self.quality[0])[0]


def parse_quality_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME"`` or ``"NAME=MODEL_PATH"`` -> ``(name, model_path or None)``; raises :class:`PrepareError`."""
    text = str(spec).strip()
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not name or (sep and not path):
        raise PrepareError(f"--quality entry {spec!r} must be NAME or NAME=MODEL_PATH, e.g. sharpness or "
                           "pyiqa:topiq_nr-face=/models/topiq_nr-face.pth")  # fmt: skip
    return name, (path or None)
