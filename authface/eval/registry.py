"""Which metrics exist, their options, and how a list of names becomes metric objects.

:class:`MetricOptions` holds the settings of ``authface eval``'s metrics (a dataclass of :mod:`authface.config`'s
mechanism: choices are ``Literal`` types, ranges are checked by ``validate()``). :func:`build_metrics` turns metric
names into per-image :class:`~authface.eval.base.Metric` objects, dataset-level metric names (FID, KID, NTIRE 2025:
computed by :func:`authface.eval.evaluate`) and ``{name: reason}`` for every metric that cannot run here. With
inpainting masks, ``psnr``, ``ssim``, ``l1`` and ``lpips`` also get their columns inside and outside the mask
(:class:`~authface.eval.masks.RegionMetric`), and the default metrics include ``l1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from authface.config import ConfigError, choices

from .base import Metric
from .common import have_module
from .face_metrics import IdentityMetric, LandmarkMetric, parse_judge
from .fr import FRBackend, FRMetric, resolve_fr_backend
from .lpips import LPIPS_HINT, LPIPSMetric
from .masks import REGION_KINDS, RegionMetric
from .nr import NTIRE2025_COMPONENTS, niqe_metric, pyiqa_column_name, pyiqa_metric, sharpness_metric

__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_METRICS",
    "LMDBox",
    "LMDPoints",
    "MetricOptions",
    "build_metrics",
]

#: The metrics used when none are named.
DEFAULT_METRICS = ("psnr", "ssim", "lpips", "ids", "lmd", "niqe", "sharpness", "fid")
#: Metric names understood without pyiqa; any other name is taken as a pyiqa no-reference metric.
BUILTIN_METRICS = (
    "psnr", "ssim", "psnr_y", "ssim_y", "l1", "lpips", "ids", "deg", "lmd", "niqe", "sharpness", "fid", "kid",
    "ntire2025",
)  # fmt: skip
#: dlib landmarks used by LMD: all 68, or 5 (eye centres, nose tip, mouth corners).
LMDPoints = Literal[68, 5]
#: dlib's face box for LMD: fixed on the aligned crop, or detected (HOG, falling back to the fixed box).
LMDBox = Literal["fixed", "detect"]


@dataclass
class MetricOptions:
    """Settings of the metrics (the CLI flags of ``authface eval``); paths are local files, nothing is downloaded.

    ``judge``: identity judge, ``dlib`` | ``arcface:PATH`` | ``arcface-onnx:PATH``. ``crop_border``: pixels dropped
    on each side for PSNR/SSIM (>= 0). ``device``: ``cpu`` | ``cuda[:N]`` | ``auto`` (torch metrics).
    """

    judge: str = "dlib"
    niqe_params: str | None = None
    lpips_weights: str | None = None
    lpips_backbone: str | None = None
    fid_inception: str | None = None
    fid_ref: str | None = None
    pyiqa_weights: dict[str, str] = field(default_factory=dict)
    crop_border: int = 0
    fr_backend: FRBackend = "auto"
    lmd_points: LMDPoints = 68
    lmd_box: LMDBox = "fixed"
    device: str = "cpu"

    def validate(self) -> None:
        """Raises :class:`authface.config.ConfigError` (a ValueError) naming the bad option and the fix."""
        try:
            parse_judge(self.judge)
        except ValueError as exc:
            raise ConfigError(f"judge: {exc}") from None
        if (
            isinstance(self.crop_border, bool)
            or not isinstance(self.crop_border, int)
            or self.crop_border < 0
        ):
            raise ConfigError(f"crop_border must be an integer >= 0, got {self.crop_border!r}")
        for name, tp in (("fr_backend", FRBackend), ("lmd_points", LMDPoints), ("lmd_box", LMDBox)):
            value = getattr(self, name)
            if value not in choices(tp) or isinstance(value, bool):
                raise ConfigError(f"{name} must be one of {', '.join(map(str, choices(tp)))}; got {value!r}")


class _Unavailable(Exception):
    def __init__(self, name: str, reason: str):
        super().__init__(reason)
        self.name, self.reason = name, reason


class _Builder:
    """Collects metric objects, dataset-level metrics and unavailable metrics while names are added."""

    def __init__(self, opts: MetricOptions, have_gt: bool, id_target: str | None, have_masks: bool = False):
        self.opts, self.have_gt, self.id_target, self.have_masks = opts, have_gt, id_target, have_masks
        self.metrics: list[Metric] = []
        self.set_metrics: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.seen: set[str] = set()
        self.fr_backend: str | None = None

    def add(self, raw: str) -> None:
        name = str(raw).strip().lower()
        force_pyiqa = name.startswith("pyiqa:")
        name = name.removeprefix("pyiqa:").strip()
        tag = ("pyiqa:" if force_pyiqa else "") + name
        if not name or tag in self.seen:
            return
        self.seen.add(tag)
        try:
            if force_pyiqa or name not in BUILTIN_METRICS:
                self.pyiqa(name)
            elif name in ("psnr", "ssim", "psnr_y", "ssim_y", "l1"):
                self.fr(name)
            elif name in ("fid", "kid"):
                self.fid(name)
            elif name == "ntire2025":
                self.set_metrics["ntire2025"] = ""
            else:
                {"lpips": self.lpips, "ids": self.identity, "deg": self.identity, "lmd": self.lmd,
                 "niqe": self.niqe, "sharpness": self.sharpness}[name]()  # fmt: skip
        except _Unavailable as u:
            self.unavailable[u.name] = u.reason

    def need_gt(self, label: str, why: str = "full-reference: needs --gt") -> None:
        if not self.have_gt:
            raise _Unavailable(label, why)

    def fr(self, name: str) -> None:
        self.need_gt(name.upper())
        try:
            self.fr_backend = self.fr_backend or resolve_fr_backend(self.opts.fr_backend, self.opts.device)
        except ImportError as exc:
            raise _Unavailable(name.upper(), str(exc)) from None
        metric = FRMetric(name, self.fr_backend, self.opts.crop_border, self.opts.device)
        self.metrics.append(metric)
        if self.have_masks and name in REGION_KINDS:
            self.metrics.append(
                RegionMetric(name, self.fr_backend, self.opts.device, crop_border=self.opts.crop_border,
                             base_info=metric.info if name == "ssim" else "")
            )  # fmt: skip

    def lpips(self) -> None:
        self.need_gt("LPIPS")
        if not self.opts.lpips_weights:
            raise _Unavailable("LPIPS", "no --lpips-weights given. " + LPIPS_HINT)
        try:
            metric = LPIPSMetric(self.opts.lpips_weights, self.opts.lpips_backbone, self.opts.device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise _Unavailable("LPIPS", str(exc)) from None
        self.metrics.append(metric)
        if self.have_masks:
            self.metrics.append(
                RegionMetric("lpips", device=self.opts.device, lpips_model=metric.model,
                             crop_border=self.opts.crop_border, base_info=metric.info)
            )  # fmt: skip

    def identity(self) -> None:
        if "identity" in self.seen:
            return
        self.seen.add("identity")
        if self.id_target is None:
            raise _Unavailable("IDS/Deg", "needs an identity target: --gt, --reference or --lq")
        try:  # a bad judge or weights path raises
            self.metrics.append(IdentityMetric(self.opts.judge, self.opts.device, self.id_target))
        except ImportError as exc:
            raise _Unavailable("IDS/Deg", str(exc)) from None

    def lmd(self) -> None:
        self.need_gt("LMD", "needs --gt (pixel-aligned landmarks)")
        try:
            self.metrics.append(LandmarkMetric(self.opts.lmd_points, self.opts.lmd_box))
        except (ImportError, OSError) as exc:
            raise _Unavailable("LMD", str(exc)) from None

    def niqe(self) -> None:
        if not self.opts.niqe_params:
            raise _Unavailable(
                "NIQE", "no --niqe-params given (BasicSR's niqe_pris_params.npz; nothing is downloaded)"
            )
        try:
            self.metrics.append(niqe_metric(self.opts.niqe_params, self.opts.device))
        except (OSError, ValueError) as exc:
            raise _Unavailable("NIQE", str(exc)) from None

    def sharpness(self) -> None:
        self.metrics.append(sharpness_metric(self.opts.device))

    def fid(self, name: str) -> None:
        ref = self.opts.fid_ref
        if not self.opts.fid_inception:
            raise _Unavailable(
                name.upper(),
                "no --fid-inception given (a local TorchScript Inception, e.g. inception-2015-12-05.pt)",
            )
        if not ref and not self.have_gt:
            raise _Unavailable(name.upper(), "needs a reference: --fid-ref DIR|STATS.npz, or --gt")
        if name == "kid" and ref and str(ref).endswith(".npz"):
            raise _Unavailable(
                "KID", "needs reference images (features), not precomputed mu/sigma statistics"
            )
        self.set_metrics[name] = ""

    def pyiqa(self, name: str) -> None:
        label = pyiqa_column_name(name)
        if not have_module("pyiqa"):
            raise _Unavailable(
                label, "pyiqa is not installed (pip install 'authface[iqa]'; it pulls torchvision)"
            )
        try:
            self.metrics.append(pyiqa_metric(name, self.opts.pyiqa_weights.get(name), self.opts.device))
        except Exception as exc:  # noqa: BLE001 - any pyiqa failure (offline download, unknown name) is a note
            raise _Unavailable(label, f"pyiqa could not create it: {type(exc).__name__}: {exc}") from None

    def check_ntire(self) -> None:
        """NTIRE 2025 needs all of its components; otherwise it is unavailable, naming the missing ones."""
        if "ntire2025" not in self.set_metrics:
            return
        have_cols = {c.name for m in self.metrics for c in m.columns}
        missing = [c for c in (*NTIRE2025_COMPONENTS, "NIQE") if c not in have_cols]
        if "fid" not in self.set_metrics:
            missing.append("FID")
        if missing:
            del self.set_metrics["ntire2025"]
            self.unavailable["NTIRE2025"] = (
                f"needs all of CLIPIQA, MANIQA, MUSIQ, QALIGN (pyiqa), NIQE and FID; missing: {', '.join(missing)} "
                "(add them to --metrics with their weights)"
            )


def build_metrics(
    names: Sequence[str] | None,
    opts: MetricOptions,
    have_gt: bool,
    id_target: str | None,
    have_masks: bool = False,
) -> tuple[list[Metric], dict[str, str], dict[str, str]]:
    """Metric objects for ``names`` (None: :data:`DEFAULT_METRICS`, plus ``l1`` with masks); ``pyiqa:NAME`` forces
    pyiqa's metric.

    ``id_target``: a description of the identity target (e.g. ``"the GT"``), None when there is none.
    ``have_masks``: inpainting masks are paired with the images: ``psnr``, ``ssim``, ``l1`` and ``lpips`` also
    report their value inside and outside the mask (``PSNR (mask)``, ``PSNR (unmasked)``, ...).
    Returns ``(metrics, set_metrics, unavailable)``: per-image metric objects; dataset-level metrics
    (``{"fid": info, "kid": info, "ntire2025": info}`` -- computed by :func:`authface.eval.evaluate`); and
    ``{name: reason}`` for every metric that cannot run here (missing weights, package, GT...).

    Raises:
        ValueError: a bad option value (unknown judge, ...; :class:`authface.config.ConfigError`), an identity
            judge whose weights cannot be loaded. An unavailable metric never raises.
    """
    opts.validate()
    builder = _Builder(opts, have_gt, id_target, have_masks)
    defaults = (*DEFAULT_METRICS[:2], "l1", *DEFAULT_METRICS[2:]) if have_masks else DEFAULT_METRICS
    for raw in names or defaults:
        builder.add(raw)
    builder.check_ntire()
    return builder.metrics, builder.set_metrics, builder.unavailable
