"""Commands on labels and annotators: labels import/export, user add/list/role/remove/
sessions/revoke."""

from __future__ import annotations

import click

from specscout.cli.common import ARCSEC, open_project, project_argument


def _labels(path: str):
    from specscout.labels import label_store

    project = open_project(path)
    return project, label_store(project)


@click.group()
def labels() -> None:
    """Import or export labels as CSV."""


@labels.command("import")
@project_argument
@click.argument("csv")
@click.option("--annotator", default="csv", show_default=True,
              help="who the labels are by (kept with each label)")
@click.option("--audit", is_flag=True, help="audit labels (kept apart from training)")
def import_(project, csv, annotator, audit) -> int:
    """Labels from CSV: a label column and one of row, id, obsid, designation."""
    from specscout.labels.files import import_csv

    p, store = _labels(project)
    n = import_csv(store, csv, p.store("pool"), p.config.classes, annotator=annotator,
                   audit=audit)
    print(f"imported {n['added']} labels from {csv}"
          + (f" ({n['unchanged']} already given as they are: not added again)"
             if n["unchanged"] else ""))
    return 0


@labels.command("from-catalogue")
@project_argument
@click.argument("catalogue")
@click.option("--class", "cls", required=True, help="the class its objects are")
@click.option("--radius", type=ARCSEC, default=3.0, show_default=True, help="arcsec")
@click.option("--name", default=None, help="the catalogue's name (default: the file's)")
def from_catalogue(project, catalogue, cls, radius, name) -> int:
    """Label the pool spectra of a reference catalogue's objects (CSV, VOTable, FITS)."""
    from specscout.catalogue.known import label_from_catalogue

    p, _ = _labels(project)
    n = label_from_catalogue(p, catalogue, cls, radius, name)
    print(f"{n['annotator']}: {n['entries']} objects, {n['matched']} pool spectra within "
          f"{radius:g} arcsec; labelled {n['added']} as {cls} ({n['already']} already were)")
    if n["conflicts"]:
        print(f"warning: {n['conflicts']} of them carry another label by a person: they are "
              f"disagreements now, kept out of training until resolved")
    return 0


@labels.command("export")
@project_argument
@click.argument("csv")
def export(project, csv) -> int:
    """Every label row, with its provenance, to CSV."""
    from specscout.labels.files import export_csv

    n = export_csv(_labels(project)[1], csv)
    print(f"exported {n} label rows to {csv}")
    return 0


@click.group()
def user() -> None:
    """Annotators who may label through the web app, their roles and sessions."""


ROLE = click.Choice(["owner", "annotator", "auditor"])
ROLES_HELP = ("annotator: labels the queue, candidates and audit; auditor: the audit only; "
              "owner: also adds spectra to the queue")


@user.command("add")
@project_argument
@click.argument("name")
@click.option("--role", type=ROLE, default="annotator", show_default=True, help=ROLES_HELP)
def add(project, name, role) -> int:
    """Add an annotator and print their token (shown only now)."""
    token = _labels(project)[1].users.add(name, role)
    print(f"user {name} ({role}) added; their token (shown only now, keep it secret):\n"
          f"{token}")
    return 0


@user.command("list")
@project_argument
def list_(project) -> int:
    """The annotators and their roles."""
    roles = _labels(project)[1].users.roles()
    print("\n".join(f"{n}\t{r}" for n, r in roles.items()) or "no users")
    return 0


@user.command("role")
@project_argument
@click.argument("name")
@click.argument("role", type=ROLE)
def role(project, name, role) -> int:
    """Give an annotator another role (from their next request on)."""
    _labels(project)[1].users.set_role(name, role)
    print(f"user {name} is now an {role}")  # owner, annotator, auditor
    return 0


@user.command("remove")
@project_argument
@click.argument("name")
def remove(project, name) -> int:
    """Remove an annotator: their token and sessions no longer work."""
    _labels(project)[1].users.remove(name)
    print(f"user {name} removed; their token and sessions no longer work")
    return 0


@user.command("sessions")
@project_argument
def sessions(project) -> int:
    """The app's open sessions, the one-time links' included."""
    found = _labels(project)[1].users.sessions()
    if not found:
        print("no open sessions")
        return 0
    print(f"{'id':<12}  {'annotator':<20} {'opened by':<12} {'since (UTC)':<16}  until (UTC)")
    for s in found:
        print(f"{s['id']:<12}  {s['annotator']:<20} {s['opened_by']:<12} "
              f"{s['created']:%Y-%m-%d %H:%M}  {s['expires']:%Y-%m-%d %H:%M}")
    return 0


@user.command("revoke")
@project_argument
@click.argument("ids", nargs=-1)
@click.option("--user", "name", default=None, help="every session of this annotator")
@click.option("--all", "every", is_flag=True, help="every session")
def revoke(project, ids, name, every) -> int:
    """End sessions at once, by the id 'specscout user sessions' shows (the start of it is
    enough), by annotator, or all: their pages must log in again."""
    if not (ids or name or every):
        raise click.UsageError("name the sessions: IDS, --user NAME or --all")
    n = _labels(project)[1].users.revoke(tuple(ids), name, every)
    print(f"{n} session{'s' if n != 1 else ''} ended")
    return 0


COMMANDS = [labels, user]
