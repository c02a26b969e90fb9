"""README's quickstart is code a user will paste: it must run as written (offline)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_two_setup_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text()
    block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", text, flags=re.S)
    assert block is not None
    commands = block.group(1).strip().splitlines()
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert len(commands) == 2
    assert ci[-2:] == commands


def test_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (quickstart,) = [block for block in python_blocks() if "with Emulator()" in block]
    exec(compile(quickstart, "README quickstart", "exec"), {})
    assert capsys.readouterr().out.strip() == "1"
