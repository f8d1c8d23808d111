"""Face stage: detection, FFHQ alignment, paste-back and facial regions.

All images are ``uint8`` RGB ``(H, W, 3)`` numpy arrays. Importing this
package imports only numpy; dlib, OpenCV's YuNet, insightface and
onnxruntime are imported by the functions/constructors that need them.
"""

from .align import FFHQ_TEMPLATE_512, align_face, aligned_input_affine, estimate_affine, face_template
from .detect import (
    DETECTOR_NAMES,
    DlibDetector,
    Face,
    FaceDetector,
    InsightFaceDetector,
    YuNetDetector,
    create_detector,
    select_faces,
)
from .paste import BackgroundUpsampler, LanczosUpsampler, paste_faces, paste_mask
from .regions import REGIONS, region_boxes, region_masks

__all__ = [
    "DETECTOR_NAMES",
    "FFHQ_TEMPLATE_512",
    "REGIONS",
    "BackgroundUpsampler",
    "DlibDetector",
    "Face",
    "FaceDetector",
    "InsightFaceDetector",
    "LanczosUpsampler",
    "YuNetDetector",
    "align_face",
    "aligned_input_affine",
    "create_detector",
    "estimate_affine",
    "face_template",
    "paste_faces",
    "paste_mask",
    "region_boxes",
    "region_masks",
    "select_faces",
]
