"""The notebooks in notebooks/ run top to bottom without network and show real results.

Each is executed with nbclient in a fresh ``python3`` kernel (this interpreter's ipykernel).
The kernel is another process, out of pytest-socket's reach, so it gets its own guard: a
``sitecustomize`` that refuses every connection beyond loopback, as the suite does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

_LOOPBACK_ONLY = '''
"""Installed by tests/test_notebooks.py: this kernel may reach loopback and nothing else."""
import socket

_connect = socket.socket.connect
_LOCAL = {"127.0.0.1", "::1", "localhost"}


def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        raise OSError(f"network access is blocked in this kernel: {address!r}")
    return _connect(self, address)


socket.socket.connect = _loopback_only
'''

# The first cell of every run: the guard is in force, and the kernel is this interpreter.
_CHECK = f"""
import socket, sys
assert sys.prefix == {sys.prefix!r}, sys.prefix
try:
    socket.create_connection(("192.0.2.1", 443), timeout=1)
except OSError as exc:
    assert "blocked" in str(exc), exc
else:
    raise AssertionError("the network guard is not installed")
"""


@pytest.fixture
def offline_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment for a kernel without network; returns its working directory."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_LOOPBACK_ONLY)
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BATCH_LLM_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The notebooks point the SDKs at their own emulator; nothing from this shell leaks in.
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    return work


def execute(name: str, cwd: Path) -> Any:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(_CHECK))
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    return notebook


def text_of(notebook: Any) -> str:
    """Every text output of the notebook, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
            elif output.output_type == "error":
                parts.append(f"ERROR {output.ename}: {output.evalue}")
    return "\n".join(parts)


def images_in(notebook: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def check_eval_sweep(notebook: Any) -> None:
    text = text_of(notebook)
    assert "ERROR" not in text
    assert "160 answers in 4 batches (4 created upstream)" in text
    for shown in ("claude-sonnet-4-5", "gpt-4o-mini", "with notes", "arithmetic", "facts"):
        assert shown in text
    assert "batch-llm cost (USD" in text and "(50%) against realtime" in text
    assert "4 batch(es) in" in text and "40/40" in text  # the CLI's listing
    assert images_in(notebook) == 1


def check_rag_eval(notebook: Any) -> None:
    text = text_of(notebook)
    assert "ERROR" not in text
    assert "indexed 8 documents in 1 embedding batch" in text
    assert "10 questions and 20 verdicts in 2 batches" in text
    for column in ("retrieved", "hit", "correct", "faithful", "relevant"):
        assert column in text
    assert "batch-llm cost (USD" in text and "text-embedding-3-small" in text


CHECKS = {
    "eval_sweep_langchain.ipynb": check_eval_sweep,
    "rag_eval_llamaindex.ipynb": check_rag_eval,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_offline(name: str, offline_kernel: Path) -> None:
    CHECKS[name](execute(name, offline_kernel))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_saved_notebook_shows_real_results(name: str) -> None:
    """The notebooks are kept executed, so their results read without running them."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "run every cell before saving"
    CHECKS[name](notebook)


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)
