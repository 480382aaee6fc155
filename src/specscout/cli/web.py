"""The labelling web app: serve."""

from __future__ import annotations

import click

from specscout.cli.common import open_project, project_argument


@click.command()
@project_argument
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (any other than loopback requires every annotator to "
                   "log in)")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--annotator", default=None,
              help="name written with labels when no one logs in (default: your login)")
@click.option("--require-login", is_flag=True,
              help="require a user's token even on loopback")
@click.option("--no-samp", is_flag=True, help="no SAMP link to VO tools")
@click.option("--catalogue", multiple=True, metavar="FILE",
              help="reference catalogue to mark known candidates (repeatable)")
def serve(project, host, port, annotator, require_login, no_samp, catalogue) -> int:
    """The labelling web app."""
    from specscout.web import serve as run

    run(open_project(project, shared=True), host=host, port=port, annotator=annotator,
        require_login=require_login, samp=not no_samp, catalogues=catalogue)
    return 0


COMMANDS = [serve]
