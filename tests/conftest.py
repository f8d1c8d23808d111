"""Shared fixtures. Tests are offline (HF_HUB_OFFLINE=1, network sockets refused), CPU only, tiny models."""

from __future__ import annotations

import os
import socket

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Under pytest-xdist, share the cores between the workers (and the kernels and CLI processes they start): N workers
# each running torch/OpenMP with every core oversubscribe the machine, and spinning OpenMP threads then slow some
# tests 20-fold (a 10 s test took 200 s with -n 2 on 2 cores).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photo with one face, shipped in scikit-image: uint8 RGB (512, 512, 3)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random AuthFace model folder on disk (its output is noise)."""
    from authface.testing.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, astronaut):
    """The training tests' dataset: four distinct 64 px faces prepared by `authface prepare` from shifted, scaled
    and recoloured copies of the astronaut (read-only: tests that damage it work on a copy)."""
    import cv2
    from PIL import Image

    from authface.data.prepare import PrepareSettings, prepare_dataset

    root = tmp_path_factory.mktemp("train")
    src = root / "photos"
    src.mkdir()
    h, w = astronaut.shape[:2]
    for i, (dx, dy, scale, gain) in enumerate([(0, 0, 1.0, 1.0), (30, 10, 0.9, 1.15), (-25, 20, 1.1, 0.85),
                                               (15, -20, 0.95, 1.3)]):  # fmt: skip
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * i, scale)
        m[:, 2] += (dx, dy)
        img = cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        Image.fromarray(np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)).save(src / f"photo_{i}.png")
    out = root / "ds"
    prepare_dataset([str(src)], out, PrepareSettings(crop_size=64, min_face_size=32, dedupe_threshold=-1))
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4
    return out


@pytest.fixture(scope="session")
def train_script():
    """``main(argv) -> exit code`` of training/train.py, the script users launch (loaded from its file)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("train_script", Path(__file__).resolve().parents[1] / "training"
                                                  / "train.py")  # fmt: skip
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.main



@pytest.fixture()
def straight_and_resumed(tmp_path):
    """``run(make_cfg, steps, every) -> (straight, resumed)``: the output folders of one training run of ``steps``
    optimiser steps straight through (``tmp_path/"full"``) and of the same run stopped at step ``every`` and resumed
    from ``latest`` (``tmp_path/"part"``); ``make_cfg(out, *overrides)`` builds each TrainConfig, checkpoints every
    ``every`` steps, all kept."""

    def run(make_cfg, steps: int, every: int):
        from authface.training import train

        common = ("optim.learning_rate=1e-3", f"output.checkpointing_steps={every}",
                  "output.checkpoints_total_limit=null")  # fmt: skip
        straight = train(make_cfg(tmp_path / "full", f"optim.max_steps={steps}", *common))
        part = tmp_path / "part"
        train(make_cfg(part, f"optim.max_steps={every}", *common))
        resumed = train(make_cfg(part, f"optim.max_steps={steps}", "output.resume_from_checkpoint=latest", *common))
        return straight, resumed

    return run
