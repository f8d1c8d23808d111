"""Identity embedders (offline, CPU): FFHQ -> ArcFace warp, IResNet, ONNX -> IResNet conversion, dlib judge, factory.

Every network here has random weights built in code; the only real face is ``skimage.data.astronaut()``,
aligned with AuthFace's own dlib detector.
"""

from __future__ import annotations

import hashlib
import io
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from authface.face import align_face, create_detector, face_template
from authface.io import numpy_to_tensor
from authface.models import arcface, arcface_onnx
from authface.models.arcface import (
    ARCFACE_TEMPLATE_112,
    ArcFaceEncoder,
    ffhq_to_arcface_affine,
    warp_to_arcface,
)
from authface.models.arcface_onnx import OnnxArcFaceEncoder
from authface.models.dlib_judge import DlibFaceJudge
from authface.models.identity import (
    IDENTITY_ENCODER_NAMES,
    IdentityEncoder,
    cosine_similarity,
    load_identity_encoder,
)
from authface.models.iresnet import IRESNET_LAYERS, IResNet, iresnet
from authface.models.iresnet_onnx import convert_onnx_to_iresnet

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# ----------------------------------------------------------------------------- fixtures & helpers


@pytest.fixture(scope="module")
def aligned() -> np.ndarray:
    """The astronaut's face aligned to the 512 FFHQ template: uint8 RGB (512, 512, 3)."""
    image = np.ascontiguousarray(data.astronaut())
    faces = create_detector("dlib").detect(image)
    assert len(faces) == 1
    crop, _ = align_face(image, faces[0].landmarks, 512)
    return crop


def smooth_image(size: int = 512, seed: int = 0) -> np.ndarray:
    """A smooth random float32 RGB image in [0, 1] (bicubic upsampling of 16x16 noise)."""
    small = np.random.default_rng(seed).random((16, 16, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def to_tensor01(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].detach().permute(1, 2, 0).numpy()


def random_iresnet(arch: str = "r18", seed: int = 0) -> IResNet:
    """A random IResNet whose BatchNorm statistics are calibrated on random inputs, so that every BN and PReLU
    matters and the output is O(1) (arcface_torch's init in eval mode would blow up)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = iresnet(arch)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.0, 0.5, generator=g)
        for m in bns:
            m.momentum = None  # cumulative average: one batch sets the running stats to its own
        model.train()
        model(torch.randn(3, 3, 112, 112, generator=g))
        model.eval()
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)
        y = model(torch.randn(2, 3, 112, 112, generator=g))
        model.features.weight /= y.std()
        model.features.bias /= y.std()
    return model


@pytest.fixture(scope="module")
def r18() -> IResNet:
    return random_iresnet("r18")


@pytest.fixture(scope="module")
def r18_onnx(r18) -> bytes:
    """r18 exported with the TorchScript exporter (the dynamo one needs onnxscript), dynamic batch."""
    return export_onnx(r18)


def export_onnx(model: torch.nn.Module, **kw) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 112, 112),),
            buf,
            dynamo=False,
            input_names=["input.1"],
            output_names=["embedding"],
            dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}},
            **kw,
        )
    return buf.getvalue()


def make_model(
    nodes, inputs, outputs, initializers=(), opset: int = 17, check: bool = True
) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if check:  # the checker wants output shapes; graphs with shape-less outputs are checked by onnxruntime
        onnx.checker.check_model(model)
    return model


def run_ort(model: onnx.ModelProto, *arrays: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, arrays)))


def const(name: str, array) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def tiny_recogniser(prefix: bool, fixed_batch: bool = False, seed: int = 0) -> onnx.ModelProto:
    """A small ArcFace-like graph: [Sub 127.5, Mul 1/127.5] -> Conv -> BN -> PRelu -> Conv -> GAP -> flatten
    -> Gemm -> (N, 16). With ``prefix`` it takes 0..255 pixels like insightface's MXNet-era models (node names
    as MXNet writes them); ``fixed_batch`` flattens with a Reshape to [1, -1] (a batch-1 export)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = [
        const("w1", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(f32)),
        const("b1", rng.normal(0, 0.1, 8).astype(f32)),
        const("bn_s", rng.uniform(0.5, 1.5, 8).astype(f32)),
        const("bn_b", rng.normal(0, 0.1, 8).astype(f32)),
        const("bn_m", rng.normal(0, 0.1, 8).astype(f32)),
        const("bn_v", rng.uniform(0.5, 1.5, 8).astype(f32)),
        const("slope", rng.uniform(0.0, 0.5, (8, 1, 1)).astype(f32)),
        const("w2", rng.normal(0, 0.2, (12, 8, 3, 3)).astype(f32)),
        const("fc_w", rng.normal(0, 0.3, (16, 12)).astype(f32)),
        const("fc_b", rng.normal(0, 0.1, 16).astype(f32)),
        const("mean", np.array(127.5, f32)),
        const("scale", np.array(1 / 127.5, f32)),
        const("flat", np.array([1, -1], np.int64)),
    ]
    nodes = []
    x = "data"
    if prefix:
        nodes += [
            helper.make_node("Sub", [x, "mean"], ["sub"], name="_minusscalar0"),
            helper.make_node("Mul", ["sub", "scale"], ["mul"], name="_mulscalar0"),
        ]
        x = "mul"
    nodes += [
        helper.make_node(
            "Conv", [x, "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=2e-5),
        helper.make_node("PRelu", ["bn", "slope"], ["p1"]),
        helper.make_node(
            "Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[0, 0, 1, 1], strides=[2, 2]
        ),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"]),
        helper.make_node("Reshape", ["gap", "flat"], ["fl"])
        if fixed_batch
        else helper.make_node("Flatten", ["gap"], ["fl"], axis=1),
        helper.make_node("Gemm", ["fl", "fc_w", "fc_b"], ["fc1"], transB=1),
    ]
    batch = 1 if fixed_batch else "N"
    return make_model(
        nodes,
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, 16])],
        inits,
    )


