"""The labelling web app (``specscout serve``)."""

from __future__ import annotations

import getpass

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.web.app import LOOPBACK_HOSTS, AppConfig, create_app, is_loopback

__all__ = ["AppConfig", "create_app", "serve"]


def serve(project: Project, host: str = "127.0.0.1", port: int = 8765,
          annotator: str | None = None, require_login: bool = False, samp: bool = True,
          catalogues: tuple[str, ...] = (), on_ready=print) -> None:
    """Run the app until interrupted. Beyond loopback every request needs a user's token."""
    import uvicorn

    loopback = is_loopback(host)
    config = AppConfig(annotator=annotator or getpass.getuser(),
                       require_login=require_login or not loopback,
                       allowed_hosts=list(LOOPBACK_HOSTS) if loopback else None, samp=samp,
                       catalogues=tuple(catalogues))
    if not loopback and not require_login:
        on_ready(f"bound to {host}: every request needs a user's token")
    app = create_app(project, config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    on_ready(f"specscout: labelling {project.path} at http://{shown}:{port}/ "
             f"(Ctrl-C stops it)")
    try:
        server.run()
    except OSError as exc:
        raise SpecscoutError(f"cannot serve on {host}:{port}: {exc}") from None
