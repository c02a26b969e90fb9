"""``python -m batch_llm.cli`` runs the ``batch-llm`` command."""

import sys

from ._main import main

sys.exit(main())