# ----------------------------------------------------------------------------- warp


def test_ffhq_template_maps_onto_arcface_template():
    m = ffhq_to_arcface_affine(512)
    assert m.shape == (2, 3) and m.dtype == np.float64
    # a similarity: [[a, -b], [b, a]]
    assert abs(m[0, 0] - m[1, 1]) < 1e-9 and abs(m[0, 1] + m[1, 0]) < 1e-9
    assert 0.28 < np.hypot(m[0, 0], m[1, 0]) < 0.30  # 512 FFHQ crop -> 112 ArcFace crop, ~3.4x smaller
    mapped = np.c_[face_template(512), np.ones(5)] @ m.T
    err = np.linalg.norm(mapped - ARCFACE_TEMPLATE_112, axis=1)
    # the two templates differ in shape (FFHQ's mouth sits lower): eyes within ~1 px, mouth ~2.5 px
    assert err[:2].max() < 1.2, err
    assert err.max() < 3.0 and np.sqrt((err**2).mean()) < 2.0, err
    # least squares: no other similarity fits better, e.g. nudging the fit makes the residual grow
    base = (err**2).sum()
    for delta in (np.array([[0.001, 0, 0], [0, 0.001, 0]]), np.array([[0, 0, 0.3], [0, 0, 0]])):
        worse = np.linalg.norm(
            np.c_[face_template(512), np.ones(5)] @ (m + delta).T - ARCFACE_TEMPLATE_112, axis=1
        )
        assert (worse**2).sum() > base
    # scale-free: another crop size gives the same map in normalised coordinates
    m256 = ffhq_to_arcface_affine(256)
    np.testing.assert_allclose(m256[:, :2], m[:, :2] * 2, rtol=1e-6)


@pytest.mark.parametrize("size", [512, 256])
def test_warp_matches_cv2_warpaffine_on_smooth_image(size):
    img = smooth_image(size)
    ref = cv2.warpAffine(img, ffhq_to_arcface_affine(size), (112, 112), flags=cv2.INTER_LINEAR)
    out = warp_to_arcface(to_tensor01(img))
    assert out.shape == (1, 3, 112, 112)
    assert np.abs(to_hwc(out) - ref).max() < 1e-3


