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
