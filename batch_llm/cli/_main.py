"""The ``batch-llm`` command line: its argument parser and entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._batches import cancel_batch, list_batches, show_batch, write_results
from ._cost import show_cost
from ._errors import CLIError
from ._output import Output

__all__ = ["build_parser", "main"]


def _emulator(args: argparse.Namespace) -> int:
    from ..emulator import Emulator

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


def _with_output(
    command: Callable[[argparse.Namespace, Output], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return command(args, Output())

    return run


def _journal_options(parser: argparse.ArgumentParser, *, nested: bool) -> None:
    """Options every ``batches`` action takes. Nested under an action they default to
    "not given" (SUPPRESS), so they do not overwrite the same options given before it."""
    default = argparse.SUPPRESS if nested else None
    parser.add_argument(
        "--journal",
        metavar="PATH",
        default=default,
        help="the journal: a file or a postgresql:// URL (default: BATCH_LLM_JOURNAL, else "
        "the user's cache)",
    )
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if nested else False
    )
    parser.add_argument(
        "--provider",
        default=default,
        help="the provider (openai, anthropic, gemini, a preset) when the journal does not say",
    )
    parser.add_argument(
        "--base-url", default=default, help="the provider's base URL (an emulator, a proxy)"
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=default,
        help="the environment variable holding the key (default: the provider's usual one)",
    )


def _batches_parser(commands: Any) -> None:
    batches = commands.add_parser(
        "batches",
        help="list the journal's batches; show, cancel or fetch the results of one",
        description="The journal's batches, newest first, with their status and counts.",
    )
    _journal_options(batches, nested=False)
    batches.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    batches.add_argument(
        "--remote", action="store_true", help="list the provider's batches (needs --provider)"
    )
    batches.set_defaults(run=_with_output(list_batches))
    actions = batches.add_subparsers(dest="action", metavar="{list,show,cancel,results}")

    listing = actions.add_parser("list", help="the journal's batches (the default)")
    _journal_options(listing, nested=True)
    listing.add_argument("--limit", type=int, default=argparse.SUPPRESS)
    listing.add_argument("--remote", action="store_true", default=argparse.SUPPRESS)

    show = actions.add_parser("show", help="one batch: its journal entry and live status")
    show.add_argument("id", help="a batch id, an intent id or the start of one")
    show.add_argument(
        "--offline", action="store_true", help="the journal's entry only; do not ask the provider"
    )
    _journal_options(show, nested=True)
    show.set_defaults(run=_with_output(show_batch))

    cancel = actions.add_parser("cancel", help="cancel a batch upstream")
    cancel.add_argument("id", help="a batch id, an intent id or the start of one")
    _journal_options(cancel, nested=True)
    cancel.set_defaults(run=_with_output(cancel_batch))

    results = actions.add_parser(
        "results", help="a batch's results as JSONL (from the journal, else the provider)"
    )
    results.add_argument("id", help="a batch id, an intent id or the start of one")
    results.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    _journal_options(results, nested=True)
    results.set_defaults(run=_with_output(write_results))


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

    _batches_parser(commands)

    cost = commands.add_parser(
        "cost", help="what the journal's batches cost, at batch price and realtime"
    )
    cost.add_argument(
        "--journal", metavar="PATH", help="the journal: a file or a postgresql:// URL"
    )
    cost.add_argument("--json", action="store_true")
    cost.add_argument("--by-batch", action="store_true", help="also one row per batch")
    cost.set_defaults(run=_with_output(show_cost))
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
    except CLIError as exc:
        print(f"batch-llm: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `batch-llm batches results ID | head`: the reader has all it wanted. Point stdout at
        # nothing so that the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
