"""Quality scorers: ScoreMap, built-in sharpness, NIQE machinery, pyiqa glue (with a fake pyiqa), factory.

Offline and CPU only. NIQE's official pristine parameters are not in the repository: its machinery is tested
against known statistical properties, an independent numpy re-implementation of BasicSR's formulas, and a
pristine model fitted in the test; the official file is used only when AUTHFACE_NIQE_PARAMS points at it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from authface.imaging import gaussian_window
from authface.models import quality as Q
from authface.models.quality import (
    NIQEParams,
    NIQEScorer,
    PyiqaScorer,
    QualityScorer,
    ScoreMap,
    SharpnessScorer,
    create_quality_scorer,
)
from authface.models.quality import niqe as N


def _t(img: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (B, H, W, 3) -> float32 [0, 1] (B, 3, H, W)."""
    a = np.ascontiguousarray(img)
    x = torch.from_numpy(a).float() / 255.0
    return x.permute(2, 0, 1)[None] if a.ndim == 3 else x.permute(0, 3, 1, 2)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return img if sigma == 0 else cv2.GaussianBlur(img, (0, 0), sigma)


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


def _close(actual: torch.Tensor, expected, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    """Compare values (torch.testing.assert_close costs seconds of lazy imports on first use)."""
    a = actual.detach().cpu().double().numpy()
    e = (
        expected.detach().cpu().double().numpy()
        if torch.is_tensor(expected)
        else np.asarray(expected, np.float64)
    )
    assert a.shape == e.shape, (a.shape, e.shape)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def camera_rgb() -> np.ndarray:
    from skimage import data

    return np.repeat(data.camera()[..., None], 3, axis=2)


# ----------------------------------------------------------------------------------------------------------------
# ScoreMap
# ----------------------------------------------------------------------------------------------------------------


def test_scoremap_linear_clips_to_unit_interval():
    m = ScoreMap("linear", lo=0.0, hi=10.0)
    out = m(torch.tensor([-5.0, 0.0, 2.5, 5.0, 10.0, 15.0]))
    assert torch.equal(out, torch.tensor([0.0, 0.0, 0.25, 0.5, 1.0, 1.0]))
    assert not m.lower_better
    assert m(torch.tensor([3, 7])).dtype == torch.float32  # integers become float


def test_scoremap_inverted_for_lower_is_better():
    m = ScoreMap("linear", lo=10.0, hi=2.0)  # NIQE-like
    out = m(torch.tensor([1.0, 2.0, 4.0, 6.0, 10.0, 12.0], dtype=torch.float64))
    _close(out, torch.tensor([1.0, 1.0, 0.75, 0.5, 0.0, 0.0]))
    assert out.dtype == torch.float64  # floating dtype kept
    assert m.lower_better


def test_scoremap_sigmoid_and_its_inversion():
    m = ScoreMap("sigmoid", center=5.0, scale=2.0)
    out = m(torch.tensor([5.0, 5.0 + 2.0 * math.log(3.0), 5.0 - 2.0 * math.log(3.0)]))
    _close(out, torch.tensor([0.5, 0.75, 0.25]))
    flipped = ScoreMap("sigmoid", center=5.0, scale=-2.0)
    _close(flipped(torch.tensor([5.0 + 2.0 * math.log(3.0)])), torch.tensor([0.25]))
    assert flipped.lower_better and not m.lower_better


def test_scoremap_gradients_at_the_bounds():
    raw = torch.tensor([-5.0, 5.0, 15.0], requires_grad=True)
    st = ScoreMap("linear", lo=0.0, hi=10.0)  # straight-through (default)
    out = st(raw)
    assert out.min() >= 0.0 and out.max() <= 1.0
    (g,) = torch.autograd.grad(out.sum(), raw)
    _close(g, torch.full((3,), 0.1))  # slope of the line everywhere

    hard = ScoreMap("linear", lo=0.0, hi=10.0, straight_through=False)
    (g,) = torch.autograd.grad(hard(raw).sum(), raw)
    _close(g, torch.tensor([0.0, 0.1, 0.0]))  # plain clamp: none outside

    inv = ScoreMap("linear", lo=10.0, hi=2.0)
    (g,) = torch.autograd.grad(inv(raw).sum(), raw)
    _close(g, torch.full((3,), -0.125))


def test_scoremap_validation_fit_and_serialisation():
    with pytest.raises(ValueError, match="kind"):
        ScoreMap("cubic")
    with pytest.raises(ValueError, match="hi != lo"):
        ScoreMap("linear", lo=1.0, hi=1.0)
    with pytest.raises(ValueError, match="scale"):
        ScoreMap("sigmoid", scale=0.0)
    scores = np.arange(101, dtype=np.float64)  # 0..100
    m = ScoreMap.fit(scores, quantiles=(0.1, 0.9))
    assert (m.lo, m.hi) == pytest.approx((10.0, 90.0))
    m_inv = ScoreMap.fit(scores, lower_better=True, quantiles=(0.1, 0.9))
    assert (m_inv.lo, m_inv.hi) == pytest.approx((90.0, 10.0))
    assert float(m_inv(torch.tensor(10.0))) == pytest.approx(1.0)
    assert ScoreMap(**dataclasses.asdict(m_inv)) == m_inv
    with pytest.raises(ValueError, match="spread"):
        ScoreMap.fit([3.0, 3.0, 3.0])


# ----------------------------------------------------------------------------------------------------------------
# Sharpness
# ----------------------------------------------------------------------------------------------------------------


def test_sharpness_is_monotone_in_blur_and_calibrated(astronaut, camera_rgb):
    s = SharpnessScorer()
    assert isinstance(s, QualityScorer) and s.differentiable and s.name == "sharpness"
    sigmas = (0, 1, 2, 3, 4)
    for img in (astronaut, camera_rgb):
        batch = _t(np.stack([_blur(img, sg) for sg in sigmas]))
        raw = s.raw(batch)
        assert raw.shape == (5,)
        assert torch.all(raw[:-1] - raw[1:] > 0.4), raw  # strictly and clearly decreasing
    q = s(_t(np.stack([_blur(astronaut, sg) for sg in sigmas])))
    assert ((q >= 0) & (q <= 1)).all()
    # calibration documented in SharpnessScorer: astronaut 0.88 sharp, 0.23 at sigma 3
    assert 0.82 <= float(q[0]) <= 0.92, q
    assert 0.15 <= float(q[3]) <= 0.30, q
    assert float(s.raw(_t(astronaut))) == pytest.approx(-5.38, abs=0.03)


def test_sharpness_is_differentiable(astronaut):
    s = SharpnessScorer()
    x = _t(_blur(astronaut, 2)[::2, ::2]).requires_grad_(True)
    (g,) = torch.autograd.grad(s(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # a small step along the gradient raises the score, a step against it lowers it
    base = float(s(x.detach()))
    step = 0.5 / 255 * g / g.abs().max()
    assert float(s((x + step).detach())) > base > float(s((x - step).detach()))


def test_sharpness_does_not_depend_on_input_size(astronaut):
    s = SharpnessScorer()
    q512 = float(s(_t(astronaut)))
    q256 = float(s(_t(cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA))))
    q1024 = float(s(_t(cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC))))
    assert abs(q512 - q256) < 0.03 and abs(q512 - q1024) < 0.03, (q256, q512, q1024)
    # non-square inputs: shorter side to the working size
    assert s.raw(_t(astronaut[:, :384])).shape == (1,)


def test_sharpness_input_checks():
    s = SharpnessScorer()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        s(torch.rand(1, 1, 64, 64))
    with pytest.raises(TypeError):
        s(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="floating"):
        s(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    flat = float(s.raw(torch.full((1, 3, 64, 64), 0.5)))
    assert flat == pytest.approx(math.log(s.eps), abs=1e-3)  # flat image: variance 0, finite score


# ----------------------------------------------------------------------------------------------------------------
# NIQE machinery
# ----------------------------------------------------------------------------------------------------------------


def _ref_aggd(block: np.ndarray) -> tuple[float, float, float]:
    """BasicSR's estimate_aggd_param, written out with scipy (brute-force argmin over the 9801-point grid)."""
    from scipy.special import gamma

    block = block.ravel()
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))
    left_std = np.sqrt(np.mean(block[block < 0] ** 2))
    right_std = np.sqrt(np.mean(block[block > 0] ** 2))
    gh = left_std / right_std
    rhat = np.mean(np.abs(block)) ** 2 / np.mean(block**2)
    rn = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rn) ** 2)]
    c = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * c, right_std * c


