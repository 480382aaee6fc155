"""The ``specscout`` command.

One module per group of commands (spectra, archive, simulate, learn, labels, catalogue, web);
each command parses its options, calls the library and prints. Libraries are imported inside
the commands, so that ``specscout --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from specscout import __version__
from specscout.cli import archive, catalogue, labels, learn, simulate, spectra, web
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
    0 done, 1 some input failed, 2 an error (named on standard error), 130 interrupted."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="specscout",
                          standalone_mode=False)
    except click.ClickException as exc:  # a usage error: the message and the usage line
        exc.show()
        return exc.exit_code
    except click.Abort:  # Ctrl-C
        print("specscout: interrupted", file=sys.stderr)
        return 130
    except (SpecscoutError, ValueError, OSError) as exc:
        print(f"specscout: error: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
