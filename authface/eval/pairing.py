"""Pairing result folders: predictions with GT / LQ / reference images by relative path, extension ignored.

:func:`pair_folders` returns a :class:`Pairing` (or raises :class:`PairingError` naming the files that do not pair);
:func:`check_pairs` reads every paired image (and inpainting mask) once and raises :class:`EvalInputError` listing
every unreadable image, size mismatch and unusable mask with its fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from authface import io

from .masks import MaskError, read_mask

__all__ = [
    "EvalInputError",
    "Pairing",
    "PairingError",
    "check_pairs",
    "image_key",
    "index_folder",
    "pair_folders",
]


class PairingError(ValueError):
    """Folders that cannot be paired (missing counterparts, ambiguous names). The message names the files."""


class EvalInputError(ValueError):
    """Unreadable images or size mismatches; ``problems`` lists one line per file."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} input problem(s):\n  {shown}{more}")


def image_key(rel: str | os.PathLike) -> str:
    """Pairing key of a relative image path: POSIX path without the extension (``a/b.png`` -> ``a/b``)."""
    return Path(rel).with_suffix("").as_posix()


_IGNORED_FILES = {"manifest.jsonl", "metadata.jsonl", "thumbs.db", "desktop.ini"}


def index_folder(folder: str | os.PathLike, what: str, warnings: list[str]) -> dict[str, Path]:
    """key (:func:`image_key`) -> image path for every image under ``folder`` (recursive).

    Files with other extensions are listed in ``warnings`` (a results folder may hold logs). ``what`` names the
    folder in messages. Raises :class:`PairingError` when the folder is missing or two images share a key.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise PairingError(f"{what} folder {str(root)!r} does not exist or is not a folder")
    try:
        found = io.discover_inputs([str(root)])
    except FileNotFoundError as exc:
        raise PairingError(f"{what} folder {root}: {exc}") from None
    index: dict[str, Path] = {}
    clashes: list[str] = []
    for src, rel in found:
        key = image_key(rel)
        if key in index:
            clashes.append(f"{index[key]} and {src}")
            continue
        index[key] = src
    if clashes:
        raise PairingError(
            f"{what} folder {root}: images differing only by extension cannot be paired: {'; '.join(clashes[:5])}"
            " -- keep one of each"
        )
    others = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for n in filenames:
            if (
                n.startswith(".")
                or n.lower() in _IGNORED_FILES
                or os.path.splitext(n)[1].lower() in io.IMAGE_EXTENSIONS
            ):
                continue
            others.append(os.path.relpath(os.path.join(dirpath, n), root))
    if others:
        warnings.append(
            f"{what} folder {root}: ignored {len(others)} non-image file(s): {', '.join(sorted(others)[:5])}"
        )
    return index


def _list_problem(title: str, paths: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(paths[:limit]) + (f", ... ({len(paths)} in all)" if len(paths) > limit else "")
    return f"{title}: {shown}"


@dataclass
class Pairing:
    """Keys (relative paths without extension, sorted) and the file of each key in every folder."""

    keys: list[str]
    preds: dict[str, dict[str, Path]]
    gt: dict[str, Path] | None = None
    lq: dict[str, Path] | None = None
    reference: dict[str, list[Path]] | None = None
    warnings: list[str] = field(default_factory=list)
    masks: dict[str, Path] | None = None
    """Inpainting masks by key (white = filled region); keys without a mask (``allow_missing``) are absent."""

    @staticmethod
    def subset(key: str) -> str:
        """Top-level subfolder of a key ('' for images at the top level)."""
        return key.split("/", 1)[0] if "/" in key else ""


def pair_folders(
    preds: Mapping[str, str | os.PathLike],
    gt: str | os.PathLike | None = None,
    lq: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    allow_missing: bool = False,
    masks: str | os.PathLike | None = None,
) -> Pairing:
    """Pair prediction folders with GT / LQ / reference / mask folders by relative path, extension ignored.

    The image set is the GT's (else the LQ's, else the first prediction folder's). Every prediction folder and the
    LQ folder must hold exactly that set: a missing or an extra image is a :class:`PairingError` naming the files,
    unless ``allow_missing``, which evaluates the intersection and records a warning. Reference photos pair by key
    (``ref/<key>.*``), else by identity folder: all images in ``ref/<name of the image's folder>/`` (their mean
    embedding is the identity target). Every image needs its mask in ``masks`` (a missing one is a
    :class:`PairingError`, or with ``allow_missing`` a warning and no region metrics for that image); masks without
    an image are ignored (a warning).
    """
    warnings: list[str] = []
    pred_idx = {name: index_folder(path, f"prediction '{name}'", warnings) for name, path in preds.items()}
    gt_idx = index_folder(gt, "GT", warnings) if gt is not None else None
    lq_idx = index_folder(lq, "LQ", warnings) if lq is not None else None
    if gt_idx is not None:
        base, base_name, base_dir = gt_idx, "GT", gt
    elif lq_idx is not None:
        base, base_name, base_dir = lq_idx, "LQ", lq
    elif pred_idx:
        first = next(iter(pred_idx))
        base, base_name, base_dir = pred_idx[first], f"prediction '{first}'", preds[first]
    else:
        raise PairingError("nothing to evaluate: give at least one --pred folder (or --lq with a --baseline)")
    keys = set(base)
    problems: list[str] = []
    others = [(f"prediction '{n}'", preds[n], idx) for n, idx in pred_idx.items()]
    if lq_idx is not None and base is not lq_idx:
        others.append(("LQ", lq, lq_idx))
    for label, folder, idx in others:
        if idx is base:
            continue
        missing = sorted(keys - set(idx))
        extra = sorted(set(idx) - keys)
        if missing:
            problems.append(_list_problem(
                f"{label} ({folder}) has no image for {len(missing)} {base_name} image(s)",
                [str(base[k]) for k in missing],
            ))  # fmt: skip
        if extra:
            problems.append(_list_problem(
                f"{label} ({folder}) has {len(extra)} image(s) with no {base_name} counterpart in {base_dir}",
                [str(idx[k]) for k in extra],
            ))  # fmt: skip
        if allow_missing:
            keys &= set(idx)
    if problems:
        if not allow_missing:
            raise PairingError(
                "folders do not pair (pairing is by relative path, extension ignored):\n  "
                + "\n  ".join(problems)
                + "\n  fix: add or remove the files named, or pass --allow-missing to evaluate the common images"
            )
        warnings.extend(p + " (skipped: --allow-missing)" for p in problems)
    if not keys:
        raise PairingError(f"no image is common to all folders ({', '.join(map(str, preds.values()))})")
    ref_idx = None
    if reference is not None:
        ref_idx = _pair_references(reference, sorted(keys), allow_missing, warnings)
    mask_idx = _pair_masks(masks, base, sorted(keys), allow_missing, warnings) if masks is not None else None
    return Pairing(sorted(keys), pred_idx, gt_idx, lq_idx, ref_idx, warnings, mask_idx)


def _pair_masks(
    masks: str | os.PathLike, base: dict[str, Path], keys: list[str], allow_missing: bool, warnings: list[str]
) -> dict[str, Path]:
    """key -> mask file (same relative path, extension ignored)."""
    idx = index_folder(masks, "mask", warnings)
    missing = [k for k in keys if k not in idx]
    if missing:
        msg = _list_problem(
            f"mask folder {masks} has no mask for {len(missing)} image(s) (masks pair by relative path, extension "
            "ignored)",
            [str(base[k]) for k in missing],
        )
        if not allow_missing:
            raise PairingError(
                msg + "\n  fix: add the masks, or pass --allow-missing (no region metrics for them)"
            )
        warnings.append(msg + " (no region metrics for them: --allow-missing)")
    extra = sorted(set(idx) - set(keys))
    if extra:
        warnings.append(
            _list_problem(f"mask folder {masks}: {len(extra)} mask(s) with no image, ignored", extra)
        )
    return {k: idx[k] for k in keys if k in idx}


def _pair_references(
    reference: str | os.PathLike, keys: list[str], allow_missing: bool, warnings: list[str]
) -> dict[str, list[Path]]:
    """key -> reference photos: ``ref/<key>.*``, else every image of ``ref/<name of the key's folder>/``."""
    ref_all = index_folder(reference, "reference", warnings)
    by_folder: dict[str, list[Path]] = {}
    for k, p in ref_all.items():
        by_folder.setdefault(k.split("/", 1)[0] if "/" in k else "", []).append(p)
    ref_idx: dict[str, list[Path]] = {}
    missing: list[str] = []
    for k in keys:
        if k in ref_all:
            ref_idx[k] = [ref_all[k]]
        else:
            parent = Path(k).parent.name
            if parent and parent in by_folder:
                ref_idx[k] = sorted(by_folder[parent])
            else:
                missing.append(k)
    if missing:
        msg = _list_problem(
            f"reference folder {reference} has no photo for {len(missing)} image(s) (looked for "
            "ref/<same relative path>.* and ref/<folder of the image>/*)",
            missing,
        )
        if not allow_missing:
            raise PairingError(msg + "\n  fix: add reference photos or pass --allow-missing")
        warnings.append(msg + " (IDS/Deg left empty for them)")
    return ref_idx


