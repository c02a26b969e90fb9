"""The ``batch-llm`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import Emulator

    emulator = Emulator(host=args.host, port=args.port)
    print(
        f"batch-llm emulator on {emulator.url}  (base_url for OpenAI: {emulator.openai_base_url}"
        f", Anthropic: {emulator.anthropic_base_url}, Gemini: {emulator.gemini_base_url})"
    )
    print("Ctrl-C stops it.", flush=True)
    emulator.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return int(run_demo(requests=args.requests, delay=args.delay))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``batch-llm``."""
    parser = argparse.ArgumentParser(
        prog="batch-llm",
        description="Run LLM and embedding fan-outs through providers' Batch APIs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log batch lifecycle events")
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser(
        "emulator", help="serve the offline provider emulator on 127.0.0.1"
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8765)
    emulator.set_defaults(run=_emulator)

    demo = commands.add_parser("demo", help="run a batched fan-out against the built-in emulator")
    demo.add_argument("--requests", type=int, default=1000, help="questions to ask (default 1000)")
    demo.add_argument(
        "--delay", type=float, default=3.0, help="seconds the emulated batch takes (default 3)"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batch-llm`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
