"""The web demo: its request function without a browser, the CLI, and the page end to end in headless Chromium.

The browser test drives Debian's ``chromium`` (``.ci/browser-deps.sh`` installs it) with Playwright's Python API
and ``executable_path`` (no browser download). It is skipped only where no Chromium is installed, and never when
``CI`` is set: there a missing browser fails the test.
"""

from __future__ import annotations

import io as stdio
import os
import shutil
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authface import io
from authface.config import ConfigError
from authface.demo import DemoError, RestorerCache, restore_uploads

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
#: fast settings for the tiny random model
TINY = {"steps": 2, "crop_size": 128}
BAD_REASON = "not a recognised image"


@pytest.fixture(scope="module")
def uploads(tmp_path_factory, astronaut) -> dict[str, Path]:
    """The astronaut as a PNG, and a text file named .png."""
    folder = tmp_path_factory.mktemp("uploads")
    good, bad = folder / "astronaut.png", folder / "notes.png"
    Image.fromarray(astronaut).save(good)
    bad.write_text("this is a text file, not a PNG\n")
    return {"good": good, "bad": bad}


@pytest.fixture(scope="module")
def cache() -> RestorerCache:
    return RestorerCache()


# ------------------------------------------------------------------ without a browser
def test_restore_uploads_writes_outputs_zip_and_manifest(tiny_model_dir, uploads, cache, tmp_path):
    options = {"model.model": str(tiny_model_dir), "device": "cpu", "upscale": 2, **TINY}
    run = restore_uploads([uploads["good"], uploads["bad"]], options, cache, tmp_path)

    good, bad = run.photos
    assert (
        good.error is None and good.after.shape == (1024, 1024, 3) and good.before.shape == good.after.shape
    )
    assert len(good.faces) == 1 and good.faces[0][0].shape == (128, 128, 3)
    assert BAD_REASON in bad.error and bad.after is None
    assert run.errors == [f"notes.png: {bad.error}"]
    assert any("tiny random test model" in n and "NOISE" in n for n in run.notes)

    with zipfile.ZipFile(run.zip_path) as zf:
        names = set(zf.namelist())
        restored = np.asarray(Image.open(stdio.BytesIO(zf.read("restored/astronaut.png"))))
    assert names == {"manifest.jsonl", "restored/astronaut.png", "faces/astronaut_00_in.png",
                     "faces/astronaut_00_out.png"}  # fmt: skip
    np.testing.assert_array_equal(restored, good.after)
    records = [line.record for line in io.read_jsonl(run.manifest_path)]
    assert [r["type"] for r in records] == ["run", "photo", "photo"]
    assert records[0]["config"]["sampler"]["steps"] == 2 and records[0]["config"]["face"]["upscale"] == 2
    assert records[1]["status"] == "restored" and records[1]["output_size"] == [1024, 1024]
    assert len(records[1]["faces"]) == 1 and "box" in records[1]["faces"][0]
    assert records[2]["status"] == "failed" and BAD_REASON in records[2]["error"]


def test_settings_change_reuses_the_loaded_model(tiny_model_dir, uploads, cache, tmp_path):
    base = {"model.model": str(tiny_model_dir), "device": "cpu", **TINY}
    restore_uploads([uploads["bad"]], base, cache, tmp_path / "first")  # loads the model if no test did
    loads = cache.loads
    changed = {"strength": 0.5, "color_fix": "adain", "aligned": True, "steps": 3, "colorize": True}
    run = restore_uploads([uploads["good"]], {**base, **changed}, cache, tmp_path)
    assert run.photos[0].after.shape == (512, 512, 3) and len(run.photos[0].faces) == 1  # aligned: one face
    assert cache.loads == loads == 1


def test_restore_uploads_errors(tiny_model_dir, uploads, cache, tmp_path):
    with pytest.raises(DemoError, match="upload"):
        restore_uploads([], {"model.model": str(tiny_model_dir)}, cache, tmp_path)
    with pytest.raises(ConfigError, match="strength"):
        restore_uploads(
            [uploads["good"]], {"model.model": str(tiny_model_dir), "strength": 2.0}, cache, tmp_path
        )
    with pytest.raises(DemoError, match="quality prior"):  # the tiny model has no quality prior
        restore_uploads([uploads["good"]], {"model.model": str(tiny_model_dir), "device": "cpu",
                                            "quality_target": 0.8, **TINY}, cache, tmp_path)  # fmt: skip
    with pytest.raises(DemoError, match="could not load the model"):
        restore_uploads(
            [uploads["good"]], {"model.model": str(tmp_path / "missing"), "device": "cpu"}, cache, tmp_path
        )  # last: a failed load unloads the cached model