def test_aggd_fit_recovers_known_shapes():
    rng = np.random.default_rng(0)
    n = 40000
    gauss = rng.normal(0.0, 0.5, (3, n))
    laplace = rng.laplace(0.0, 1.0, (3, n))
    a, bl, br = Q.aggd_fit(torch.from_numpy(gauss))
    assert torch.all((a - 2.0).abs() < 0.06), a
    # GGD scale of a Gaussian with std s is s * sqrt(2)
    _close(bl, torch.full((3,), 0.5 * math.sqrt(2), dtype=torch.float64), atol=0.01)
    a, _, _ = Q.aggd_fit(torch.from_numpy(laplace))
    assert torch.all((a - 1.0).abs() < 0.05), a
    # asymmetric: an AGGD with shape 2 and beta_r = 2 beta_l puts mass beta_l / (beta_l + beta_r) = 1/3 left
    half = np.abs(rng.normal(0.0, 1.0, n))
    asym = np.where(rng.uniform(size=n) < 1 / 3, -half, 2 * half)[None]
    a, bl, br = Q.aggd_fit(torch.from_numpy(asym))
    assert abs(float(a) - 2.0) < 0.08 and float(br / bl) == pytest.approx(2.0, rel=0.03)
    # uniform samples are as platykurtic as the grid allows
    a, _, _ = Q.aggd_fit(torch.from_numpy(rng.uniform(-1, 1, (1, n))))
    assert float(a) == pytest.approx(10.0)
    # one-sided data: BasicSR's NaN conventions
    a, bl, br = Q.aggd_fit(torch.from_numpy(np.abs(gauss[:1]) + 0.1))
    assert float(a) == pytest.approx(0.2) and torch.isnan(bl).all() and torch.isfinite(br).all()


