"""FFHQ-style face alignment from 5 landmarks.

Images are ``uint8`` RGB ``(H, W, 3)`` arrays. Affines are ``(2, 3)`` float64
matrices mapping *image* pixel coordinates to *crop* pixel coordinates (the
``M`` of ``cv2.warpAffine``), pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np

from .detect import _check_rgb_image

__all__ = [
    "FFHQ_TEMPLATE_512",
    "face_template",
    "estimate_affine",
    "align_face",
    "aligned_input_affine",
]

#: facexlib's FFHQ 5-point template for 512x512 crops (image-left eye, image-right
#: eye, nose tip, image-left mouth corner, image-right mouth corner).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
FFHQ_TEMPLATE_512.setflags(write=False)


def _check_crop_size(crop_size: int) -> int:
    if int(crop_size) != crop_size or crop_size < 8:
        raise ValueError(f"crop_size must be an integer >= 8, got {crop_size!r}")
    return int(crop_size)


def _warp(
    src: np.ndarray,
    matrix: np.ndarray,
    dsize: tuple[int, int],
    flags: int,
    border_mode: int,
    max_shrink: float = 0.5,
) -> np.ndarray:
    """``cv2.warpAffine(src, matrix, dsize)`` with anti-aliasing for shrinking warps.

    ``warpAffine`` point-samples: shrinking by more than ~2x aliases (jagged
    hair, moire). When the warp's scale ``s = sqrt(|det|)`` is below
    ``max_shrink``, the part of ``src`` the output needs is first reduced with
    ``cv2.INTER_AREA`` to ``s / max_shrink`` of its size, so the remaining warp
    shrinks by ``max_shrink`` at most. Otherwise this is a plain warp.
    """
    import cv2

    matrix = np.asarray(matrix, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    h, w = src.shape[:2]
    if scale >= max_shrink:
        return cv2.warpAffine(src, matrix, dsize, flags=flags, borderMode=border_mode)
    ratio = scale / max_shrink
    # source region seen by the output (plus room for the kernel), clipped to src
    inverse = cv2.invertAffineTransform(matrix)
    dw, dh = dsize
    corners = np.array([[-0.5, -0.5, 1], [dw - 0.5, -0.5, 1], [-0.5, dh - 0.5, 1], [dw - 0.5, dh - 0.5, 1]])
    pts = corners @ inverse.T
    pad = int(np.ceil(6.0 / ratio)) + 1
    x0 = max(int(np.floor(pts[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + pad + 1, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + pad + 1, h)
    if x0 >= x1 or y0 >= y1:  # output sees only border: nothing to anti-alias
        return cv2.warpAffine(src, matrix, dsize, flags=flags, borderMode=border_mode)
    nw = max(int(round((x1 - x0) * ratio)), 1)
    nh = max(int(round((y1 - y0) * ratio)), 1)
    small = cv2.resize(np.ascontiguousarray(src[y0:y1, x0:x1]), (nw, nh), interpolation=cv2.INTER_AREA)
    rx, ry = nw / (x1 - x0), nh / (y1 - y0)
    # small pixel x' = (x - x0 + 0.5) * rx - 0.5  ->  x = x' / rx + x0 + 0.5 / rx - 0.5
    to_src = np.array([[1 / rx, 0, x0 + 0.5 / rx - 0.5], [0, 1 / ry, y0 + 0.5 / ry - 0.5], [0, 0, 1]])
    return cv2.warpAffine(small, matrix @ to_src, dsize, flags=flags, borderMode=border_mode)


def face_template(crop_size: int = 512) -> np.ndarray:
    """The FFHQ template scaled to ``crop_size`` (float32 ``(5, 2)``, a new array)."""
    crop_size = _check_crop_size(crop_size)
    return (FFHQ_TEMPLATE_512 * np.float32(crop_size / 512.0)).astype(np.float32)


def estimate_affine(landmarks: np.ndarray, crop_size: int = 512) -> np.ndarray:
    """Similarity transform (rotation, uniform scale, translation) taking the
    5 landmarks onto the template, as a float64 ``(2, 3)`` matrix.

    Uses ``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)`` like facexlib.
    Raises ``ValueError`` for malformed or degenerate landmarks.
    """
    import cv2

    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"landmarks contain NaN/inf: {pts.tolist()}")
    affine, _ = cv2.estimateAffinePartial2D(pts, face_template(crop_size), method=cv2.LMEDS)
    if affine is None or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:, :2])) < 1e-8:
        raise ValueError(
            f"could not estimate an alignment affine from landmarks {np.round(pts, 2).tolist()} "
            "(degenerate or collinear points); check the detector output"
        )
    return affine.astype(np.float64)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, crop_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face onto the FFHQ template.

    Args:
        image: ``uint8`` RGB ``(H, W, 3)``.
        landmarks: ``(5, 2)`` points in image pixels (see :class:`~authface.face.detect.Face`).
        crop_size: output side ``S``.

    Returns:
        ``(crop, affine)``: ``uint8`` RGB ``(S, S, 3)`` crop and the float64
        ``(2, 3)`` image-to-crop affine (give it to
        :func:`authface.face.paste.paste_faces`).

    Lanczos interpolation (the best image -> crop -> image round trip of the
    filters OpenCV offers for warps, measured on a real photo); faces larger
    than ~2x the crop are area-reduced first so the crop does not alias.
    Areas outside the image are filled by mirroring (``BORDER_REFLECT_101``)
    so the model never sees flat bars.
    """
    import cv2

    image = _check_rgb_image(image)
    crop_size = _check_crop_size(crop_size)
    affine = estimate_affine(landmarks, crop_size)
    crop = _warp(
        np.ascontiguousarray(image),
        affine,
        (crop_size, crop_size),
        flags=cv2.INTER_LANCZOS4,
        border_mode=cv2.BORDER_REFLECT_101,
    )
    return crop, affine


def aligned_input_affine(image_shape: tuple[int, ...], crop_size: int = 512) -> np.ndarray:
    """Affine for inputs that already are aligned faces (``--aligned``).

    The whole image is the face; the returned float64 ``(2, 3)`` matrix
    resizes it to ``crop_size`` x ``crop_size`` with the same pixel-centre
    convention as ``cv2.resize`` (``x' = (x + 0.5) * S / W - 0.5``), and is
    exactly the identity when the image already is ``S`` x ``S``.
    ``image_shape`` is ``(H, W)`` or ``(H, W, C)``.
    """
    crop_size = _check_crop_size(crop_size)
    if len(image_shape) < 2 or image_shape[0] < 1 or image_shape[1] < 1:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C) with H, W >= 1, got {image_shape!r}")
    h, w = int(image_shape[0]), int(image_shape[1])
    sx, sy = crop_size / w, crop_size / h
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]], dtype=np.float64)