def test_warp_matches_cv2_on_aligned_face_including_borders(aligned):
    img = aligned.astype(np.float32) / 255.0
    m = ffhq_to_arcface_affine(512)
    # BORDER_CONSTANT 0 == grid_sample padding "zeros": the whole output matches, borders included
    ref = cv2.warpAffine(
        img, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    out = to_hwc(warp_to_arcface(to_tensor01(img)))
    assert np.abs(out - ref).max() < 1e-3
    # and the uint8 warp cv2 would give insightface differs only by its rounding
    ref8 = cv2.warpAffine(aligned, m, (112, 112)).astype(np.float32) / 255.0
    assert np.abs(out - ref8).max() <= 0.5 / 255 + 1e-3
    # the warped crop is a face in the ArcFace frame: its eyes are darker than the cheeks between/below them
    grey = out.mean(axis=2)
    eyes = [
        grey[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean() for x, y in ARCFACE_TEMPLATE_112[:2]
    ]
    cheeks = grey[60:70, 30:45].mean()
    assert max(eyes) < cheeks


def test_warp_batch_dtype_cache_and_resized_crops():
    img = smooth_image(512)
    t = to_tensor01(img) * 2 - 1
    batch = torch.cat([t, t.flip(-1)])
    arcface._arcface_grid.cache_clear()
    out = warp_to_arcface(batch)
    assert out.shape == (2, 3, 112, 112) and out.dtype == torch.float32
    torch.testing.assert_close(out[:1], warp_to_arcface(t))
    hits = arcface._arcface_grid.cache_info().hits
    assert hits >= 1  # same (crop_size, size, device, dtype): grid reused
    out64 = warp_to_arcface(batch.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out, atol=1e-5, rtol=0)
    # a 512 crop resized to 256: with crop_size=512 it warps to the 512 crop's ArcFace crop up to the resize's
    # blur; read as a crop aligned at 256 (face_template(256) scales about the corner, not the pixel centres)
    # it is a quarter pixel off
    small = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
    ref = warp_to_arcface(to_tensor01(img))
    err_as_512 = (warp_to_arcface(to_tensor01(small), crop_size=512) - ref).abs().max()
    err_as_256 = (warp_to_arcface(to_tensor01(small)) - ref).abs().max()
    assert err_as_512 < 0.015 and err_as_512 < err_as_256 < 0.05, (err_as_512, err_as_256)
    with pytest.raises(ValueError, match="square"):
        warp_to_arcface(torch.zeros(1, 3, 64, 32))


def test_warp_gradients(aligned):
    x = numpy_to_tensor(aligned).requires_grad_(True)
    out = warp_to_arcface(x)
    out.square().sum().backward()
    g = x.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    frac_plain = (g.abs().sum(1) > 0).float().mean().item()
    # antialiased variant: close to the point-sampled warp on a smooth image, gradient spread over the crop
    x2 = x.detach().clone().requires_grad_(True)
    warp_to_arcface(x2, antialias=True).square().sum().backward()
    frac_aa = (x2.grad.abs().sum(1) > 0).float().mean().item()
    # the ArcFace crop covers ~56% of the FFHQ crop; point sampling reaches ~1/3 of those pixels (0.19 measured)
    assert frac_plain < 0.25 and frac_aa > 0.5, (frac_plain, frac_aa)
    smooth = to_tensor01(smooth_image(512))
    assert (warp_to_arcface(smooth, antialias=True) - warp_to_arcface(smooth)).abs().max() < 0.02
    # exact gradient of the fixed linear map (float64 gradcheck on a small crop and output)
    small = torch.rand(1, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: warp_to_arcface(t, size=10), (small,))


# ----------------------------------------------------------------------------- IResNet / ArcFaceEncoder


def test_iresnet_shapes_and_insightface_keys(r18):
    assert r18(torch.randn(2, 3, 112, 112)).shape == (2, 512)
    keys = set(r18.state_dict())
    for k in (
        "conv1.weight",
        "bn1.running_mean",
        "prelu.weight",
        "layer1.0.bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.weight",
        "layer1.0.prelu.weight",
        "layer1.0.conv2.weight",
        "layer1.0.bn3.running_var",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer4.1.bn3.bias",
        "bn2.weight",
        "fc.weight",
        "fc.bias",
        "features.weight",
        "features.running_var",
    ):
        assert k in keys, k
    assert "layer1.2.bn1.weight" not in keys and "layer4.2.bn1.weight" not in keys  # r18: 2 blocks per stage
    assert tuple(r18.state_dict()["fc.weight"].shape) == (512, 512 * 7 * 7)
    r50 = iresnet("r50")
    assert "layer3.13.conv2.weight" in r50.state_dict() and "layer3.14.conv2.weight" not in r50.state_dict()
    assert sum(p.numel() for p in r50.parameters()) == pytest.approx(43.6e6, rel=0.02)  # arcface_torch r50
    with torch.no_grad():
        assert r50.eval()(torch.randn(1, 3, 112, 112)).shape == (1, 512)
    assert [len(getattr(r50, f"layer{i}")) for i in range(1, 5)] == [3, 4, 14, 3]
    assert IRESNET_LAYERS["r34"] == (3, 4, 6, 3)
    assert IRESNET_LAYERS["r100"] == (3, 13, 30, 3)
    with pytest.raises(ValueError, match="r50"):
        iresnet("r42")


@pytest.fixture(scope="module")
def r18_files(r18, tmp_path_factory):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("arcface")
    sd = {k: v.contiguous() for k, v in r18.state_dict().items()}
    torch.save(sd, d / "backbone.pth")
    save_file(sd, str(d / "backbone.safetensors"))
    # a training checkpoint: wrapped and DataParallel-prefixed
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, d / "ckpt.pt")
    return d


@pytest.fixture(scope="module")
def r18_reference_embedding(r18, aligned) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(r18(warp_to_arcface(numpy_to_tensor(aligned), antialias=True)), dim=1)


@pytest.mark.parametrize("fname", ["backbone.pth", "backbone.safetensors", "ckpt.pt"])
def test_arcface_from_pretrained_round_trip(r18, r18_files, r18_reference_embedding, aligned, fname):
    enc = ArcFaceEncoder.from_pretrained(r18_files / fname)
    assert enc.name == "arcface-r18" and enc.embedding_dim == 512 and enc.differentiable
    assert isinstance(enc, IdentityEncoder)
    for k, v in r18.state_dict().items():
        torch.testing.assert_close(enc.backbone.state_dict()[k], v, rtol=0, atol=0)
    with torch.no_grad():
        emb = enc.embed(numpy_to_tensor(aligned))
    assert emb.shape == (1, 512) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, r18_reference_embedding, atol=1e-5, rtol=0)