def test_aggd_fit_matches_basicsr_formula_and_has_inverse_gradient():
    rng = np.random.default_rng(1)
    samples = [rng.normal(0, 1, 3000) * rng.uniform(0.2, 3.0, 3000) ** p for p in (0.0, 0.5, 1.0, 2.0)]
    samples.append(rng.gamma(0.7, 1.0, 3000) * rng.choice([-1.0, 0.6], 3000))
    x = torch.from_numpy(np.stack(samples))
    a, bl, br = Q.aggd_fit(x)
    for i, smp in enumerate(samples):
        ra, rbl, rbr = _ref_aggd(smp)
        assert float(a[i]) == pytest.approx(ra, abs=1e-12)  # the same grid point
        assert float(bl[i]) == pytest.approx(rbl, rel=1e-10) and float(br[i]) == pytest.approx(rbr, rel=1e-10)
    # d alpha / d rho equals the slope of the inverse of r(alpha) measured on the grid
    gam, r = N._aggd_grid_np()
    assert np.all(np.diff(r) > 0)  # r is increasing: argmin == nearest neighbour
    for i in (800, 1800, 3000, 6000):
        rho = torch.tensor([r[i]], dtype=torch.float64, requires_grad=True)
        alpha = N._AGGDShape.apply(rho)
        assert float(alpha.detach()) == pytest.approx(gam[i])
        (g,) = torch.autograd.grad(alpha.sum(), rho)
        slope = (gam[i + 5] - gam[i - 5]) / (r[i + 5] - r[i - 5])
        assert float(g) == pytest.approx(slope, rel=1e-3)


