"""``python -m batch_llm`` runs the ``batch-llm`` command."""

import sys

from .cli import main

sys.exit(main())