# gr.Warning outside a page falls back to warnings.warn
@pytest.mark.filterwarnings("ignore:This model is a tiny random test model:UserWarning")
def test_page_handler_turns_problems_into_page_messages(tiny_model_dir, uploads, cache, tmp_path):
    gr = pytest.importorskip("gradio", reason="the page needs gradio: pip install 'authface[demo]'")
    from authface.demo.app import PAGE_KEYS, build_demo, make_handler

    handler = make_handler(cache, {"model.device": "cpu"}, tmp_path)
    values = {key: None for key, _ in PAGE_KEYS}
    values.update({"model.model": str(tiny_model_dir), "sampler.steps": 2.0, "sampler.strength": 0.7,
                   "sampler.cfg_scale": 4.0, "guidance.identity_scale": 0, "guidance.quality_scale": 0,
                   "guidance.fidelity_scale": 0, "sampler.color_fix": "wavelet", "face.upscale": 1, "face.bg_upsampler": "lanczos",
                   "face.aligned": False, "sampler.colorize": False, "face.crop_size": 128, "sampler.seed": 0,
                   "sampler.task": "restore", "io.mask": "none"})  # fmt: skip
    ordered = [values[key] for key, _ in PAGE_KEYS]
    status, shown, gallery, files = handler([str(uploads["good"])], *ordered)
    assert "Restored 1 of 1 photo(s), 1 face(s)" in status and "NOISE" in status
    # the mask mode: old-photo with the model folder's mask segmenter (--mask auto)
    masked = [{"sampler.task": "old-photo", "io.mask": "auto"}.get(key, value) for key, value in zip(values, ordered)]
    status_auto, _, _, files_auto = handler([str(uploads["good"])], *masked)
    assert "Restored 1 of 1 photo(s)" in status_auto
    record = Path([f for f in files_auto if f.endswith("manifest.jsonl")][0]).read_text()
    assert '"auto"' in record and "old-photo" in record
    assert shown[0]["after"].shape == (512, 512, 3) and shown[0]["error"] is None
    assert gallery[0][0].shape == (128, 260, 3) and "face 0" in gallery[0][1]
    assert [Path(f).name for f in files] == ["authface-results.zip", "manifest.jsonl"]

    for files, message in [([], "upload"), ([str(uploads["bad"])], BAD_REASON)]:
        with pytest.raises(gr.Error, match=message):
            handler(files, *ordered)
    missing = [str(tmp_path / "no-such-model") if k == "model.model" else v for k, v in zip(values, ordered)]
    with pytest.raises(gr.Error, match="could not load the model"):
        handler([str(uploads["good"])], *missing)  # last: a failed load unloads the cached model

    demo = build_demo(str(tiny_model_dir), work_dir=tmp_path, **TINY)
    (restore,) = [fn for fn in demo.fns.values() if fn.name == "restore"]
    assert (restore.concurrency_limit, restore.concurrency_id) == (1, "restore")  # one run at a time, for all
    with pytest.raises(ConfigError, match="unknown config key"):
        build_demo(str(tiny_model_dir), stepz=3)


def test_cli_demo_parser_and_missing_gradio(monkeypatch, capsys):
    from authface.cli import build_parser
    from authface.cli.demo import add_parser, cmd_demo

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if "demo" not in sub.choices:  # until authface/cli/__init__.py lists it
        add_parser(sub)
    args = parser.parse_args(["demo", "--model", "m", "--port", "7999", "--share", "false"])
    assert (args.model, args.host, args.port, args.share, args.func) == (
        "m",
        "127.0.0.1",
        7999,
        False,
        cmd_demo,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--share", "maybe"])

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    monkeypatch.delitem(sys.modules, "authface.demo.app", raising=False)
    assert cmd_demo(args) == 2
    assert "pip install 'authface[demo]'" in capsys.readouterr().err


# ------------------------------------------------------------------ in a real browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _need(what: str, install: str):
    message = f"{what} is not installed ({install})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must install it")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """The demo served on 127.0.0.1 with the tiny model: yields its URL."""
    chromium = _chromium()
    if chromium is None:
        _need("chromium", "sh .ci/browser-deps.sh, i.e. apt-get install -y chromium")
    try:
        import gradio  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as err:
        _need(err.name, "pip install -e '.[demo,dev]'")
    from authface.demo.app import build_demo, launch_demo

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        demo = build_demo(str(tiny_model_dir), work_dir=tmp_path_factory.mktemp("demo"),
                          fixed={"model.device": "cpu"}, upscale=2, **TINY)  # fmt: skip
        _, url, _ = launch_demo(demo, port=_free_port(), prevent_thread_lock=True)
        try:
            yield url, chromium
        finally:
            demo.close()


