"""`corral` command line: a registry of subcommands, each in its own module, imported lazily.

Each module named in COMMANDS defines `add_parser(subparsers)` (which registers its parser and
sets `func`) so that `corral --help` stays fast and a broken command cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from corral.errors import CorralError

# command name -> module; order is the order `corral --help` lists them.
COMMANDS: dict[str, str] = {
    "serve": "corral.cli.serve",
    "run": "corral.cli.run",
    "generate": "corral.cli.generate",
    "pull": "corral.cli.store_commands",
    "list": "corral.cli.store_commands",
    "show": "corral.cli.store_commands",
    "rm": "corral.cli.store_commands",
    "cp": "corral.cli.store_commands",
    "create": "corral.cli.store_commands",
    "ps": "corral.cli.server_commands",
    "stop": "corral.cli.server_commands",
    "bench": "corral.cli.bench",
    "bench-serve": "corral.cli.bench_serve",
    "app": "corral.cli.app",
}

# Two-word commands: `corral bench serve ...` parses as `corral bench-serve ...`.
TWO_WORD_COMMANDS = {("bench", "serve"): "bench-serve"}


def build_parser() -> argparse.ArgumentParser:
    from corral import __version__

    parser = argparse.ArgumentParser(prog="corral", description="Run and serve open-weight language models.")
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for module_name in dict.fromkeys(COMMANDS.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:  # command not built yet
                continue
            raise
        if module_name not in seen:
            module.add_parser(sub)
            seen.add(module_name)
    return parser


EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE (128 + 13)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if tuple(argv[:2]) in TWO_WORD_COMMANDS:
        argv = [TWO_WORD_COMMANDS[tuple(argv[:2])], *argv[2:]]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CorralError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `corral run ... | head`: the reader has gone, so stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of the unread output cannot
    raise BrokenPipeError again (and print "Exception ignored ..." on the way out)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests capture it): nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
