"""Synthetic degradations: clean high-quality (HQ) faces -> low-quality (LQ) faces.

Used (1) to make training pairs on the fly and (2) to build CelebA-Test-style synthetic benchmarks, where every
sampled parameter is recorded so a benchmark can be rebuilt and verified exactly. Every function is pure:
randomness comes only from an explicit :class:`numpy.random.Generator` argument (never the global NumPy RNG, never
OpenCV's RNG), so the same seed gives byte-identical output.

* :mod:`.kernels` -- :func:`gaussian_kernel` (iso / aniso + rotation), :func:`generalized_gaussian_kernel`,
  :func:`plateau_kernel`, :func:`sinc_kernel` (circular low-pass), :func:`motion_kernel`, :func:`random_kernel`
  and :func:`kernel_from_params`: ``float32``, odd size, sum 1 (after BasicSR's kernel generators).
* :mod:`.ops` -- :func:`apply_kernel`, :func:`resize`, :func:`add_gaussian_noise`, :func:`add_poisson_noise`,
  :func:`jpeg`, :func:`color_shift`, :func:`color_jitter` / :func:`adjust_color`, :func:`to_gray`,
  :func:`usm_sharpen`: one version each, on ``float32`` RGB ``(H, W, 3)`` in ``[0, 1]`` (:func:`to_float`
  converts ``uint8``; :func:`resize` also keeps ``uint8``).
* :mod:`.config` -- :class:`DegradationConfig` (every range configurable; a config of :mod:`authface.config`)
  and the named :data:`PRESETS` (``gfpgan``, ``codeformer``, ``realesrgan``, ``mild``).
* :mod:`.sampling` -- :func:`sample_params` (draws every random choice into a JSON-ready dict, without touching an
  image), :func:`degrade_from_params` (applies such a dict; deterministic) and :func:`degrade` (both), ``uint8`` RGB
  in and out. The LQ always comes back at the HQ size (downsampled, then resized back, as GFPGAN / CodeFormer do
  for training), so ``degrade(hq) -> lq`` pairs are pixel-aligned.

Only NumPy, OpenCV and PyYAML are imported at import time.
"""

from authface.imaging import RESIZE_MODES

from .checks import check_image, check_rng, to_float
from .config import PRESETS, DegradationConfig, get_preset, resolve_config
from .kernels import (
    KERNEL_KINDS,
    KernelKind,
    gaussian_kernel,
    generalized_gaussian_kernel,
    kernel_from_params,
    motion_kernel,
    plateau_kernel,
    random_kernel,
    sinc_kernel,
)
from .ops import (
    COLOR_ADJUSTMENTS,
    add_gaussian_noise,
    add_poisson_noise,
    adjust_color,
    apply_kernel,
    color_jitter,
    color_shift,
    jpeg,
    resize,
    sample_color_jitter,
    to_gray,
    usm_sharpen,
)
from .sampling import PARAMS_VERSION, degrade, degrade_from_params, sample_params

__all__ = [
    "COLOR_ADJUSTMENTS",
    "KERNEL_KINDS",
    "PARAMS_VERSION",
    "PRESETS",
    "RESIZE_MODES",
    "DegradationConfig",
    "KernelKind",
    "add_gaussian_noise",
    "add_poisson_noise",
    "adjust_color",
    "apply_kernel",
    "check_image",
    "check_rng",
    "color_jitter",
    "color_shift",
    "degrade",
    "degrade_from_params",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "get_preset",
    "jpeg",
    "kernel_from_params",
    "motion_kernel",
    "plateau_kernel",
    "random_kernel",
    "resize",
    "resolve_config",
    "sample_color_jitter",
    "sample_params",
    "sinc_kernel",
    "to_float",
    "to_gray",
    "usm_sharpen",
]
