"""What several core test modules share (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

from helpers import wait_for

__all__ = ["wait_for"]