@pytest.fixture()
def page(server):
    from playwright.sync_api import sync_playwright

    url, chromium = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
            tab.set_default_timeout(60_000)
            tab.goto(url)  # not "networkidle": the page keeps a heartbeat open
            tab.wait_for_selector("#restore")
            yield tab
        finally:
            browser.close()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    """Save the viewport (full_page would drop the fixed toasts) once the toasts have flown in (0.4 s)."""
    page.wait_for_timeout(1000)
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    target = os.environ.get("AUTHFACE_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / name)
    return shot


def _upload(page, path: Path, tmp_path: Path) -> None:
    """Choose ``path`` in the uploads box and wait until the page lists it.

    A file chosen while the page is still hydrating under load can be dropped by the browser (seen once in CI,
    never locally): after a first full wait (60 s, so a slow upload is not chosen twice) the test chooses it again,
    as a user would, twice at most, then fails leaving a screenshot and the page's HTML.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt, wait_ms in enumerate((60_000, 20_000, 20_000), 1):
        page.set_input_files("#uploads input[type=file]", str(path))
        try:
            page.wait_for_selector(f"#uploads >> text={path.name}", timeout=wait_ms)
            return
        except PlaywrightTimeout:
            if attempt == 3:
                _save_failure(page, tmp_path, f"demo-upload-{path.stem}-FAILED")
                raise


def _save_failure(page, tmp_path: Path, name: str) -> None:
    """A screenshot and the page's HTML, in ``tmp_path`` and in ``$AUTHFACE_ARTIFACTS`` when set."""
    _screenshot(page, tmp_path, f"{name}.png")
    html = tmp_path / f"{name}.html"
    html.write_text(page.content())
    target = os.environ.get("AUTHFACE_ARTIFACTS")
    if target:
        shutil.copy(html, Path(target) / html.name)
    print("artifacts in", tmp_path)


def test_browser_restore_and_download(page, uploads, tmp_path):
    _upload(page, uploads["good"], tmp_path)
    page.click("#restore")
    link = page.locator("#downloads a[download='authface-results.zip']")
    link.wait_for()
    page.locator("#status", has_text="Restored 1 of 1 photo(s)").wait_for()
    page.locator(".photo-slider").first.wait_for()  # rendered by gr.render once the results arrive
    assert page.locator(".photo-slider").count() == 1
    loaded = "els => els.length == 2 && els.every(e => e.complete && e.naturalWidth == 1024)"
    page.wait_for_function(f"() => ({loaded})(Array.from(document.querySelectorAll('.photo-slider img')))")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#faces img')).some(e => e.naturalWidth > 0)"
    )
    assert "NOISE" in page.inner_text("#status")  # the page says the tiny model's faces are noise
    with page.expect_download() as info:
        link.click()
    zipped = tmp_path / "results.zip"
    info.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as zf:
        restored = Image.open(stdio.BytesIO(zf.read("restored/astronaut.png")))
        records = [line for line in zf.read("manifest.jsonl").decode().splitlines() if line]
    assert restored.size == (1024, 1024)  # upscale 2 of the 512 x 512 upload
    assert len(records) == 2
    shot = _screenshot(page, tmp_path, "demo-restored.png")
    assert Image.open(shot).size[0] >= 1000


def test_browser_bad_upload_shows_an_error(page, uploads, tmp_path):
    _upload(page, uploads["bad"], tmp_path)
    page.click("#restore")
    try:
        page.get_by_text(BAD_REASON).first.wait_for()
    except Exception:
        _save_failure(page, tmp_path, "demo-bad-upload-FAILED")
        raise
    assert "Traceback" not in page.content()
    _screenshot(page, tmp_path, "demo-bad-upload.png")
