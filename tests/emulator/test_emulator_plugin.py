"""The pytest plugin, run in a separate pytest process so its fixtures are used as users do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import batch_llm

INNER_TESTS = """
import os

import openai


def test_one_sets_things_up(batch_llm_openai_env):
    emu = batch_llm_openai_env
    assert os.environ["OPENAI_BASE_URL"] == emu.openai_base_url
    client = openai.OpenAI(max_retries=0)  # configured entirely by the environment
    client.files.create(file=("a.jsonl", b"{}\\n"), purpose="batch")
    emu.knobs.line_error_every = 2
    assert emu.stats.files_uploaded == 1


def test_two_starts_clean(batch_llm_emulator):
    assert batch_llm_emulator.stats.files_uploaded == 0
    assert batch_llm_emulator.knobs.line_error_every is None
    client = openai.OpenAI(base_url=batch_llm_emulator.openai_base_url, api_key="k")
    assert list(client.files.list()) == []


def test_three_same_server(batch_llm_emulator, request):
    assert request.getfixturevalue("_batch_llm_emulator_server") is batch_llm_emulator
"""


def test_fixtures_in_a_pytest_session(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    root = str(Path(batch_llm.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    # Only the plugins under test: other installed ones (langsmith's) cost seconds to import.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_socket",
            "-p",
            "batch_llm.testing",
            # The plugin must let its tests reach 127.0.0.1 even with the network blocked.
            "--disable-socket",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