def test_mscn_matches_scipy_and_known_properties():
    from scipy.ndimage import convolve

    rng = np.random.default_rng(2)
    w = gaussian_window()
    assert w.shape == (7, 7) and w.sum() == pytest.approx(1.0)
    y = np.clip(rng.normal(128, 30, (128, 160)), 0, 255).round()
    mu = convolve(y, w, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(y * y, w, mode="nearest") - mu * mu))
    ref = (y - mu) / (sigma + 1)
    ours = Q.mscn(torch.from_numpy(y), w).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    # white noise: symmetric, unit-scale MSCN; its shape is ~3 (platykurtic: each value is normalised by a
    # local deviation that includes itself) — 2.99 with BasicSR's own code on this image
    a, bl, br = _ref_aggd(ref)
    ta, tbl, tbr = Q.aggd_fit(torch.from_numpy(ref.reshape(1, -1)))
    assert (
        float(ta) == pytest.approx(a) and 2.6 < a < 3.4 and float(tbl / tbr) == pytest.approx(1.0, abs=0.05)
    )
    # a flat image has (numerically) zero MSCN
    assert Q.mscn(torch.full((64, 64), 100.0, dtype=torch.float64), w).abs().max() < 1e-9


def test_matlab_half_resize_matrix():
    m = N._imresize_half_matrix(20)
    assert m.shape == (10, 20)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-12)
    ramp = np.arange(1, 21, dtype=np.float64)
    # bicubic reproduces linear functions: output i (1-based) samples the ramp at 2i - 0.5 away from borders
    np.testing.assert_allclose((m @ ramp)[2:-2], 2 * np.arange(3, 9) - 0.5, atol=1e-12)
    assert N._imresize_half_matrix(7).shape == (4, 7)


@pytest.fixture(scope="module")
def pristine_params(astronaut):
    """A synthetic pristine model: the MVG of the sharp astronaut's own 25 96x96 blocks."""
    return Q.fit_niqe_params(_t(astronaut).double())


def test_niqe_with_synthetic_pristine_model_ranks_degradations(tmp_path, astronaut, pristine_params):
    path = tmp_path / "pris.npz"
    pristine_params.save(path)
    with np.load(path) as d:
        assert d["mu_pris_param"].shape == (1, 36) and d["cov_pris_param"].shape == (36, 36)
    scorer = create_quality_scorer("niqe", model_path=path)
    assert isinstance(scorer, QualityScorer) and scorer.name == "niqe"
    batch = _t(np.stack([astronaut, _blur(astronaut, 2), _noisy(astronaut, 25)]))
    raw = scorer.raw(batch)
    assert raw.shape == (3,) and raw.dtype == torch.float32
    assert float(raw[0]) < 0.01  # its own model: distance ~0
    assert 5.0 < float(raw[1]) < float(raw[2]), raw  # astronaut < blurred < noisy
    q = scorer(batch)
    assert float(q[0]) == pytest.approx(1.0) and float(q[2]) == pytest.approx(0.0)  # lo=10, hi=2 clipped


