"""The ``specscout`` command.

One module per group of commands (spectra, archive, simulate, learn, labels, catalogue, web);
each command parses its options, calls the library and prints. Libraries are imported inside
the commands, so that ``specscout --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from specscout import __version__
from specscout.cli import archive, catalogue, labels, learn, simulate, spectra, web
from specscout.cli.common import OPENED
from specscout.errors import SpecscoutError


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="specscout",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Find rare objects in survey archives of spectra by active deep learning."""


for _module in (spectra, archive, simulate, learn, labels, catalogue, web):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's); returns the exit status:
    0 done, 1 some input failed, 2 an error (named on standard error), 3 something
    unexpected (one line, the traceback in a log file: ``SPECSCOUT_DEBUG=1`` prints it), 130
    interrupted."""
    OPENED.clear()
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="specscout",
                          standalone_mode=False)
    except click.ClickException as exc:  # a usage error: the message and the usage line
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):  # Ctrl-C
        print("specscout: interrupted", file=sys.stderr)
        return 130
    except (SpecscoutError, ValueError, OSError) as exc:
        print(f"specscout: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, or a library's surprise: one line, and where to look
        if os.environ.get("SPECSCOUT_DEBUG"):
            raise
        log = _log(exc, list(argv) if argv is not None else sys.argv[1:])
        first = (str(exc).splitlines() or [""])[0]
        print(f"specscout: unexpected {type(exc).__name__}: {first} (the details are in "
              f"{log}; SPECSCOUT_DEBUG=1 prints them; please report it with that file)",
              file=sys.stderr)
        return 3
    return result if isinstance(result, int) else 0


def _log(exc: Exception, argv: list[str]) -> str:
    """Append ``exc``'s traceback to the error log of the project the command opened (or of
    this user, in their cache folder); returns its path."""
    import time
    import traceback

    text = (f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} specscout {__version__}: "
            f"{' '.join(map(str, argv))}\n" + "".join(traceback.format_exception(exc)))
    try:
        # no project: the user's own cache folder (never a shared /tmp, where a planted
        # link would redirect the write)
        folder = OPENED[-1] / "logs" if OPENED else Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "specscout"
        path = folder / "errors.log"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                             0o600)
        with os.fdopen(descriptor, "a") as fh:
            fh.write(text)
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return "nowhere: the log could not be written; SPECSCOUT_DEBUG=1 prints the details"
    return str(path)
