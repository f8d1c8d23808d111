"""Synthetic occlusions for inpainting: face masks placed from the landmarks, old-photo damage, painted strokes.

Like :mod:`authface.data.degradations`, every function is pure and replayable: randomness comes only from an
explicit :class:`numpy.random.Generator`, the ``sample_*`` functions draw every choice into a JSON-ready dict, and
the ``apply_*`` functions turn the same dict into byte-identical output. Images are ``uint8`` RGB ``(H, W, 3)``;
masks are ``uint8 (H, W)`` in {0, 255}, white = occluded = the region to fill.

* :mod:`.facemask` -- :func:`occlude_face`, :func:`sample_mask_params`, :func:`apply_mask_params`,
  :func:`mask_coverage`: the :data:`MASK_STYLES` (surgical, n95, kn95, cloth, bandana, gaiter) shaped from 68
  landmarks (dlib order) or 5 (AuthFace's: eye centres, nose tip, mouth corners, placed through
  :data:`MEAN_FACE_68`), with colour, pattern, fabric texture, folds, shading, straps and valve.
* :mod:`.damage` -- :func:`damage_photo`, :func:`sample_damage_params`, :func:`apply_damage_params`,
  :func:`damage_mask`: the :data:`DAMAGE_KINDS` (scratches, creases, tears, stains) with their mask, and the
  :data:`GLOBAL_DAMAGE` (gray, yellowing, fading, grain) without one.
* :mod:`.paint` -- :func:`paint_strokes`, :func:`sample_paint_params`, :func:`apply_paint_params`,
  :func:`paint_mask`: free-form brush strokes of flat paint (mostly white), the region a user paints over a face.
* :mod:`.settings` -- :class:`FaceMaskSettings`, :class:`DamageSettings`, :class:`PaintSettings`: every range,
  configs of :mod:`authface.config` (``load_config(DamageSettings, "damage.yaml", ["scratch_count=[1, 4]"])``).
* :mod:`.geometry`, :mod:`.shapes`, :mod:`.texture` -- landmarks and face frame, mask outlines, fabric.

Only NumPy and OpenCV are imported (OpenCV when drawing).

    >>> import numpy as np
    >>> from authface.data.occlusions import occlude_face, apply_mask_params
    >>> from authface.face import face_template
    >>> face = np.full((512, 512, 3), 128, np.uint8)
    >>> occluded, mask, params = occlude_face(face, face_template(512), np.random.default_rng(0), "surgical")
    >>> bool((apply_mask_params(face, params)[0] == occluded).all())
    True
"""

from .damage import (
    DAMAGE_PARAMS_VERSION,
    apply_damage_params,
    damage_mask,
    damage_photo,
    sample_damage_params,
)
from .facemask import MASK_PARAMS_VERSION, apply_mask_params, mask_coverage, occlude_face, sample_mask_params
from .geometry import MEAN_FACE_68, check_landmarks, face_region, landmarks_68
from .paint import PAINT_PARAMS_VERSION, apply_paint_params, paint_mask, paint_strokes, sample_paint_params
from .settings import (
    DAMAGE_KINDS,
    GLOBAL_DAMAGE,
    MASK_STYLES,
    DamageKind,
    DamageSettings,
    FaceMaskSettings,
    MaskStyle,
    PaintSettings,
)

__all__ = [
    "DAMAGE_KINDS",
    "DAMAGE_PARAMS_VERSION",
    "GLOBAL_DAMAGE",
    "MASK_PARAMS_VERSION",
    "MASK_STYLES",
    "MEAN_FACE_68",
    "DamageKind",
    "DamageSettings",
    "FaceMaskSettings",
    "MaskStyle",
    "PAINT_PARAMS_VERSION",
    "PaintSettings",
    "apply_damage_params",
    "apply_mask_params",
    "apply_paint_params",
    "check_landmarks",
    "damage_mask",
    "damage_photo",
    "face_region",
    "landmarks_68",
    "mask_coverage",
    "occlude_face",
    "paint_mask",
    "paint_strokes",
    "sample_damage_params",
    "sample_mask_params",
    "sample_paint_params",
]