def test_arcface_checkpoint_errors(r18, r18_files, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"not an arcface_torch iresnet r34 state dict \(its blocks per stage look like 'r18'\).*missing",
    ):
        ArcFaceEncoder.from_pretrained(r18_files / "backbone.pth", arch="r34")
    sd = {k: v for k, v in r18.state_dict().items()}
    sd["fc.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "bad_shape.pth")
    with pytest.raises(ValueError, match=r"shape mismatch.*fc\.bias"):
        ArcFaceEncoder.from_pretrained(tmp_path / "bad_shape.pth")
    torch.save({"conv.weight": torch.zeros(3), "head.bias": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not look like an insightface"):
        ArcFaceEncoder.from_pretrained(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth.*never downloads.*backbone\.pth"):
        ArcFaceEncoder.from_pretrained(tmp_path / "nowhere.pth")
    # pickles that are not plain tensors are refused (weights_only=True)
    torch.save({"fc.weight": torch.zeros(1), "meta": object()}, tmp_path / "pickle.pth")
    with pytest.raises(ValueError, match="weights_only"):
        ArcFaceEncoder.from_pretrained(tmp_path / "pickle.pth")


def test_arcface_encoder_is_frozen_unit_norm_and_differentiable(r18, aligned):
    import copy

    enc = ArcFaceEncoder(copy.deepcopy(r18))
    enc.train()  # a parent calling .train() must not switch BatchNorm/dropout on
    assert not enc.training and not enc.backbone.training
    assert all(not p.requires_grad for p in enc.parameters())
    base = numpy_to_tensor(aligned)
    faces = torch.cat([base, base.flip(-1)]).requires_grad_(True)
    emb = enc.embed(faces)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    sim = cosine_similarity(emb[:1].detach(), emb)
    sim[1].backward()
    assert faces.grad is not None and faces.grad[1].abs().sum() > 0 and torch.isfinite(faces.grad).all()
    assert faces.grad[0].abs().sum() == 0  # the reference was detached
    assert all(p.grad is None for p in enc.parameters())
    # eval-mode BN: the embedding of a face does not depend on the rest of the batch
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(base), emb[:1].detach(), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- ONNX recognisers -> IResNet


def mxnet_style_onnx(model: IResNet, batch="N") -> onnx.ModelProto:
    """``model`` as an MXNet-era insightface recogniser graph: a Sub/Mul pixel normalisation with MXNet's node
    names, every BatchNorm a separate node with epsilon 2e-5, each block's shortcut written before its main path
    and added first, Dropout before the fully connected layer, an Identity at the end."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    inits = [const("mean", np.array(127.5, np.float32)), const("scale", np.array(1 / 127.5, np.float32))]
    n = helper.make_node
    nodes = [
        n("Sub", ["data", "mean"], ["sub"], name="_minusscalar0"),
        n("Mul", ["sub", "scale"], ["mul"], name="_mulscalar0"),
    ]

    def conv(x: str, key: str, stride: int, pad: int) -> str:
        w = sd[f"{key}.weight"]
        inits.append(const(f"{key}.weight", w))
        k = w.shape[-1]
        nodes.append(
            n("Conv", [x, f"{key}.weight"], [key], kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4)
        )
        return key

    def bn(x: str, key: str) -> str:
        names = [f"{key}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
        values = [sd[k] for k in names[:3]] + [sd[names[3]] - 1e-5]  # same BN with epsilon 2e-5
        inits.extend(const(k, v) for k, v in zip(names, values))
        nodes.append(n("BatchNormalization", [x, *names], [f"{key}_bn"], epsilon=2e-5, name=key))
        return f"{key}_bn"

    def prelu(x: str, key: str) -> str:
        inits.append(const(f"{key}.weight", sd[f"{key}.weight"].reshape(-1, 1, 1)))
        nodes.append(n("PRelu", [x, f"{key}.weight"], [key], name=key))
        return key

    x = prelu(bn(conv("mul", "conv1", 1, 1), "bn1"), "prelu")
    for i, blocks in enumerate(model.layers, 1):
        for j in range(blocks):
            key = f"layer{i}.{j}"
            shortcut = bn(conv(x, f"{key}.downsample.0", 2, 0), f"{key}.downsample.1") if j == 0 else x
            y = prelu(bn(conv(bn(x, f"{key}.bn1"), f"{key}.conv1", 1, 1), f"{key}.bn2"), f"{key}.prelu")
            y = bn(conv(y, f"{key}.conv2", 2 if j == 0 else 1, 1), f"{key}.bn3")
            nodes.append(n("Add", [shortcut, y], [f"{key}_plus"], name=f"{key}_plus"))
            x = f"{key}_plus"
    inits += [const("fc.weight", sd["fc.weight"]), const("fc.bias", sd["fc.bias"])]
    nodes += [
        n("Dropout", [bn(x, "bn2")], ["drop"], name="dropout0"),
        n("Flatten", ["drop"], ["flat"], axis=1, name="flatten0"),
        n("Gemm", ["flat", "fc.weight", "fc.bias"], ["pre_fc1"], transB=1, name="pre_fc1"),
    ]
    nodes.append(n("Identity", [bn("pre_fc1", "features")], ["fc1"], name="fc1"))
    return make_model(
        nodes,
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, 512])],
        inits,
    )


def test_exported_iresnet_converts_and_matches_onnxruntime(r18, r18_onnx):
    """A PyTorch export (Conv+BN folded, initialisers de-duplicated through Identity nodes) -> IResNet."""
    model = onnx.load_from_string(r18_onnx)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "BatchNormalization", "PRelu", "Add", "Gemm"} <= ops
    conv = convert_onnx_to_iresnet(model)
    assert conv.arch == "r18" and conv.backbone.layers == (2, 2, 2, 2) and not conv.pixel_input
    assert isinstance(conv.backbone, IResNet) and not conv.backbone.training
    # BatchNorms the exporter could not fold (before a Conv, in the head) are carried over exactly
    for k in ("layer2.1.bn1.running_var", "bn2.weight", "features.running_mean", "prelu.weight", "fc.weight"):
        torch.testing.assert_close(conv.backbone.state_dict()[k], r18.state_dict()[k], rtol=0, atol=0)
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    (ref,) = run_ort(model, x.numpy())
    with torch.no_grad():
        out = conv.backbone(x)
        direct = r18(x)
    assert out.shape == (2, 512) and 0.3 < out.std() < 10
    assert np.abs(out.numpy() - ref).max() < 1e-4
    assert (out - direct).abs().max() < 1e-4  # the same network; folding only changes the rounding
    # as an encoder: an exported PyTorch model has no Sub/Mul prefix, so it takes [-1, 1] input
    enc = OnnxArcFaceEncoder.from_onnx(r18_onnx)
    assert not enc.pixel_input and enc.input_size == 112 and enc.embedding_dim == 512 and enc.differentiable
    assert isinstance(enc, IdentityEncoder) and all(not p.requires_grad for p in enc.parameters())
    xg = x[:1].clone().requires_grad_(True)
    enc.backbone(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    # without constant folding (separate BatchNorms, PRelu slopes through Unsqueeze), opset 11
    unfolded = export_onnx(r18, do_constant_folding=False, opset_version=11)
    assert "Unsqueeze" in {n.op_type for n in onnx.load_from_string(unfolded).graph.node}
    with torch.no_grad():
        out2 = convert_onnx_to_iresnet(unfolded).backbone(x)
    assert np.abs(out2.numpy() - run_ort(onnx.load_from_string(unfolded), x.numpy())[0]).max() < 1e-4
    torch.testing.assert_close(out2, direct, atol=1e-5, rtol=0)


def test_mxnet_style_recogniser_through_the_factory(r18, r18_onnx, aligned, tmp_path):
    """Sub/Mul prefix, separate BatchNorms (epsilon 2e-5), shortcut first: insightface's pixel-input rule."""
    graph = mxnet_style_onnx(r18)
    onnx.save(graph, str(tmp_path / "w600k_tiny.onnx"))
    enc = load_identity_encoder("arcface-onnx", tmp_path / "w600k_tiny.onnx")  # via the factory, from disk
    enc_folder = OnnxArcFaceEncoder.from_pretrained(tmp_path)  # a folder holding w600k_*.onnx
    enc_plain = OnnxArcFaceEncoder.from_onnx(r18_onnx)
    assert isinstance(enc, OnnxArcFaceEncoder) and enc.name == "arcface-onnx:w600k_tiny"
    assert enc.pixel_input and not enc_plain.pixel_input and enc.embedding_dim == 512
    torch.testing.assert_close(enc.input_scale.flatten(), torch.full((3,), 1 / 127.5))
    torch.testing.assert_close(enc.input_shift.flatten(), torch.full((3,), -1.0))
    for k, v in r18.state_dict().items():  # separate BatchNorms: every weight carried over
        if v.is_floating_point():
            torch.testing.assert_close(enc.backbone.state_dict()[k], v, atol=1e-6, rtol=1e-6)
    base = numpy_to_tensor(aligned)
    faces = torch.cat([base, base.flip(-2)]).requires_grad_(True)
    emb = enc.embed(faces)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    # insightface's rule: the Sub/Mul graph is fed RGB 0..255, the plain one (x - 127.5) / 127.5 == our [-1, 1]
    warped = warp_to_arcface(base, antialias=True)
    (ref,) = run_ort(graph, ((warped + 1) * 127.5).numpy())
    (ref_plain,) = run_ort(onnx.load_from_string(r18_onnx), warped.numpy())
    np.testing.assert_allclose(ref, ref_plain, atol=1e-4)
    torch.testing.assert_close(emb[:1].detach(), F.normalize(torch.from_numpy(ref), dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(enc_plain.embed(faces.detach()), emb.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(enc_folder.embed(base), emb[:1].detach(), atol=1e-6, rtol=0)
    # differentiable end to end
    cosine_similarity(emb[0].detach(), emb[1:]).sum().backward()
    assert faces.grad[1].abs().sum() > 0
    # a graph exported with a fixed batch of 1 still embeds batches; float64 works
    fixed = OnnxArcFaceEncoder.from_onnx(mxnet_style_onnx(r18, batch=1), dtype=torch.float64)
    torch.testing.assert_close(fixed.embed(faces.detach()), emb.detach(), atol=1e-5, rtol=0)


def test_converted_weights_are_cached_by_content(r18, r18_onnx, tmp_path, monkeypatch, caplog):
    onnx_dir = tmp_path / "buffalo_l"
    onnx_dir.mkdir()
    path = onnx_dir / "w600k_r18.onnx"
    path.write_bytes(r18_onnx)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = OnnxArcFaceEncoder.from_pretrained(path)
    cached = sorted(onnx_dir.glob("w600k_r18.iresnet-*.safetensors"))
    assert len(cached) == 1 and sorted(p.name for p in onnx_dir.iterdir()) == sorted(
        [path.name, cached[0].name]
    )
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        ref = first.embed(x)

    # the second load reads the cache: no conversion, no onnx package needed
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(arcface_onnx, "convert_onnx_to_iresnet", no_conversion)
    monkeypatch.setitem(sys.modules, "onnx", None)
    second = load_identity_encoder("arcface-onnx", onnx_dir)
    with torch.no_grad():
        torch.testing.assert_close(second.embed(x), ref, atol=0, rtol=0)
    assert not second.pixel_input and second.backbone.layers == (2, 2, 2, 2)
    monkeypatch.undo()

    # a read-only folder: the user cache folder, keyed by the file's sha256
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(arcface_onnx, "_writable", lambda folder: folder != onnx_dir)
    cached[0].unlink()
    OnnxArcFaceEncoder.from_pretrained(path)
    sha = hashlib.sha256(r18_onnx).hexdigest()
    assert (tmp_path / "cache" / "authface" / "arcface-onnx" / f"{sha}.safetensors").is_file()
    assert not list(onnx_dir.glob("*.safetensors"))

    # another file under the same name is converted anew; a damaged cache is rebuilt with a warning
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    path.write_bytes(mxnet_style_onnx(r18).SerializeToString())
    other = OnnxArcFaceEncoder.from_pretrained(path)
    assert other.pixel_input
    (new_cache,) = onnx_dir.glob("*.safetensors")
    new_cache.write_bytes(b"not a safetensors file")
    again = OnnxArcFaceEncoder.from_pretrained(path)
    assert again.pixel_input and any("ignoring cached" in r.getMessage() for r in caplog.records)
    with torch.no_grad():
        torch.testing.assert_close(again.embed(x), ref, atol=1e-5, rtol=0)  # the same network


def test_unconvertible_graphs_name_the_file_and_the_node(r18_onnx, tmp_path, monkeypatch):
    # not an IResNet: a small Conv -> BN -> PRelu -> Conv -> pooling network
    onnx.save(tiny_recogniser(prefix=True), str(tmp_path / "w600k_tiny.onnx"))
    with pytest.raises(
        ValueError, match=r"cannot convert '.*w600k_tiny\.onnx'.*Conv \(node 'c1'\) for conv1"
    ):
        load_identity_encoder("arcface-onnx", tmp_path / "w600k_tiny.onnx")
    assert not list(tmp_path.glob("*.safetensors"))
    # an IResNet whose graph goes on after the embedding (an L2 normalisation)
    model = onnx.load_from_string(r18_onnx)
    out = model.graph.output[0].name
    model.graph.node[-1].output[0] = "raw"
    model.graph.node.extend(
        [
            helper.make_node("ReduceL2", ["raw"], ["norm"], keepdims=1, name="l2"),
            helper.make_node("Div", ["raw", "norm"], [out], name="normalise"),
        ]
    )
    with pytest.raises(ValueError, match=r"the ONNX model.*continues with ReduceL2 \(node 'l2'\)"):
        OnnxArcFaceEncoder.from_onnx(model)
    # a convolution that IResNet does not have
    model = onnx.load_from_string(r18_onnx)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    next(a for a in conv.attribute if a.name == "strides").ints[:] = [2, 2]
    with pytest.raises(ValueError, match=r"Conv \(node '/conv1/Conv'\) for conv1 has .*strides"):
        OnnxArcFaceEncoder.from_onnx(model)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"authface\[onnx\]"):
        OnnxArcFaceEncoder.from_onnx(r18_onnx)


# ----------------------------------------------------------------------------- dlib judge


@pytest.fixture(scope="module")
def judge() -> DlibFaceJudge:
    return DlibFaceJudge()


def test_dlib_judge_same_face_vs_others(judge, aligned):
    shifted = np.roll(aligned, (6, -5), axis=(0, 1))
    ok, buf = cv2.imencode(".jpg", aligned[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])
    jpeg = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    upside_down = np.ascontiguousarray(aligned[::-1])
    cat = cv2.resize(data.chelsea(), (512, 512), interpolation=cv2.INTER_AREA)
    emb = judge.embed(np.stack([aligned, shifted, jpeg, upside_down, cat]))
    assert emb.shape == (5, 128) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5), atol=1e-5, rtol=0)
    sim = cosine_similarity(emb[0], emb)
    assert sim[1] > 0.97 and sim[2] > 0.97, sim  # measured ~0.999
    # dlib's normalised descriptors are compressed (unrelated images still score ~0.9), but the gap is clear
    assert sim[3] < 0.95 and sim[4] < 0.95, sim
    assert min(sim[1], sim[2]) - max(sim[3], sim[4]) > 0.05, sim
    # tensor input ([-1, 1] RGB (B, 3, S, S)) gives the same descriptors as uint8 input
    t = numpy_to_tensor(np.stack([aligned, cat]))
    torch.testing.assert_close(judge.embed(t), emb[[0, 4]], atol=1e-5, rtol=0)
    assert judge.differentiable is False and judge.embedding_dim == 128
    assert isinstance(judge, IdentityEncoder)
    with pytest.raises(ValueError, match="uint8 RGB"):
        judge.embed(aligned.astype(np.float32))


# ----------------------------------------------------------------------------- cosine & factory


def test_cosine_similarity_shapes_and_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(cosine_similarity(a, b), torch.tensor([1.0, 0.0, -1.0]))
    torch.testing.assert_close(
        cosine_similarity(a, torch.tensor([1.0, 0.0])), torch.tensor([1.0, 0.0, 2**-0.5])
    )
    torch.testing.assert_close(
        cosine_similarity(torch.tensor([0.0, 3.0]), a), torch.tensor([0.0, 1.0, 2**-0.5])
    )
    assert cosine_similarity(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).shape == (1,)
    with pytest.raises(ValueError, match="same D"):
        cosine_similarity(a, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="broadcast"):
        cosine_similarity(a, torch.zeros(2, 2))


def test_load_identity_encoder_names_and_errors(r18_files, tmp_path):
    assert IDENTITY_ENCODER_NAMES == ("dlib-resnet", "arcface", "arcface-onnx", "dlib")
    with pytest.raises(ValueError, match=r"unknown identity encoder 'facenet'.*arcface, arcface-onnx, dlib"):
        load_identity_encoder("facenet")
    with pytest.raises(ValueError, match=r"needs a local weights file.*backbone\.pth"):
        load_identity_encoder("arcface")
    with pytest.raises(ValueError, match=r"needs a local weights file.*w600k_r50\.onnx"):
        load_identity_encoder("arcface-onnx")
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx.*buffalo_l.*w600k_r50\.onnx"):
        load_identity_encoder("arcface-onnx", tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match=r"no insightface recogniser.*w600k_r50\.onnx"):
        load_identity_encoder("arcface-onnx", tmp_path)  # an empty folder
    with pytest.raises(FileNotFoundError, match="dlib face recognition model"):
        load_identity_encoder("dlib", tmp_path)
    enc = load_identity_encoder(
        "ArcFace", r18_files / "backbone.safetensors", arch="r18", dtype=torch.float64
    )
    assert isinstance(enc, ArcFaceEncoder) and enc.name == "arcface-r18"
    assert next(enc.parameters()).dtype == torch.float64
