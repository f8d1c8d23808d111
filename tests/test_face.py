"""Face stage: detection, alignment, paste-back, regions (offline, CPU).

Uses only ``skimage.data.astronaut()`` (a real 512x512 RGB portrait).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from authface.face import (
    DETECTOR_NAMES,
    FFHQ_TEMPLATE_512,
    REGIONS,
    DlibDetector,
    Face,
    FaceDetector,
    InsightFaceDetector,
    LanczosUpsampler,
    YuNetDetector,
    align_face,
    aligned_input_affine,
    create_detector,
    estimate_affine,
    face_template,
    paste_faces,
    paste_mask,
    region_boxes,
    region_masks,
    select_faces,
)

REPO = Path(__file__).resolve().parents[1]

# Hand-labelled from 8x zooms of astronaut(): iris centres, nose tip, mouth
# corners (image-left first).
REF_LANDMARKS = np.array(
    [[203.5, 101.3], [245.0, 103.1], [224.0, 127.0], [205.0, 140.6], [241.3, 141.9]], dtype=np.float32
)
# eyes, eyes, nose, mouth, mouth: mouth corners are the least sharply defined
REF_TOLERANCE = np.array([3.0, 3.0, 4.0, 6.0, 6.0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def warp_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ np.asarray(affine).T


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    # overrides conftest's fixture of the same name with a read-only copy
    image = data.astronaut()
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    image.setflags(write=False)  # any in-place write by the code under test fails loudly
    return image


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector()


@pytest.fixture(scope="module")
def face(detector, astronaut) -> Face:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture(scope="module")
def aligned(astronaut, face):
    return align_face(astronaut, face.landmarks, 512)


# ----------------------------------------------------------------------------- detection


def test_dlib_finds_the_astronaut_face_and_landmarks(detector, astronaut, face):
    assert isinstance(detector, FaceDetector)
    assert detector.name == "dlib"
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.score > 0.5
    x1, y1, x2, y2 = face.box
    # the face spans roughly x 175..265, y 76..167 in the photo
    assert 160 < x1 < 190 and 250 < x2 < 280 and 60 < y1 < 90 and 150 < y2 < 180
    err = np.linalg.norm(face.landmarks - REF_LANDMARKS, axis=1)
    assert np.all(err < REF_TOLERANCE), err
    left_eye, right_eye, nose, mouth_l, mouth_r = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert left_eye[0] < nose[0] < right_eye[0]
    for lx, ly in face.landmarks:  # all landmarks inside the box
        assert x1 <= lx <= x2 and y1 <= ly <= y2


def test_default_threshold_drops_the_badge(detector, astronaut):
    # dlib's own threshold (0) also reports the round mission badge on the suit
    lenient = copy.copy(detector)  # shares the loaded dlib models
    lenient.score_threshold = 0.0
    faces = lenient.detect(astronaut)
    assert len(faces) == 2
    badge = min(faces, key=lambda f: f.score)
    assert badge.score < detector.score_threshold and badge.center[1] > 300


def test_dlib_mmod_agrees_with_hog(astronaut, face):
    mmod = create_detector("dlib-mmod", upsample=0)
    assert mmod.name == "dlib-mmod"
    # a 180x180 window around the face keeps the CNN fast on CPU
    x0, y0 = 130, 40
    faces = mmod.detect(np.ascontiguousarray(astronaut[y0 : y0 + 180, x0 : x0 + 180]))
    assert len(faces) == 1
    shifted = faces[0].landmarks + np.array([x0, y0], dtype=np.float32)
    assert np.all(np.linalg.norm(shifted - face.landmarks, axis=1) < 3.0)


def test_detect_rejects_non_rgb_uint8(detector, astronaut):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(astronaut[:, :, 0])
    with pytest.raises(TypeError, match="numpy"):
        detector.detect(astronaut.tolist())


def test_detector_handles_non_contiguous_input_and_no_face(detector, astronaut):
    # a horizontally flipped view is not C-contiguous; the face mirrors
    faces = detector.detect(astronaut[:, ::-1])
    assert len(faces) == 1
    mirrored_x = 511 - faces[0].landmarks[:, 0]
    assert faces[0].landmarks[0, 0] < faces[0].landmarks[1, 0]  # still image-left eye first
    assert abs(mirrored_x[1] - REF_LANDMARKS[0, 0]) < 3 and abs(mirrored_x[0] - REF_LANDMARKS[1, 0]) < 3
    assert detector.detect(np.full((64, 64, 3), 128, np.uint8)) == []


def test_face_to_dict_and_size():
    f = Face(box=[10, 20, 50, 120], landmarks=np.arange(10).reshape(5, 2) + 0.123456, score=0.9)
    assert f.box.dtype == np.float32 and f.landmarks.dtype == np.float32
    assert f.size == pytest.approx(np.sqrt(40 * 100))
    d = f.to_dict()
    assert d["box"] == [10.0, 20.0, 50.0, 120.0]
    assert d["landmarks"][0] == [0.12, 1.12] and len(d["landmarks"]) == 5
    assert d["score"] == pytest.approx(0.9)
    import json

    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        Face(box=[0, 0, 1, 1], landmarks=np.zeros((68, 2)), score=1.0)


def _face(x1, y1, x2, y2, score=1.0):
    return Face(box=[x1, y1, x2, y2], landmarks=np.zeros((5, 2)), score=score)


def test_select_faces():
    small = _face(0, 0, 10, 10)  # size 10
    big = _face(300, 300, 400, 400)  # size 100, far from centre
    medium = _face(230, 230, 280, 280)  # size 50, centre (255, 255)
    tall = _face(0, 0, 20, 80)  # size 40
    faces = [small, big, medium, tall]
    shape = (512, 512, 3)

    assert select_faces(faces, shape) == [big, medium, tall, small]
    assert select_faces(faces, shape, min_face_size=40) == [big, medium, tall]
    assert select_faces(faces, shape, min_face_size=41) == [big, medium]
    assert select_faces(faces, shape, only_center_face=True) == [medium]
    assert select_faces(faces, (512, 512), only_center_face=True, min_face_size=60) == [big]
    assert select_faces(faces, shape, max_faces=2) == [big, medium]
    assert select_faces(faces, shape, min_face_size=1000) == []
    assert select_faces([], shape, only_center_face=True) == []
    assert faces == [small, big, medium, tall]  # input list untouched
    with pytest.raises(ValueError, match="max_faces"):
        select_faces(faces, shape, max_faces=0)


def test_create_detector_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown face detector 'retina'") as exc:
        create_detector("retina")
    for name in DETECTOR_NAMES:
        assert name in str(exc.value)
    for name in ("yunet", "insightface"):
        with pytest.raises(ValueError, match=r"--set face\.detector_model=PATH"):
            create_detector(name)
    missing = tmp_path / "missing.onnx"
    with pytest.raises(FileNotFoundError, match="missing.onnx") as exc:
        YuNetDetector(str(missing))
    assert "face.detector_model" in str(exc.value)
    with pytest.raises(FileNotFoundError, match="missing.onnx") as exc:
        create_detector("yunet", str(missing))
    with pytest.raises(FileNotFoundError, match="missing.onnx") as exc:
        InsightFaceDetector(str(missing))
    assert "det_10g.onnx" in str(exc.value) and "buffalo_l" in str(exc.value)
    with pytest.raises(FileNotFoundError, match="no SCRFD detector"):
        create_detector("insightface", str(tmp_path))  # a directory without det_*.onnx
    with pytest.raises(FileNotFoundError, match="shape_predictor_68_face_landmarks.dat"):
        create_detector("dlib", str(tmp_path))  # models_dir without the .dat files
    with pytest.raises(ValueError, match="'hog' or 'mmod'"):
        DlibDetector(model="cnn")


def test_import_is_light():
    code = (
        "import sys, authface.face\n"
        "heavy = [m for m in ('dlib', 'insightface', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


# ----------------------------------------------------------------------------- alignment


def test_face_template_scales():
    assert FFHQ_TEMPLATE_512.shape == (5, 2) and FFHQ_TEMPLATE_512.dtype == np.float32
    np.testing.assert_allclose(face_template(512), FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(face_template(256), FFHQ_TEMPLATE_512 / 2, rtol=1e-6)


def test_estimate_affine_recovers_a_similarity():
    rng = np.random.default_rng(0)
    for crop_size in (512, 256):
        template = face_template(crop_size).astype(np.float64)
        for _ in range(5):
            angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.1, 3.0)
            rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            shift = rng.uniform(-200, 800, size=2)
            image_points = (FFHQ_TEMPLATE_512 @ rot.T + shift).astype(np.float32)
            affine = estimate_affine(image_points, crop_size)
            assert affine.shape == (2, 3) and affine.dtype == np.float64
            err = np.linalg.norm(warp_points(image_points, affine) - template, axis=1)
            assert err.max() < 0.05, err
    with pytest.raises(ValueError, match="landmarks"):
        estimate_affine(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        estimate_affine(np.zeros((4, 2)))


def _least_squares_similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    z = src[:, 0] + 1j * src[:, 1]
    w = dst[:, 0] + 1j * dst[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    a = np.vdot(zc, wc) / np.vdot(zc, zc)
    return float(np.sqrt(np.mean(np.abs(a * zc - wc) ** 2)))


def test_aligned_crop_puts_landmarks_on_template(detector, face, aligned):
    crop, affine = aligned
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8 and crop.flags["C_CONTIGUOUS"]
    warped = warp_points(face.landmarks, affine)
    err = np.linalg.norm(warped - FFHQ_TEMPLATE_512, axis=1)
    # A real face is not the template: a similarity cannot reach 0 px. The
    # residual must be the least-squares optimum and stay small.
    rms = float(np.sqrt(np.mean(err**2)))
    optimum = _least_squares_similarity_residual(face.landmarks.astype(np.float64), FFHQ_TEMPLATE_512)
    assert rms <= optimum * 1.01 + 1e-6, (rms, optimum)
    assert err[:3].max() < 10 and err.max() < 20, err
    # The crop's pixels really follow the affine: landmarks re-detected on the
    # crop land where the affine sends the original landmarks.
    redetected = detector.detect(crop)
    assert len(redetected) == 1
    moved = np.linalg.norm(redetected[0].landmarks - warped, axis=1)
    assert moved[:3].max() < 2.0 and moved.max() < 5.0, moved


def test_align_face_reflects_instead_of_flat_border(astronaut, face):
    # push the face to the top-left corner: half of the crop lies outside the photo
    corner = np.ascontiguousarray(astronaut[60:, 150:])
    crop, affine = align_face(corner, face.landmarks - np.array([150, 60], dtype=np.float32), 512)
    seen = warp_points(np.array([[31.0, 31.0]]), cv2.invertAffineTransform(affine))[0]
    assert seen[1] < -10  # the crop's top-left block shows area above the photo...
    block = crop[:32, :32].reshape(-1, 3).astype(np.float64)
    assert block.std(axis=0).max() > 3.0  # ...filled with mirrored content, not a constant
    assert not np.any(np.all(crop == 0, axis=2).all(axis=1))  # no black rows


def test_align_face_does_not_alias_big_faces(astronaut, face):
    # A 64 px crop shrinks the face ~2.6x: compare it with the same geometry
    # rendered at 512 px (an enlargement, alias-free) and area-reduced to 64.
    crop, affine = align_face(astronaut, face.landmarks, 64)
    assert crop.shape == (64, 64, 3)
    k = 512 / 64  # pixel-centre convention of cv2.resize
    to_512 = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1]])
    fine = cv2.warpAffine(
        astronaut,
        (to_512 @ np.vstack([affine, [0, 0, 1]]))[:2],
        (512, 512),
        flags=cv2.INTER_LANCZOS4,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    reference = cv2.resize(fine, (64, 64), interpolation=cv2.INTER_AREA)
    # measured ~37.6 dB; a plain warpAffine (point sampling) gets ~31.5 dB
    assert psnr(crop, reference) > 35


def test_aligned_input_affine(astronaut):
    np.testing.assert_array_equal(aligned_input_affine((512, 512, 3), 512), np.eye(2, 3))
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    m = aligned_input_affine(small.shape, 512)
    warped = cv2.warpAffine(small, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    resized = cv2.resize(small, (512, 512), interpolation=cv2.INTER_LINEAR)
    assert psnr(warped[4:-4, 4:-4], resized[4:-4, 4:-4]) > 45
    # pasting an identity "restoration" of an aligned input gives the input back
    crop = cv2.warpAffine(small, m, (512, 512), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    out = paste_faces(small, [crop], [m])
    mask = paste_mask(m, 512, small.shape[:2])
    assert mask.shape == (256, 256) and mask[128, 128] == 1.0
    assert psnr(out[mask > 0.99], small[mask > 0.99]) > 40


# ----------------------------------------------------------------------------- paste-back


def _reference_mask(affine, crop_size, out_hw, upscale):
    """facexlib's recipe on the full canvas (no ROI shortcut), pixel-centre offset."""
    h, w = out_hw[0] * upscale, out_hw[1] * upscale
    inverse = cv2.invertAffineTransform(affine) * upscale
    inverse[:, 2] += 0.5 * (upscale - 1)
    mask = cv2.warpAffine(np.ones((crop_size, crop_size), np.float32), inverse, (w, h))
    mask = cv2.erode(mask, np.ones((2 * upscale, 2 * upscale), np.uint8))
    w_edge = max(int(np.sum(mask) ** 0.5) // 20, 1)
    mask = cv2.erode(mask, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    return cv2.GaussianBlur(mask, (2 * w_edge + 1, 2 * w_edge + 1), 0)


def test_paste_mask_is_feathered(aligned):
    _, affine = aligned
    for upscale in (1, 2):
        mask = paste_mask(affine, 512, (512, 512), upscale)
        assert mask.shape == (512 * upscale, 512 * upscale) and mask.dtype == np.float32
        assert mask.max() == 1.0 and mask.min() == 0.0
        soft = (mask > 0) & (mask < 1)
        assert soft.sum() > 0.2 * (mask > 0).sum()  # a feathered band, not a hard edge
        # no jump anywhere: neighbouring pixels differ by less than 0.2
        assert np.abs(np.diff(mask, axis=0)).max() < 0.2 and np.abs(np.diff(mask, axis=1)).max() < 0.2
        # every pixel next to the outside (mask == 0) is soft: no visible box edge
        touches_outside = cv2.dilate((mask == 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not np.any(touches_outside & (mask == 1))
        assert mask[0, 0] == 0 and mask[-1, -1] == 0
        np.testing.assert_allclose(mask, _reference_mask(affine, 512, (512, 512), upscale), atol=1e-4)
    # a face half outside the image: clipping must not change the recipe
    shifted = affine.copy()
    shifted[:, 2] += affine[:, :2] @ np.array([150.0, 60.0])  # face centre near (75, 60)
    mask = paste_mask(shifted, 512, (300, 400), 1)
    np.testing.assert_allclose(mask, _reference_mask(shifted, 512, (300, 400), 1), atol=1e-4)
    assert mask[0, 0] == 1.0  # runs to the image border where the face is cut off


def _roundtrip(astronaut, aligned, upscale):
    crop, affine = aligned
    background = LanczosUpsampler().upscale(astronaut, upscale)
    before = background.copy()
    out = paste_faces(background, [crop], [affine], upscale=upscale)
    np.testing.assert_array_equal(background, before)  # input untouched
    assert out.shape == background.shape and out.dtype == np.uint8 and out is not background
    mask = paste_mask(affine, 512, astronaut.shape[:2], upscale)
    inside = mask > 0.99
    assert inside.mean() > 0.05  # the face region is substantial (~7% of the photo)
    np.testing.assert_array_equal(out[mask == 0], background[mask == 0])
    return psnr(out[inside], background[inside]), out, background, mask


def test_roundtrip_identity_restore_upscale1(astronaut, aligned):
    value, out, _, mask = _roundtrip(astronaut, aligned, 1)
    assert value >= 40, value  # measured ~49 dB
    # the soft rim blends, so the whole image is also nearly unchanged
    assert psnr(out, astronaut) >= 45


def test_roundtrip_identity_restore_upscale2(astronaut, aligned):
    value, out, background, _ = _roundtrip(astronaut, aligned, 2)
    assert out.shape == (1024, 1024, 3)
    assert value >= 40, value  # measured ~53 dB against the Lanczos-upscaled photo


def test_paste_really_pastes(astronaut, aligned):
    crop, affine = aligned
    white = np.full_like(crop, 255)
    for upscale in (1, 2):
        background = LanczosUpsampler().upscale(astronaut, upscale)
        out = paste_faces(background, [white], [affine], upscale=upscale)
        mask = paste_mask(affine, 512, astronaut.shape[:2], upscale)
        assert out[mask == 1].min() == 255
        # everywhere else: out = m * 255 + (1 - m) * background
        m = mask[:, :, None].astype(np.float64)
        expected = m * 255 + (1 - m) * background
        assert np.abs(out - expected).max() <= 1.0
        assert np.count_nonzero((mask > 0.3) & (mask < 0.7)) > 100  # the blend band was exercised


def test_paste_faces_composites_in_order(astronaut, aligned):
    crop, affine = aligned
    red = np.zeros_like(crop)
    red[..., 0] = 255
    blue = np.zeros_like(crop)
    blue[..., 2] = 255
    out = paste_faces(astronaut, [red, blue], [affine, affine])
    centre = out[120, 225]
    assert centre[2] >= 254 and centre[0] <= 1  # the later face wins
    assert paste_faces(astronaut, [], []) is not astronaut
    with pytest.raises(ValueError, match="affines"):
        paste_faces(astronaut, [crop], [])
    with pytest.raises(ValueError, match="square"):
        paste_faces(astronaut, [crop[:, :500]], [affine])
    with pytest.raises(ValueError, match="upscale"):
        paste_faces(astronaut, [crop], [affine], upscale=0)


def test_lanczos_upsampler(astronaut):
    up = LanczosUpsampler()
    assert up.upscale(astronaut, 1) is astronaut
    big = up.upscale(astronaut, 2)
    assert big.shape == (1024, 1024, 3) and big.dtype == np.uint8
    assert psnr(cv2.resize(big, (512, 512), interpolation=cv2.INTER_AREA), astronaut) > 30
    with pytest.raises(ValueError, match="upscale"):
        up.upscale(astronaut, 0)


# ----------------------------------------------------------------------------- regions


def test_region_masks_cover_the_features(face, aligned):
    _, affine = aligned
    cell = 512 / 64

    def at(mask, p):
        return mask[int((p[1] + 0.5) // cell), int((p[0] + 0.5) // cell)]

    for name, points in (
        ("template", FFHQ_TEMPLATE_512),
        ("astronaut", warp_points(face.landmarks, affine)),
    ):
        masks = region_masks(points, 512, 64)
        assert tuple(masks) == REGIONS
        for key, mask in masks.items():
            assert mask.shape == (64, 64) and mask.dtype == np.float32, name
            assert set(np.unique(mask)) == {0.0, 1.0}, name
            assert mask.mean() < 0.08, (name, key, mask.mean())
        assert at(masks["left_eye"], points[0]) == 1 and at(masks["right_eye"], points[1]) == 1
        assert at(masks["left_eye"], points[1]) == 0 and at(masks["right_eye"], points[0]) == 0
        assert at(masks["nose"], points[2]) == 1
        assert at(masks["mouth"], points[3]) == 1 and at(masks["mouth"], points[4]) == 1
        assert not np.any(masks["left_eye"] * masks["right_eye"])
        assert not np.any(masks["left_eye"] * masks["mouth"])
        boxes = region_boxes(points, 512)
        for key, box in boxes.items():
            assert box.shape == (4,) and box[0] < box[2] and box[1] < box[3], (name, key)


def test_region_boxes_are_clipped_and_match_masks():
    points = FFHQ_TEMPLATE_512 - np.array([200.0, 0.0], dtype=np.float32)  # left eye off the crop
    boxes = region_boxes(points, 512)
    assert boxes["left_eye"][0] == 0.0 and boxes["left_eye"][2] < 40
    for box in boxes.values():
        assert box.min() >= 0 and box.max() <= 511
    # grid == crop (1 px cells): the cells overlapping the box, floor(v + 0.5) on each side
    full = region_masks(FFHQ_TEMPLATE_512, 512, 512)
    x1, y1, x2, y2 = region_boxes(FFHQ_TEMPLATE_512, 512)["mouth"]
    ys, xs = np.nonzero(full["mouth"])
    assert xs.min() == int(np.floor(x1 + 0.5)) and xs.max() == int(np.floor(x2 + 0.5))
    assert ys.min() == int(np.floor(y1 + 0.5)) and ys.max() == int(np.floor(y2 + 0.5))
    # a region entirely off the crop: degenerate box on the edge, empty mask
    off = FFHQ_TEMPLATE_512 - np.array([300.0, 0.0], dtype=np.float32)
    assert region_boxes(off, 512)["left_eye"][[0, 2]].tolist() == [0.0, 0.0]
    masks = region_masks(off, 512, 64)
    assert masks["left_eye"].sum() == 0 and masks["right_eye"].sum() > 0
    with pytest.raises(ValueError, match="grid_size"):
        region_masks(FFHQ_TEMPLATE_512, 512, 0)


# ------------------------------------------------------------------ duplicate, nested and impossible detections
class _ListDetector:
    name = "list"

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return [copy.deepcopy(f) for f in self.faces]


def _moved(face: Face, dx: float = 0.0, scale: float = 1.0, score: float | None = None) -> Face:
    c = np.array(face.center)
    box = ((face.box.reshape(2, 2) - c) * scale + c + [dx, 0]).reshape(-1)
    lm = (face.landmarks - c) * scale + c + [dx, 0]
    return Face(box=box, landmarks=lm, score=face.score if score is None else score)


def _restore_with(detector_faces, astronaut):
    from authface.face.stage import FaceStage
    from authface.restorer import FaceRestorer

    stage = FaceStage(_ListDetector(detector_faces), crop_size=128)
    restorer = FaceRestorer(lambda crops, seeds: ([255 - c for c in crops], []), stage)
    return restorer(astronaut)


@pytest.mark.parametrize("variant", ["shifted", "scaled", "both", "eye-as-face", "reversed-order"])
def test_duplicate_and_nested_detections_restore_like_one(face, astronaut, variant):
    single = _restore_with([face], astronaut)
    le = face.landmarks[0]
    eye_box = Face(box=[le[0] - 12, le[1] - 8, le[0] + 12, le[1] + 8],
                   landmarks=[[le[0] - 5, le[1] - 2], [le[0] + 5, le[1] - 2], [le[0], le[1]],
                              [le[0] - 3, le[1] + 4], [le[0] + 3, le[1] + 4]], score=face.score + 5)  # fmt: skip
    faces = {
        "shifted": [face, _moved(face, dx=4)],
        "scaled": [face, _moved(face, scale=1.05)],
        "both": [face, _moved(face, dx=-3, scale=0.95), _moved(face, dx=3)],
        "eye-as-face": [face, eye_box],  # higher score: containment wins, not the score
        "reversed-order": [_moved(face, dx=4, score=face.score - 1), face],
    }[variant]
    result = _restore_with(faces, astronaut)
    assert len(result.faces) == 1
    assert np.array_equal(result.image, single.image)
    assert len(result.dropped_faces) == len(faces) - 1
    assert all(d["reason"] for d in result.dropped_faces)


@pytest.mark.parametrize(
    "landmarks, why",
    [
        ([[200, 120], [200.5, 120], [210, 140], [195, 160], [215, 160]], "eye distance"),  # eyes on one point
        ([[190, 160], [240, 160], [215, 140], [195, 110], [235, 110]], "below the eyes"),  # mouth above the eyes
        ([[190, 120], [240, 120], [215, 140], [160, 160], [270, 160]], "mouth width"),  # a 2.2-eye-distance mouth
        ([[900, 120], [950, 120], [925, 140], [905, 160], [945, 160]], "outside the face box"),
    ],
)
def test_implausible_landmarks_are_rejected(landmarks, why):
    from authface.face.sanity import implausible_landmarks, sanitize_faces

    bad = Face(box=[170, 90, 260, 190], landmarks=landmarks, score=1.0)
    assert why in implausible_landmarks(bad)
    kept, dropped = sanitize_faces([bad])
    assert kept == [] and why in dropped[0][1]


def test_real_faces_pass_the_sanity_checks(face):
    from authface.face.sanity import implausible_landmarks, sanitize_faces

    assert implausible_landmarks(face) is None
    other = _moved(face, dx=400)  # a second face beside it is kept
    assert len(sanitize_faces([face, other])[0]) == 2


def test_faces_below_min_face_size_are_reported(face, astronaut):
    from authface.face.stage import FaceStage

    small = _moved(face, dx=300, scale=0.3)
    stage = FaceStage(_ListDetector([face, small]), crop_size=128, min_face_size=face.size * 0.5)
    kept, dropped = stage.detect_report(astronaut)
    assert len(kept) == 1 and len(dropped) == 1 and "--min-face-size" in dropped[0]["reason"]