def _size_problem(
    label: str, path: Path, size: tuple[int, int], gt: Path, gt_size: tuple[int, int], resize: bool
):
    """The problem (or None) of a prediction of ``size`` (H, W) whose GT has ``gt_size``."""
    (ph, pw), (gh, gw) = size, gt_size
    ok_aspect = abs(pw / ph - gw / gh) <= 0.01 * gw / gh
    if not resize:
        return (
            f"{label} {path}: {pw}x{ph} but GT {gt} is {gw}x{gh}; fix: resize the outputs to the GT size, or pass "
            "--resize-pred" + ("" if ok_aspect else " (not possible here: the aspect ratios differ)")
        )
    if not ok_aspect:
        return (
            f"{label} {path}: {pw}x{ph} cannot be resized to GT {gt} {gw}x{gh} (aspect ratios differ by more than "
            "1%): crop the outputs like the GT"
        )
    return None


def _check_mask(pairing: Pairing, key: str, size, max_pixels: int, problems: list[str], warnings: list[str]):
    if pairing.masks is None or key not in pairing.masks:
        return
    try:
        _, warning = read_mask(pairing.masks[key], size, max_pixels)
    except MaskError as exc:
        problems.append(str(exc))
        return
    if warning:
        warnings.append(warning)


def check_pairs(pairing: Pairing, max_pixels: int, resize_pred: bool = False) -> list[str]:
    """Read every paired image once: each must decode, each prediction must have its GT's size (or, with
    ``resize_pred``, its GT's aspect ratio within 1%), and each mask must pass
    :func:`~authface.eval.masks.read_mask` at the size of its GT (else its LQ). Returns the warnings (masks
    thresholded at 128).

    Raises:
        EvalInputError: listing every problem, one line per file, with the fix.
    """
    problems: list[str] = []
    warnings: list[str] = []
    for key in pairing.keys:
        gt_size = lq_size = None
        if pairing.gt is not None:
            try:
                gt_size = io.read_image(pairing.gt[key], max_pixels=max_pixels).rgb.shape[:2]
            except io.ImageReadError as exc:
                problems.append(f"GT {exc}")
        if pairing.lq is not None and key in pairing.lq:
            try:
                lq_size = io.read_image(pairing.lq[key], max_pixels=max_pixels).rgb.shape[:2]
            except io.ImageReadError as exc:
                problems.append(f"LQ {exc}")
        _check_mask(pairing, key, gt_size or lq_size, max_pixels, problems, warnings)
        for m, idx in pairing.preds.items():
            try:
                img = io.read_image(idx[key], max_pixels=max_pixels).rgb
            except io.ImageReadError as exc:
                problems.append(f"prediction '{m}' {exc}")
                continue
            if gt_size is not None and img.shape[:2] != gt_size:
                label = f"prediction '{m}'"
                problem = _size_problem(label, idx[key], img.shape[:2], pairing.gt[key], gt_size, resize_pred)
                if problem:
                    problems.append(problem)
    if problems:
        raise EvalInputError(problems)
    return warnings
