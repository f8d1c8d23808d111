"""Dataset-level realism: FID and KID from Inception-v3 pool features of a local TorchScript file.

:class:`InceptionFeatures` maps ``uint8`` RGB images to float64 ``(B, D)`` features (NVlabs'
``inception-2015-12-05.pt``, as used by StyleGAN2-ADA and clean-fid); :func:`frechet_distance` of their
:func:`gaussian_stats` gives FID, :func:`kernel_inception_distance` gives KID (clean-fid's unbiased polynomial-kernel
MMD). :func:`load_fid_reference` reads the reference (an image folder or precomputed ``mu``/``sigma``).
Nothing is downloaded; numpy only at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import groups_by_shape, to_torch_nchw

__all__ = [
    "FIDReference",
    "InceptionFeatures",
    "fid_scores",
    "frechet_distance",
    "gaussian_stats",
    "kernel_inception_distance",
    "kid_scores",
    "load_fid_reference",
]


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and sample covariance (D, D), float64 (N >= 2)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_stats needs at least 2 feature vectors (N, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between two Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S1^(1/2) S2 S1^(1/2)`` (numpy only, no scipy ``sqrtm``); negative round-off eigenvalues are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance: shapes differ: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}"
        )
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over random subsets
    (clean-fid's ``kernel_distance``; seeded, so deterministic)."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    d = f1.shape[1]
    m = min(len(f1), len(f2), int(max_subset_size))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images on each side, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(int(num_subsets)):
        x = f2[rng.choice(len(f2), m, replace=False)]
        y = f1[rng.choice(len(f1), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


class InceptionFeatures:
    """Inception-v3 pool features from a local TorchScript file (nothing downloaded, nothing unpickled).

    Made for NVlabs' ``inception-2015-12-05.pt`` (the TF-FID Inception as TorchScript, used by StyleGAN2-ADA and
    clean-fid): it takes float images on [0, 255] ``(B, 3, H, W)``, resizes them to 299 itself and returns 2048-d
    features with ``return_features=True``. Any TorchScript module that maps such a batch to ``(B, D)`` works
    (called without the keyword when it does not take it).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        import torch

        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"Inception weights not found: {str(p)!r}. Pass a local TorchScript Inception (e.g. "
                "inception-2015-12-05.pt from NVlabs' stylegan2-ada-pytorch metrics) with --fid-inception"
            )
        try:
            self.model = torch.jit.load(str(p), map_location=device).eval()
        except RuntimeError as exc:
            raise ValueError(
                f"{p}: not a TorchScript file ({exc}); FID needs a TorchScript Inception (.pt)"
            ) from exc
        self.path, self.device, self._kw = p, device, True

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB (H, W, 3) images -> float64 (B, D)."""
        import torch

        out: list[np.ndarray | None] = [None] * len(images)
        for idx in groups_by_shape(images):
            x = to_torch_nchw(np.stack([images[i] for i in idx]), torch.float32, self.device)
            with torch.no_grad():
                if self._kw:
                    try:
                        f = self.model(x, return_features=True)
                    except RuntimeError:
                        self._kw = False
                if not self._kw:
                    f = self.model(x)
            f = f.reshape(len(idx), -1).double().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = f[j]
        return np.stack(out)


@dataclass
class FIDReference:
    """What FID / KID compare with: features ``(N, D)`` (needed by KID) and/or Gaussian statistics, and a label."""

    feats: np.ndarray | None = None
    stats: tuple[np.ndarray, np.ndarray] | None = None
    desc: str = ""


def load_fid_reference(
    ref: str | os.PathLike,
    inception: InceptionFeatures,
    batch_size: int,
    max_pixels: int,
    warnings: list[str],
) -> FIDReference:
    """``--fid-ref``: precomputed statistics (``.npz`` with arrays ``mu`` and ``sigma``, the clean-fid /
    pytorch-fid format) or a folder of images (features computed here; non-image files noted in ``warnings``).

    Raises:
        ValueError: an ``.npz`` without ``mu`` and ``sigma``.
        authface.eval.PairingError: the folder does not exist or holds ambiguous names.
    """
    from authface import io

    from .pairing import index_folder

    path = Path(ref).expanduser()
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            if "mu" not in d.files or "sigma" not in d.files:
                raise ValueError(
                    f"{path}: FID statistics need arrays 'mu' and 'sigma' (clean-fid / pytorch-fid format)"
                )
            stats = (np.asarray(d["mu"], np.float64), np.asarray(d["sigma"], np.float64))
        return FIDReference(stats=stats, desc=f"precomputed statistics {path}")
    paths = list(index_folder(path, "FID reference", warnings).values())
    chunks = [
        inception([io.read_image(p, max_pixels=max_pixels).rgb for p in paths[i : i + batch_size]])
        for i in range(0, len(paths), batch_size)
    ]
    return FIDReference(feats=np.concatenate(chunks), desc=f"{len(paths)} images of {path}")


def _features(chunks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if len(chunks) else np.zeros((0, 1))


def fid_scores(
    feats: Mapping[str, Sequence[np.ndarray]], ref: FIDReference, warnings: list[str]
) -> dict[str, float]:
    """FID of each method's features (chunks of ``(n, D)``) against ``ref``; a method (or a reference) with fewer
    than 2 images gets no value and a warning."""
    stats = ref.stats
    if stats is None and ref.feats is not None and len(ref.feats) >= 2:
        stats = gaussian_stats(ref.feats)
    out = {}
    for method, chunks in feats.items():
        f = _features(chunks)
        if stats is None or len(f) < 2:
            warnings.append(f"FID of {method}: needs at least 2 images on each side")
            continue
        out[method] = frechet_distance(*gaussian_stats(f), *stats)
    return out


def kid_scores(
    feats: Mapping[str, Sequence[np.ndarray]], ref_feats: np.ndarray, warnings: list[str]
) -> dict[str, float]:
    """KID of each method's features (chunks of ``(n, D)``) against reference features; failures are warnings."""
    out = {}
    for method, chunks in feats.items():
        try:
            out[method] = kernel_inception_distance(_features(chunks), ref_feats)
        except ValueError as exc:
            warnings.append(f"KID of {method}: {exc}")
    return out
