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
    "app": "corral.cli.app",
}


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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


if __name__ == "__main__":
    sys.exit(main())
