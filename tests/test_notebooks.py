"""Notebooks keep working: each one runs top to bottom, offline, on the tiny model, in a real Jupyter kernel
(nbclient + ipykernel, the dev extra), with notebooks/ as its working directory. The run executes an in-memory
copy: the repository files, stored with their outputs, are never rewritten.

Without nbclient the kernel runs are skipped (with the reason) and the code cells are exec()ed in this process
instead, so the notebooks are still checked.

To refresh the stored outputs after editing a notebook, execute it in place with the tiny-model defaults:
``HF_HUB_OFFLINE=1 jupyter execute --inplace notebooks/NAME.ipynb`` (nbclient's command; it runs in the notebook's
folder). Keep displayed images at most 256 px wide.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
#: Stored notebooks stay small: displayed images at most this wide, the file at most this big.
MAX_IMAGE_WIDTH = 256
MAX_NOTEBOOK_BYTES = 400_000

HAVE_KERNEL = all(importlib.util.find_spec(m) for m in ("nbclient", "nbformat", "ipykernel"))
NO_KERNEL = (
    "nbclient, nbformat and ipykernel are needed to run notebooks in a kernel (pip install 'authface[dev]')"
)

#: Prepended to the executed copy: the kernel refuses the network as the test process does (tests/conftest.py).
OFFLINE_GUARD = """\
import os as _os, socket as _socket
_os.environ["HF_HUB_OFFLINE"] = _os.environ["TRANSFORMERS_OFFLINE"] = "1"
_real_connect = _socket.socket.connect
def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise RuntimeError(f"notebooks must run offline (tried to connect to {address!r})")
_socket.socket.connect = _guarded_connect
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ids(path: Path) -> str:
    return path.stem


def _code_cells(nb: dict) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_top_to_bottom_in_a_kernel(path, tmp_path, monkeypatch):
    if not HAVE_KERNEL:  # the dev extra installs them: a missing kernel is a broken set-up, not a skip
        pytest.fail(NO_KERNEL)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's temporary folders (tiny models, runs) go here
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE_GUARD))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})  # fmt: skip
    timings = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as err:  # the cell's source and traceback, without terminal colours
                nbformat.write(nb, tmp_path / path.name)  # the executed copy, for a look at the outputs
                pytest.fail(f"{path.name}, cell {index - 1} failed:\n{ANSI.sub('', str(err))}", pytrace=False)
            timings.append(time.perf_counter() - start)
    nbformat.write(nb, tmp_path / path.name)
    print(f"{path.name}: {sum(timings):.1f} s ({', '.join(f'{t:.1f}' for t in timings[1:])})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_stored_executed_small_and_configured_at_the_top(path):
    """Stored with the outputs of a clean top-to-bottom run (no errors), small images, and its settings (MODEL =
    "tiny" by default) in the first code cell."""
    nb = json.loads(path.read_text())
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cell"
    assert re.search(r'^MODEL = "tiny"', _source(cells[0][1]), re.M), (
        f"{path.name}: first code cell must set MODEL"
    )
    counts = [c.get("execution_count") for _, c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not executed top to bottom once: {counts}"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes stored"
    from PIL import Image

    for i, cell in cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}, cell {i}: stored with an error"
            png = out.get("data", {}).get("image/png")
            if png:
                width = Image.open(io.BytesIO(base64.b64decode(png))).width
                assert width <= MAX_IMAGE_WIDTH, f"{path.name}, cell {i}: an image {width} px wide is stored"


def test_notebooks_are_found():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "finetune_lora.ipynb", "guidance_playground.ipynb", "evaluation.ipynb",
            "masks_and_old_photos.ipynb", "optimize.ipynb"} <= names  # fmt: skip