def test_niqe_is_differentiable_and_its_gradient_lowers_niqe(astronaut, pristine_params):
    scorer = NIQEScorer(pristine_params)
    assert scorer.differentiable
    x = _t(_noisy(astronaut, 15)[:192, :288]).requires_grad_(True)
    v = scorer.raw(x)
    (g,) = torch.autograd.grad(v.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    step = 0.5 / 255 * g / g.abs().max()
    down = float(scorer.raw((x - step).detach()))
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    rand = float(scorer.raw((x + 0.5 / 255 * r / r.abs().max()).detach()))
    v0 = float(v.detach())
    assert down < 0.93 * v0, (v0, down)
    assert abs(rand - v0) < abs(down - v0) / 3, (v0, down, rand)


def test_niqe_errors(tmp_path, pristine_params):
    with pytest.raises(ValueError, match="basicsr/metrics/niqe_pris_params.npz"):
        NIQEScorer(None)
    with pytest.raises(FileNotFoundError, match="basicsr/metrics/niqe_pris_params.npz"):
        NIQEScorer(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu=np.zeros(36))
    with pytest.raises(ValueError, match="missing keys"):
        NIQEScorer(bad)
    with pytest.raises(ValueError, match="needs model_path"):
        create_quality_scorer("niqe")
    scorer = NIQEScorer(pristine_params)
    with pytest.raises(ValueError, match="at least 96x96"):
        scorer.raw(torch.rand(1, 3, 80, 200))
    with pytest.raises(ValueError, match="1 usable block"):
        scorer.raw(torch.rand(1, 3, 100, 100))  # one block: no covariance
    with pytest.raises(ValueError, match="36"):
        NIQEParams(np.zeros(10), np.eye(36), gaussian_window())


@pytest.mark.skipif(
    not os.environ.get("AUTHFACE_NIQE_PARAMS"), reason="set AUTHFACE_NIQE_PARAMS=niqe_pris_params.npz"
)
def test_niqe_with_official_parameters(astronaut):
    scorer = NIQEScorer(os.environ["AUTHFACE_NIQE_PARAMS"])
    raw = scorer.raw(
        _t(np.stack([astronaut, _blur(astronaut, 1), _blur(astronaut, 3), _noisy(astronaut, 25)]))
    )
    # BasicSR's niqe() run in float64 gives 3.10045 for astronaut (its float32 code as published: 3.0646)
    assert float(raw[0]) == pytest.approx(3.1005, abs=2e-3)
    assert float(raw[0]) < float(raw[1]) < float(raw[2]) and float(raw[0]) < float(raw[3])
    baboon = os.environ.get("AUTHFACE_NIQE_BABOON")  # BasicSR's tests/data/baboon.png
    if baboon:
        img = cv2.cvtColor(cv2.imread(baboon, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        # published in BasicSR's calculate_niqe: MATLAB R2021a 5.72957338, BasicSR 5.7295763
        assert float(scorer.raw(_t(img).double())) == pytest.approx(5.72957, abs=1e-3)


# ----------------------------------------------------------------------------------------------------------------
# pyiqa glue (fake pyiqa)
# ----------------------------------------------------------------------------------------------------------------


class _FakeMetric(nn.Module):
    """Returns (B, 1) = scale * mean brightness (differentiable), like pyiqa's InferenceModel."""

    def __init__(self, lower_better: bool, scale: float, score_range=None, metric_mode="NR"):
        super().__init__()
        self.lower_better, self.scale, self.score_range, self.metric_mode = (
            lower_better,
            scale,
            score_range,
            metric_mode,
        )
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return (self.scale * x.mean(dim=(1, 2, 3))).unsqueeze(1)


@pytest.fixture
def fake_pyiqa(monkeypatch):
    calls = []
    specs = {  # name -> (lower_better, scale, score_range, mode)
        "musiq": (False, 100.0, "~0, ~100", "NR"),
        "niqe": (True, 10.0, "~0, ~100", "NR"),
        "newmetric": (True, 5.0, "0, 5", "NR"),
        "oddmetric": (False, 1.0, "0, ~", "NR"),
        "lpips": (True, 1.0, "0, 1", "FR"),
    }

    def create_metric(metric_name, as_loss=False, device=None, **kwargs):
        calls.append(dict(metric_name=metric_name, as_loss=as_loss, device=device, **kwargs))
        assert metric_name in specs, f"Metric {metric_name} not implemented yet."
        lb, scale, rng, mode = specs[metric_name]
        return _FakeMetric(lb, scale, rng, mode)

    mod = types.ModuleType("pyiqa")
    mod.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", mod)
    return calls


def test_pyiqa_scorer_passes_arguments_and_normalises(fake_pyiqa, tmp_path):
    weights = tmp_path / "musiq.pth"
    weights.write_bytes(b"\0")
    s = create_quality_scorer("pyiqa:musiq", model_path=weights, device="cpu")
    assert isinstance(s, PyiqaScorer) and isinstance(s, QualityScorer)
    assert fake_pyiqa[-1] == dict(
        metric_name="musiq",
        as_loss=True,
        device="cpu",
        pretrained_model_path=str(weights),
        loss_reduction="none",
    )
    assert s.name == "pyiqa:musiq" and s.differentiable and not s.lower_better
    x = torch.stack([torch.full((3, 8, 8), v) for v in (0.2, 0.5, 1.3)]).requires_grad_(True)
    raw = s.raw(x)
    _close(raw, torch.tensor([20.0, 50.0, 100.0]))  # inputs clamped to [0, 1]
    assert s.metric.seen[-1].max() <= 1.0
    q = s(x)
    _close(q, torch.tensor([0.2, 0.5, 1.0]))  # musiq: 0..100
    (g,) = torch.autograd.grad(q[:2].sum(), x)
    assert g[:2].abs().sum() > 0


def test_pyiqa_scorer_orientation_and_fallback_maps(fake_pyiqa, caplog):
    x = torch.stack([torch.full((3, 8, 8), v) for v in (0.2, 0.6)])
    niqe = PyiqaScorer("niqe", differentiable=False)
    assert fake_pyiqa[-1] == dict(metric_name="niqe", as_loss=False, device=None)  # no weights, no reduction
    assert niqe.lower_better and niqe.score_map.lower_better
    _close(niqe.raw(x), torch.tensor([2.0, 6.0]))
    _close(niqe(x), torch.tensor([1.0, 0.5]))  # lo=10, hi=2
    new = PyiqaScorer("newmetric")  # unknown to AuthFace: pyiqa's range "0, 5", lower better
    assert (new.score_map.lo, new.score_map.hi) == (5.0, 0.0)
    _close(new(x), torch.tensor([0.8, 0.4]))
    odd = PyiqaScorer("oddmetric")  # open-ended range: [0, 1] with a warning
    assert (odd.score_map.lo, odd.score_map.hi) == (0.0, 1.0)
    assert any("oddmetric" in r.getMessage() for r in caplog.records)
    custom = PyiqaScorer("musiq", score_map=ScoreMap("sigmoid", center=50.0, scale=10.0))
    _close(custom(x), torch.sigmoid(torch.tensor([-3.0, 1.0])))


def test_pyiqa_scorer_errors(fake_pyiqa, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="no metric 'nosuch'"):
        PyiqaScorer("nosuch")
    with pytest.raises(ValueError, match="no-reference"):
        PyiqaScorer("lpips")
    with pytest.raises(FileNotFoundError, match="pretrained_model_path"):
        PyiqaScorer("musiq", pretrained_model_path=tmp_path / "nope.pth")
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import pyiqa -> ImportError
    with pytest.raises(ImportError, match=r"authface\[iqa\]"):
        create_quality_scorer("pyiqa:topiq_nr-face")


# ----------------------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------------------


def test_create_quality_scorer_names_and_errors():
    s = create_quality_scorer("sharpness", score_map=ScoreMap("linear", lo=-9.0, hi=-5.0), working_size=128)
    assert isinstance(s, SharpnessScorer) and s.working_size == 128 and s.score_map.lo == -9.0
    assert isinstance(create_quality_scorer(" Sharpness ", device="cpu"), SharpnessScorer)
    with pytest.raises(ValueError, match=r"sharpness, niqe, pyiqa:<metric>"):
        create_quality_scorer("brisque")
    with pytest.raises(ValueError, match="needs a metric name"):
        create_quality_scorer("pyiqa:")
    with pytest.raises(ValueError, match="no model file"):
        create_quality_scorer("sharpness", model_path="x.pth")
    with pytest.raises(ValueError, match="non-empty"):
        create_quality_scorer("")
