"""The ``medsr`` command line. Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from MedSRExtension.core.errors import MedSRError

SUBCOMMANDS = ("run", "batch", "models", "info", "compare", "train", "eval", "bench", "serve", "export", "server")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (what is wrong, where the help is) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from MedSRExtension import __version__
    parser = _Parser(prog="medsr", description="Super-resolution for medical images.")
    parser.add_argument("--version", action="version", version=f"medsr {__version__}",
                        help="print the version (the one in pyproject.toml) and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or ``kill`` ending the run), raised as Ctrl-C is, so that every clean-up of
    a half-written output runs exactly as it does for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: bad input prints one line on stderr and exits 2; Ctrl-C
    (130) and SIGTERM (143) stop the command with one line, leaving no half-written file."""
    args = build_parser().parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return int(args.func(args) or 0)
    except MedSRError as exc:
        print(f"medsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"medsr {args.command}: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"medsr {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
