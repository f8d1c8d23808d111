"""Offline and not-found errors (issue 15 item 2, issue 9 item 11): no network is detected once and fast, the
message names HF_HUB_OFFLINE=1, the options that take local copies and the download command that exists in the
installed huggingface_hub; cached hub models load offline without any hub warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from authface.config import DEFAULT_BASE_MODEL, DEFAULT_CONTROLNET
from authface.models import references
from authface.models.references import ModelNotFoundError, download_command, hub_cli, hub_unreachable
from authface.pipeline import load_pipeline
from authface.testing.tiny_model import tiny_components, tiny_pipeline

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, used by huggingface_hub for this test."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_offline_env(monkeypatch):
    """HF_HUB_OFFLINE unset (the network is still cut by conftest); the network check runs afresh."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as if the variable had never been set
    hub_unreachable.cache_clear()
    yield
    hub_unreachable.cache_clear()


def cache_repo(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in a Hugging Face cache (refs/main -> COMMIT)."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    return root / "snapshots" / COMMIT


def save_sd_and_controlnet(sd_dir: Path, cn_dir: Path, seed: int = 0) -> None:
    from diffusers import StableDiffusionPipeline

    comps = tiny_components(seed=seed)
    controlnet = comps.pop("controlnet")
    StableDiffusionPipeline(**comps, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(sd_dir)  # fmt: skip
    controlnet.save_pretrained(cn_dir)


def test_no_network_without_hf_hub_offline_fails_fast_with_one_clear_message(
    hub_cache, no_offline_env, caplog
):
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING), pytest.raises(ModelNotFoundError) as info:
        load_pipeline(DEFAULT_BASE_MODEL)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, elapsed
    msg = str(info.value)
    assert "no network" in msg and "HF_HUB_OFFLINE=1" in msg and "--model" in msg and "--controlnet" in msg
    assert download_command(DEFAULT_BASE_MODEL, "/path/to/model") in msg
    assert download_command(DEFAULT_CONTROLNET, "/path/to/controlnet") in msg
    assert f"{hub_cli()} download {DEFAULT_BASE_MODEL}" in msg
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # one message: the error
    checks = []
    real = references.socket.create_connection
    references.socket.create_connection = lambda *a, **k: checks.append(a) or real(*a, **k)
    try:
        with pytest.raises(ModelNotFoundError, match="no network"):  # a second load does not check again
            load_pipeline(DEFAULT_BASE_MODEL)
    finally:
        references.socket.create_connection = real
    assert checks == []


def test_no_network_in_a_fresh_process_like_the_cli(tmp_path):
    """The same in a new process whose environment never had HF_HUB_OFFLINE, with sockets cut before import."""
    code = (
        "import socket, time\n"
        "def cut(self, address): raise OSError(101, 'Network is unreachable')\n"
        "socket.socket.connect = cut\n"
        "t0 = time.perf_counter()\n"
        "from authface.pipeline import load_pipeline\n"
        "t1 = time.perf_counter()\n"
        "try:\n"
        f"    load_pipeline({DEFAULT_BASE_MODEL!r})\n"
        "except OSError as err:\n"
        "    print(f'LOAD_S={time.perf_counter() - t1:.2f} IMPORT_S={t1 - t0:.2f}')\n"
        "    print(err)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    load_s = float(out.stdout.split("LOAD_S=")[1].split()[0])
    assert load_s < 10, out.stdout
    assert "HF_HUB_OFFLINE=1" in out.stdout and "--controlnet" in out.stdout and "no network" in out.stdout
    assert f"{hub_cli()} download {DEFAULT_BASE_MODEL}" in out.stdout
    assert "no network" not in out.stderr  # said once, in the error, not once per retry


def test_only_the_controlnet_missing_names_controlnet_not_model(tmp_path, hub_cache):
    save_sd_and_controlnet(tmp_path / "sd", tmp_path / "cn")
    with pytest.raises(ModelNotFoundError) as info:
        load_pipeline(str(tmp_path / "sd"), controlnet="someone/uncached-controlnet")
    msg = str(info.value)
    assert "--controlnet" in msg and "--model" not in msg and "HF_HUB_OFFLINE" in msg
    assert download_command("someone/uncached-controlnet", "/path/to/controlnet") in msg
    with pytest.raises(ModelNotFoundError) as info:  # default ControlNet of a plain base, not cached
        load_pipeline(str(tmp_path / "sd"))
    assert DEFAULT_CONTROLNET in str(info.value) and "--model" not in str(info.value)


def test_cached_hub_models_load_offline_without_hub_warnings(tmp_path, hub_cache, capfd, caplog):
    save_sd_and_controlnet(
        cache_repo(hub_cache, DEFAULT_BASE_MODEL), cache_repo(hub_cache, DEFAULT_CONTROLNET)
    )
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        pipe = load_pipeline(DEFAULT_BASE_MODEL)
    noise = (
        "Could not reach the Hub",
        "Couldn't connect to the Hub",
        "local_dir_use_symlinks",
        "offline mode",
    )
    text = caplog.text + "".join(capfd.readouterr())
    assert not [n for n in noise if n in text], text
    x = torch.zeros(1, 3, 64, 64)
    kw = dict(num_inference_steps=2, strength=1.0, output_type="pt", color_fix="none")
    expected = tiny_pipeline(seed=0)(x, generator=[torch.Generator().manual_seed(0)], **kw).images
    pipe.set_progress_bar_config(disable=True)
    assert torch.equal(pipe(x, generator=[torch.Generator().manual_seed(0)], **kw).images, expected)


def test_cached_models_are_used_when_there_is_no_network(tmp_path, hub_cache, no_offline_env, caplog):
    save_sd_and_controlnet(
        cache_repo(hub_cache, DEFAULT_BASE_MODEL), cache_repo(hub_cache, DEFAULT_CONTROLNET)
    )
    references._warn_cache_only.cache_clear()
    with caplog.at_level(logging.WARNING):
        pipe = load_pipeline(DEFAULT_BASE_MODEL)
        load_pipeline(DEFAULT_BASE_MODEL)
    assert pipe.controlnet is not None
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "no network" in warned[0] and "HF_HUB_OFFLINE=1" in warned[0]


def test_download_command_matches_the_installed_huggingface_hub(monkeypatch):
    import importlib.metadata as md

    class Dist:
        def __init__(self, version, scripts):
            self.version = version
            self.entry_points = [md.EntryPoint(s, "x:y", "console_scripts") for s in scripts]

    real = hub_cli()
    assert real == ("hf" if (Path(sys.executable).parent / "hf").exists() else "huggingface-cli")
    for version, scripts, expected in [("0.30.2", ["huggingface-cli"], "huggingface-cli"),
                                       ("0.34.0", ["huggingface-cli", "hf"], "hf"),
                                       ("1.2.0", ["hf", "tiny-agents"], "hf")]:  # fmt: skip
        monkeypatch.setattr(md, "distribution", lambda name, d=Dist(version, scripts): d)
        hub_cli.cache_clear()
        assert hub_cli() == expected
        assert download_command("o/n", "/d") == f"{expected} download o/n --local-dir /d"
    hub_cli.cache_clear()


def test_network_check_is_done_once_and_accepts_a_working_connection(monkeypatch, caplog):
    calls = []

    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(
        references.socket, "create_connection", lambda addr, timeout: calls.append(addr) or Conn()
    )
    hub_unreachable.cache_clear()
    try:
        assert hub_unreachable() is None and hub_unreachable() is None and len(calls) == 1
        assert calls[0][0] == "huggingface.co"
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        hub_unreachable.cache_clear()
        assert hub_unreachable() is None and calls[-1] == ("proxy.example", 3128)  # through the proxy
        monkeypatch.delenv("HTTPS_PROXY")

        def hang(addr, timeout):
            time.sleep(10)

        monkeypatch.setattr(references.socket, "create_connection", hang)
        hub_unreachable.cache_clear()
        t0 = time.perf_counter()
        with caplog.at_level(logging.INFO, logger="authface.models.references"):
            reason = hub_unreachable()
            assert hub_unreachable() == reason
        assert reason.startswith("no network") and "timed out" in reason and time.perf_counter() - t0 < 4
        assert caplog.text.count("no network") == 1
    finally:
        hub_unreachable.cache_clear()
