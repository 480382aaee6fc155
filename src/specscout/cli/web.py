"""The labelling web app: serve, and the map of the pool it shows."""

from __future__ import annotations

import click

from specscout.cli.common import (
    ITERATION,
    PORT,
    SEED,
    open_project,
    project_argument,
    quiet_option,
)


@click.command()
@project_argument
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (any other than loopback requires every annotator to "
                   "log in, and TLS)")
@click.option("--port", type=PORT, default=8765, show_default=True,
              help="port to serve on (0: a free one, named in the link printed)")
@click.option("--annotator", default=None,
              help="name written with labels of the one-time link's session (default: your "
                   "login)")
@click.option("--require-login", is_flag=True,
              help="no one-time link: every annotator logs in with a user's token")
@click.option("--no-auth", is_flag=True,
              help="no authentication (loopback only): every local user labels as you")
@click.option("--certfile", default=None, help="TLS certificate (PEM)")
@click.option("--keyfile", default=None, help="TLS private key (PEM)")
@click.option("--insecure-http", is_flag=True,
              help="allow a non-loopback bind without TLS")
@click.option("--no-samp", is_flag=True, help="no SAMP link from the server to VO tools")
@click.option("--samp-web-port", type=click.IntRange(0, 65535), default=21012,
              show_default=True,
              help="the port of the annotator's SAMP hub (Web Profile) the page talks to; "
                   "0: none")
@click.option("--catalogue", multiple=True, metavar="PATH[@ARCSEC]",
              help="reference catalogue (file or HATS directory) to mark known candidates "
                   "(repeatable)")
def serve(project, host, port, annotator, require_login, no_auth, certfile, keyfile,
          insecure_http, no_samp, samp_web_port, catalogue) -> int:
    """The labelling web app."""
    from specscout.web import serve as run

    run(open_project(project, shared=True), host=host, port=port, annotator=annotator,
        require_login=require_login, samp=not no_samp, catalogues=catalogue,
        auth=not no_auth, certfile=certfile, keyfile=keyfile, insecure_http=insecure_http,
        samp_web_port=samp_web_port or None)
    return 0


@click.command("map")
@project_argument
@click.option("--iteration", type=ITERATION, default=None, help="default: the latest scored")
@click.option("--points", type=click.IntRange(100, 10_000_000), default=100_000,
              show_default=True,
              help="at most: labelled spectra and candidates (a quarter each at most) and a "
                   "random sample of the pool")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="of the sample and of UMAP")
@quiet_option
def pool_map(project, iteration, points, seed, quiet) -> int:
    """The 2-D map of the pool in the network's features (UMAP), for the app's Map page."""
    from specscout.learn.map import compute_map

    p = open_project(project, shared=True)
    with p.lock("map"):
        info = compute_map(p, iteration, points, seed=seed,
                           say=None if quiet else lambda s: print(f"  {s}", flush=True))
    if quiet:
        return 0
    print(f"map of iteration {info['iteration']}: {info['points']} spectra in "
          f"{info['seconds']:.0f} s (the app's Map page shows it)")
    return 0


COMMANDS = [serve, pool_map]
