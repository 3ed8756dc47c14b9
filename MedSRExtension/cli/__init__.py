"""The ``medsr`` command line. Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler."""
from __future__ import annotations

import argparse
import importlib
import sys

from MedSRExtension.core.errors import MedSRError

SUBCOMMANDS = ("run", "batch", "models", "info", "compare", "train", "eval", "bench", "serve", "export")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (what is wrong, where the help is) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="medsr", description="Super-resolution for medical images.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: bad input prints one line on stderr and exits 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MedSRError as exc:
        print(f"medsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medsr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
