"""The labelling web app (``specscout serve``)."""

from __future__ import annotations

import getpass
import socket

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.web.app import LOOPBACK_HOSTS, AppConfig, create_app, is_loopback

__all__ = ["AppConfig", "create_app", "serve"]

#: Seconds the requests in flight get to finish once the server is told to stop.
GRACE_S = 5


def serve(project: Project, host: str = "127.0.0.1", port: int = 8765,
          annotator: str | None = None, require_login: bool = False, samp: bool = True,
          catalogues: tuple[str, ...] = (), auth: bool = True, certfile: str | None = None,
          keyfile: str | None = None, insecure_http: bool = False,
          samp_web_port: int | None = 21012, on_ready=None) -> None:
    """Run the app until interrupted. On loopback it prints a one-time link that opens a
    session as ``annotator``; beyond loopback every annotator logs in with their token, over
    TLS (``certfile``, ``keyfile``) unless ``insecure_http``."""
    import uvicorn

    on_ready = on_ready or (lambda line: print(line, flush=True))  # the link, before serving
    loopback = is_loopback(host)
    if not auth and not loopback:
        raise SpecscoutError(f"--no-auth serves loopback only, not {host}")
    if (certfile is None) != (keyfile is None):
        raise SpecscoutError("TLS needs both --certfile and --keyfile")
    tls = certfile is not None
    if not loopback and not tls and not insecure_http:
        raise SpecscoutError(f"bound to {host}, tokens and labels would cross the network in "
                             f"clear text: give --certfile and --keyfile (TLS), or "
                             f"--insecure-http on a network you trust")
    config = AppConfig(annotator=annotator or getpass.getuser(),
                       require_login=require_login or not loopback,
                       allowed_hosts=list(LOOPBACK_HOSTS) if loopback else None, samp=samp,
                       catalogues=tuple(catalogues), auth=auth, samp_web_port=samp_web_port)
    # listening before the link is printed: the link names the port (0: a free one) and
    # works at once (connections wait until the app has started)
    sock = _bind(host, port)
    try:
        port = sock.getsockname()[1]
        app = create_app(project, config)
        # SIGTERM or Ctrl-C: requests in flight get a few seconds, then the server stops
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                               ssl_certfile=certfile, ssl_keyfile=keyfile,
                                               timeout_graceful_shutdown=GRACE_S))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown.strip('[]')}]" if ":" in shown else shown  # an IPv6 address
        url = f"{'https' if tls else 'http'}://{shown}:{port}/"
        if not auth:
            on_ready(f"WARNING: --no-auth: every user of this machine can label as "
                     f"{config.annotator!r} at {url}")
        elif not loopback:
            on_ready(f"bound to {host}: every annotator logs in with a token from 'specscout user "
                     f"add'" + ("" if tls else "; WARNING: --insecure-http, tokens cross the "
                                "network in clear text"))
        launch = app.state.specscout.launch_token
        link = f"{url}?token={launch}" if launch else url
        on_ready(f"specscout: labelling {project.path} at {link} "
                 + ("(a one-time link: it opens a session as "
                    f"{config.annotator!r}) " if launch else "")
                 + "(Ctrl-C stops it)")
        try:
            server.run(sockets=[sock])
        except OSError as exc:
            raise SpecscoutError(f"cannot serve on {host}:{port}: {exc}") from None
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening address for the server (as uvicorn binds one, but a port in use is an
    error to report, not an exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # as uvicorn's backlog
    except OSError as exc:
        sock.close()
        raise SpecscoutError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock
