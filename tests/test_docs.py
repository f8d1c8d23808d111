"""Every README/docs code block marked ``<!-- offline-test -->`` runs, with the tiny model in place of the real one.

A broken example fails CI instead of a new user. Python blocks run in-process; shell blocks run with bash, the
venv's ``authface`` on PATH. The default model id (and the default ControlNet) are replaced by a tiny random model
folder, and the working folder is a temporary copy of ``examples/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "<!-- offline-test -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```(python|bash)\n(.*?)\n```", re.S)


def _blocks():
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for i, m in enumerate(BLOCK.finditer(text)):
            out.append(pytest.param(m.group(1), m.group(2), id=f"{doc.name}-{i}-{m.group(1)}"))
    return out


def test_the_readme_has_runnable_examples():
    assert len([b for b in _blocks() if "README" in b.id]) >= 2


@pytest.fixture
def workdir(tmp_path, tiny_model_dir, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _substitute(code: str, tiny: Path) -> str:
    from authface.config import DEFAULT_BASE_MODEL, DEFAULT_CONTROLNET

    return code.replace(DEFAULT_BASE_MODEL, str(tiny)).replace(DEFAULT_CONTROLNET, "auto")


@pytest.mark.parametrize("lang, code", _blocks())
def test_doc_block_runs_offline(lang, code, workdir, tiny_model_dir):
    code = _substitute(code, tiny_model_dir)
    if lang == "python":
        exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})
        return
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
