"""Run the notebooks top to bottom and save them with their outputs.

    .venv/bin/python notebooks/execute.py [NOTEBOOK ...]

The saved outputs are what a reader sees without running anything, so they are kept fresh:
run this after editing a notebook (``tests/test_notebooks.py`` checks that every cell was run
and that the saved results are the ones the notebook produces). Offline: the notebooks start
their own emulator on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    # No progress bars in the saved outputs: they would show as stale widgets.
    os.environ.setdefault("BATCH_LLM_PROGRESS", "0")
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as work:
            client = NotebookClient(
                notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": work}}
            )
            client.execute()
        nbformat.write(notebook, path)
        print(f"{path.name}: executed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
