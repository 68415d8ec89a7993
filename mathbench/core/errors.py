"""Bad input ends a command with one clear line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


class UsageError(Exception):
    """A problem with what the user asked for (names, sizes, paths, data files)."""


EXIT_USAGE = 2


RESUMABLE = "interrupted; finished rows are saved, run again with the same --out to resume"


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None, prog: str = "mathbench",
            interrupted: str = RESUMABLE) -> int:
    """Call ``main(argv)``; turn UsageError (and the registry's UnknownName) into one line + 2, and
    Ctrl-C into one line + 130: ``interrupted``, or the message a KeyboardInterrupt carries."""
    try:
        return main(sys.argv[1:] if argv is None else list(argv))
    except (UsageError, UnknownName) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        print(f"{prog}: {e.args[0] if e.args else interrupted}", file=sys.stderr)
        return 130


class UnknownName(KeyError):
    """An unknown function or implementation name; str() is the one-line message for users."""

    def __str__(self):
        return self.args[0]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a UsageError: one line and exit 2, like every
    other bad input (plain argparse prints the whole usage block first)."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")

    def run_subcommands(self, commands: dict, default: str, argv: list[str] | None = None) -> int:
        """A tool whose options are those of its ``default`` subcommand (this parser's): every
        subcommand in ``commands`` ({name: (one-line summary, main[, Ctrl-C message])}) becomes an
        argparse subparser, so --help lists them, and an unknown one is one line + exit 2. The
        first argument names the subcommand, else the default runs with all of ``argv``. Each
        subcommand's ``main`` parses the rest with its own parser, so its help, its errors
        ('PROG NAME: error: ...'; the default's say just PROG) and its exit codes are its own."""
        argv = sys.argv[1:] if argv is None else list(argv)
        sub = self.add_subparsers(dest="subcommand", title="subcommands", metavar="COMMAND",
                                  help=f"(default: {default})")
        for name, (summary, *_) in commands.items():
            # a placeholder that takes anything: the subcommand's own parser reads the rest
            sub.add_parser(name, help=summary, add_help=False, prog=f"{self.prog} {name}")
        chosen = []
        code = run_cli(lambda args: chosen.append(self.parse_known_args(args)[0].subcommand) or 0, argv, self.prog)
        if code:
            return code
        name = chosen[0] or default
        if chosen[0] is not None and argv[0] != name:  # options first, then a subcommand
            print(f"{self.prog}: error: the subcommand goes first: {self.prog} {name} [options] (see --help)",
                  file=sys.stderr)
            return EXIT_USAGE
        _, main, *interrupted = commands[name]
        rest = argv[1:] if chosen[0] is not None else argv
        return run_cli(main, rest, prog=self.prog if name == default else f"{self.prog} {name}",
                       interrupted=interrupted[0] if interrupted else RESUMABLE)
