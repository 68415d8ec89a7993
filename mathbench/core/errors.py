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
