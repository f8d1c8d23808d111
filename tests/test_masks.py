"""Synthetic occlusions (authface.data.occlusions): face masks from landmarks, old-photo damage, painted strokes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from authface.config import ConfigError, load_config
from authface.data.occlusions import (
    DAMAGE_KINDS,
    MASK_STYLES,
    DamageSettings,
    FaceMaskSettings,
    PaintSettings,
    apply_damage_params,
    apply_mask_params,
    apply_paint_params,
    damage_mask,
    damage_photo,
    landmarks_68,
    mask_coverage,
    occlude_face,
    paint_mask,
    paint_strokes,
    sample_damage_params,
    sample_mask_params,
    sample_paint_params,
)
from authface.data.occlusions.geometry import FaceFrame

EYE_MARGIN = 0.1  # face scales below the eye line that a mask may not cross


@pytest.fixture(scope="module")
def astronaut():
    """skimage's astronaut with dlib's 68 landmarks, AuthFace's 5, and the same for the mirrored image (the
    68 points found again on the mirror, from the mirrored face box)."""
    dlib = pytest.importorskip("dlib")
    data = pytest.importorskip("skimage.data")
    from authface.face.dlib_models import SHAPE_68, dlib_model_path

    img = data.astronaut()
    w = img.shape[1]
    rect = max(dlib.get_frontal_face_detector()(img, 1), key=lambda r: r.area())
    predictor = dlib.shape_predictor(dlib_model_path(SHAPE_68, needed_by="test_masks"))

    def points(image, box):
        return np.array([(p.x, p.y) for p in predictor(image, box).parts()], dtype=np.float64)

    flipped = np.ascontiguousarray(img[:, ::-1])
    p68 = points(img, rect)
    f68 = points(
        flipped, dlib.rectangle(w - 1 - rect.right(), rect.top(), w - 1 - rect.left(), rect.bottom())
    )

    def five(p):
        return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])

    return {"img": img, "flipped": flipped, 68: p68, 5: five(p68), "f68": f68, "f5": five(f68)}


def _uv(points68: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return FaceFrame.from_68(points68).uv(np.stack([xs, ys], axis=1).astype(np.float64))


@pytest.mark.parametrize("npoints", [68, 5])
@pytest.mark.parametrize("style", MASK_STYLES)
def test_style_covers_plausible_area(astronaut, style, npoints):
    img, p68 = astronaut["img"], astronaut[68]
    occluded, mask, params = occlude_face(img, astronaut[npoints], np.random.default_rng(7), style)
    assert occluded.dtype == np.uint8 and occluded.shape == img.shape
    assert mask.dtype == np.uint8 and mask.shape == img.shape[:2]
    assert set(np.unique(mask)) == {0, 255}
    lo, hi = FaceMaskSettings().coverage
    assert lo <= params["coverage"] <= hi
    assert lo - 0.03 <= mask_coverage(mask, p68) <= hi + 0.03  # anti-aliased edge and straps included
    # below the eyes, over the nose tip and the mouth centre (of dlib's own 68 points)
    assert _uv(p68, mask)[:, 1].min() >= EYE_MARGIN
    for x, y in (p68[30], (p68[48] + p68[54]) / 2):
        assert mask[int(round(y)), int(round(x))] == 255
    # the image changed only under the mask, and visibly under it
    assert np.array_equal(occluded[mask == 0], img[mask == 0])
    assert np.abs(occluded.astype(int) - img.astype(int))[mask > 0].mean() > 10


@pytest.mark.parametrize("style", MASK_STYLES)
def test_mirrored_face_gets_mirrored_mask(astronaut, style):
    for key in ("68", "5"):
        _, mask, _ = occlude_face(astronaut["img"], astronaut[int(key)], np.random.default_rng(3), style)
        _, mirror, _ = occlude_face(
            astronaut["flipped"], astronaut["f" + key], np.random.default_rng(3), style
        )
        a, b = mirror > 0, mask[:, ::-1] > 0
        assert (a & b).sum() / (a | b).sum() > 0.92, key


@pytest.mark.parametrize("roll", [-30.0, 25.0])
def test_tilted_small_face_keeps_the_rules(roll):
    from authface.face import face_template

    theta = np.deg2rad(roll)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = (face_template(512).astype(np.float64) - 256) @ rot.T * 0.4 + [150, 170]  # a ~100 px face
    img = np.full((320, 300, 3), 90, np.uint8)
    p68 = landmarks_68(points)
    for i, style in enumerate(MASK_STYLES):
        occluded, mask, params = occlude_face(img, points, np.random.default_rng(i), style)
        assert _uv(p68, mask)[:, 1].min() >= EYE_MARGIN, style
        for x, y in (p68[30], (p68[48] + p68[54]) / 2):
            assert mask[int(round(y)), int(round(x))] == 255, style
        assert np.array_equal(occluded[mask == 0], img[mask == 0])


def test_mask_params_replay(astronaut):
    img = astronaut["img"]
    before = np.random.get_state()[1].copy()
    for style in (*MASK_STYLES, None):
        occluded, mask, params = occlude_face(img, astronaut[68], np.random.default_rng(11), style)
        again = json.loads(json.dumps(params))  # JSON-ready, and still replays
        replay, replay_mask = apply_mask_params(img, again)
        assert replay.tobytes() == occluded.tobytes() and replay_mask.tobytes() == mask.tobytes()
        same = sample_mask_params(np.random.default_rng(11), style, astronaut[68], img.shape)
        assert same == params
    other = sample_mask_params(np.random.default_rng(12), "cloth", astronaut[68], img.shape)
    assert other != sample_mask_params(np.random.default_rng(11), "cloth", astronaut[68], img.shape)
    assert np.array_equal(np.random.get_state()[1], before)  # the global RNG is never used


def test_five_points_place_the_mean_face(astronaut):
    p68, placed = astronaut[68], landmarks_68(astronaut[5])
    scale = FaceFrame.from_68(p68).scale
    assert np.abs(placed - p68).max() / scale < 0.5  # the mean face lands on the real one
    from authface.face import Face

    face = Face(box=[0, 0, 10, 10], landmarks=astronaut[5], score=1.0)
    assert np.allclose(landmarks_68(face), placed)


def test_mask_settings_are_configs():
    cfg = load_config(FaceMaskSettings, None, ["coverage=[0.2, 0.9]", "styles=[surgical, n95]",
                                               "style_weights=[1, 3]"])  # fmt: skip
    assert cfg.coverage == (0.2, 0.9) and cfg.styles == ("surgical", "n95")
    with pytest.raises(ConfigError, match="coverage"):
        FaceMaskSettings(coverage=(0.9, 0.2))
    with pytest.raises(ConfigError, match="style_weights"):
        FaceMaskSettings(styles=("surgical",))
    with pytest.raises(ConfigError, match="styles"):
        FaceMaskSettings(styles=("scarf",), style_weights=(1.0,))
    with pytest.raises(ConfigError, match="scratch_count"):
        load_config(DamageSettings, None, ["scratch_count=[3, 1]"])


def test_style_weights_choose_the_style(astronaut):
    cfg = FaceMaskSettings(styles=("bandana", "gaiter"), style_weights=(0.0, 1.0))
    params = sample_mask_params(np.random.default_rng(0), None, astronaut[68], astronaut["img"].shape, cfg)
    assert params["style"] == "gaiter"


@pytest.mark.parametrize("seed", range(4))
def test_damage_masks_nonempty_bounded_replayable(seed):
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()
    damaged, mask, params = damage_photo(img, np.random.default_rng(seed))
    assert damaged.dtype == np.uint8 and damaged.shape == img.shape and mask.shape == img.shape[:2]
    assert set(np.unique(mask)) == {0, 255}
    coverage = np.count_nonzero(mask) / mask.size
    assert 0 < coverage <= DamageSettings().max_coverage and coverage == pytest.approx(params["coverage"])
    replay, replay_mask = apply_damage_params(img, json.loads(json.dumps(params)))
    assert replay.tobytes() == damaged.tobytes() and replay_mask.tobytes() == mask.tobytes()
    assert np.array_equal(damage_mask(params), mask)


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_each_damage_kind_alone(kind):
    img = np.full((96, 128, 3), 120, np.uint8)
    probs = {
        f"{k}_prob": 0.0
        for k in ("scratch", "crease", "tear", "stain", "gray", "fading", "yellowing", "grain")
    }
    prefix = {"scratches": "scratch", "creases": "crease", "tears": "tear", "stains": "stain"}[kind]
    cfg = DamageSettings(**{**probs, f"{prefix}_prob": 1.0})
    damaged, mask, params = damage_photo(img, np.random.default_rng(5), cfg)
    assert {e["kind"] for e in params["elements"]} == {kind}
    assert mask.any()
    assert np.array_equal(damaged[mask == 0], img[mask == 0])  # no global damage: only the mask changed
    assert (damaged[mask > 0] != img[mask > 0]).any()


def test_global_fading_keeps_shape_and_dtype():
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()
    params = sample_damage_params(np.random.default_rng(2), img.shape)
    params["elements"] = []
    params["global"].update(gray=False, yellowing=None, grain=None, fading=0.4)
    faded, mask = apply_damage_params(img, params)
    assert faded.shape == img.shape and faded.dtype == np.uint8 and not mask.any()
    assert faded.std() < img.std() * 0.8  # contrast lost towards the paper tone
    params["global"].update(gray=True, yellowing=0.8, fading=None)
    sepia, _ = apply_damage_params(img, params)
    r, g, b = (sepia[..., c].astype(int) for c in range(3))
    assert sepia.shape == img.shape and (r >= g).mean() > 0.95 and (g >= b).mean() > 0.95


def test_bad_inputs_name_the_argument(astronaut):
    img, p68 = astronaut["img"], astronaut[68]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="img"):
        occlude_face(img.astype(np.float32), p68, rng)
    with pytest.raises(ValueError, match="img"):
        occlude_face(img[..., 0], p68, rng)
    with pytest.raises(ValueError, match="landmarks"):
        occlude_face(img, p68[:4], rng)
    with pytest.raises(ValueError, match="landmarks"):
        occlude_face(img, np.full((5, 2), np.nan), rng)
    with pytest.raises(ValueError, match="rng"):
        occlude_face(img, p68, 0)
    with pytest.raises(ValueError, match="style"):
        occlude_face(img, p68, rng, style="scarf")
    with pytest.raises(ValueError, match="settings"):
        occlude_face(img, p68, rng, settings=DamageSettings())
    with pytest.raises(ValueError, match="image_shape"):
        sample_mask_params(rng, "n95", p68, (512,))
    params = sample_mask_params(rng, "n95", p68, img.shape)
    with pytest.raises(ValueError, match="img"):
        apply_mask_params(img[:256], params)
    with pytest.raises(ValueError, match="params"):
        apply_mask_params(img, {"version": 1})
    with pytest.raises(ValueError, match="img"):
        damage_photo(img.astype(np.int16), rng)
    with pytest.raises(ValueError, match="rng"):
        damage_photo(img, None)
    with pytest.raises(ValueError, match="img"):
        apply_damage_params(img[:100], sample_damage_params(rng, img.shape))


# ------------------------------------------------------------------------------------------------- painted strokes
@pytest.mark.parametrize("seed", range(4))
def test_paint_strokes_bounded_flat_and_replayable(seed):
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()
    cfg = PaintSettings()
    painted, mask, params = paint_strokes(img, np.random.default_rng(seed), cfg)
    assert painted.dtype == np.uint8 and painted.shape == img.shape and set(np.unique(mask)) == {0, 255}
    coverage = np.count_nonzero(mask) / mask.size
    assert cfg.coverage[0] <= coverage <= cfg.coverage[1] and coverage == pytest.approx(params["coverage"])
    assert np.array_equal(painted[mask == 0], img[mask == 0])  # the photo is untouched outside the strokes
    # away from the anti-aliased rims, the flat paint (a few pixels where two strokes' rims meet are partial)
    core = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
    flat = np.abs(painted[core].astype(int) - np.round(np.asarray(params["color"]) * 255)).max(-1) <= 1
    assert core.any() and flat.mean() > 0.99
    replayed, replayed_mask = apply_paint_params(img, json.loads(json.dumps(params)))
    assert replayed.tobytes() == painted.tobytes() and replayed_mask.tobytes() == mask.tobytes()
    assert np.array_equal(paint_mask(params), mask)


def test_paint_settings_shape_the_strokes():
    img = np.full((128, 128, 3), 90, np.uint8)
    white = PaintSettings(white_prob=1.0, stroke_count=(1, 1), vertices=(2, 2), width=(0.1, 0.1))
    _, mask, params = paint_strokes(img, np.random.default_rng(0), white)
    assert params["color"] == [1.0, 1.0, 1.0] and len(params["strokes"]) == 1
    assert len(params["strokes"][0]["points"]) == 2 and params["strokes"][0]["width"] == pytest.approx(12.8)
    colours = {tuple(paint_strokes(img, np.random.default_rng(s), PaintSettings(white_prob=0.0))[2]["color"])
               for s in range(6)}  # fmt: skip
    assert (1.0, 1.0, 1.0) not in colours
    assert load_config(PaintSettings, None, ["width=[0.1, 0.2]"]).width == (0.1, 0.2)
    for bad in (["width=[0.3, 0.1]"], ["white_prob=2"], ["vertices=[1, 4]"], ["coverage=[0, 1.5]"]):
        with pytest.raises(ConfigError):
            load_config(PaintSettings, None, bad)


def test_paint_bad_inputs_name_the_argument():
    img = np.zeros((64, 64, 3), np.uint8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="img"):
        paint_strokes(img.astype(np.float32), rng)
    with pytest.raises(ValueError, match="rng"):
        paint_strokes(img, 3)
    with pytest.raises(ValueError, match="settings"):
        paint_strokes(img, rng, DamageSettings())
    params = sample_paint_params(rng, img.shape)
    with pytest.raises(ValueError, match="img"):
        apply_paint_params(img[:32], params)
    with pytest.raises(ValueError, match="params"):
        apply_paint_params(img, {**params, "strokes": None})
    with pytest.raises(ValueError, match="version"):
        apply_paint_params(img, {**params, "version": 99})
    stroke = params["strokes"][0]
    for bad, what in (({"width": 1e6}, "width"), ({"width": float("nan")}, "width"),
                      ({"points": [[1, 2, 3]]}, "points"), ({"points": [[np.nan, 2]]}, "points")):  # fmt: skip
        with pytest.raises(ValueError, match=what):
            apply_paint_params(img, {**params, "strokes": [{**stroke, **bad}]})
    with pytest.raises(ValueError, match="color"):
        apply_paint_params(img, {**params, "color": [np.nan, 0, 0]})


def test_paint_strokes_stay_in_the_image_and_unmet_coverage_is_logged(caplog):
    spread = PaintSettings(centre_spread=1.0, vertices=(2, 2), coverage=(0.0, 1.0))
    for seed in range(20):  # strokes may start anywhere, but never outside the image
        params = sample_paint_params(np.random.default_rng(seed), (40, 120), spread)
        pts = np.array([p for s in params["strokes"] for p in s["points"]])
        assert (pts >= 0).all() and (pts[:, 0] <= 119).all() and (pts[:, 1] <= 39).all() and params["coverage"] > 0
    with caplog.at_level("WARNING", logger="authface.data.occlusions.paint"):
        params = sample_paint_params(np.random.default_rng(0), (2, 2))  # any stroke covers the whole image
    assert params["coverage"] == 1.0 and "no draw in 20 met coverage" in caplog.text
