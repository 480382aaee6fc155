"""``specscout fetch`` against a local IVOA Simple Spectral Access service.

The service is a real HTTP server started here: it answers SSA ``queryData`` requests (by
``PUBDID``, or by ``POS``/``SIZE`` and ``TIME``) with VOTables as an SSA service writes them, and
serves FITS files written by the simulator's Ondrejov writer. Some of its datasets fail on
purpose: one answers HTTP 500, one sends fewer bytes than it announced.
"""

from __future__ import annotations

import csv
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import numpy as np
import pytest

from specscout import read
from specscout.archive.fetch import fetch, file_name, unique_name
from specscout.cli import main
from specscout.spectra.writers import write_ondrejov_raw

PREFIX = "ivo://asu.cas.cz/stel/ccd700/"

VOTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE type="results">
<INFO name="QUERY_STATUS" value="OK"/>
<TABLE>
<FIELD name="ssa_pubDID" datatype="char" arraysize="*" utype="ssa:Curation.PublisherDID"/>
<FIELD name="accref" datatype="char" arraysize="*" ucd="meta.ref.url"
       utype="ssa:Access.Reference"/>
<FIELD name="mime" datatype="char" arraysize="*" utype="ssa:Access.Format"/>
<FIELD name="ssa_location_ra" datatype="double" ucd="pos.eq.ra"/>
<FIELD name="ssa_location_dec" datatype="double" ucd="pos.eq.dec"/>
<FIELD name="ssa_dateObs" datatype="double" utype="ssa:DataID.Date"/>
<DATA><TABLEDATA>
{rows}
</TABLEDATA></DATA>
</TABLE>
</RESOURCE>
</VOTABLE>
"""


class SSAService:
    """Datasets ``ua000000`` ... with positions along the equator, one degree apart, and
    observation dates one day apart from MJD 55000."""

    def __init__(self, root, n: int = 6):
        self.root = root
        self.datasets = {}
        self.downloads: list[str] = []
        self.queries: list[dict] = []
        wave = np.linspace(6250.0, 6750.0, 2000)
        for i in range(n):
            name = f"ua{i:06d}"
            flux = 1.0 + 0.5 * np.exp(-0.5 * ((wave - 6562.8 - i) / 3.0) ** 2)
            write_ondrejov_raw(root / f"{name}.fits", wave, flux, obj=f"HD {i}")
            self.datasets[PREFIX + name] = {"name": name, "ra": 10.0 + i, "dec": 0.0,
                                            "mjd": 55000.0 + i}
        self.broken = {PREFIX + "ua000003": "500", PREFIX + "ua000004": "short"}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/ssa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matches(self, query: dict) -> list[str]:
        found = list(self.datasets)
        if "PUBDID" in query:
            found = [k for k in found if k == query["PUBDID"]]
        if "POS" in query:
            ra, dec = (float(v) for v in query["POS"].split(","))
            radius = float(query.get("SIZE", "0.1")) / 2
            found = [k for k in found if abs(self.datasets[k]["ra"] - ra) <= radius
                     and abs(self.datasets[k]["dec"] - dec) <= radius]
        if "TIME" in query:
            from astropy.time import Time

            start, end = (Time(t, format="isot").mjd for t in query["TIME"].split("/"))
            found = [k for k in found if start <= self.datasets[k]["mjd"] <= end]
        return found

    def votable(self, keys: list[str]) -> bytes:
        rows = []
        for key in keys:
            d = self.datasets[key]
            url = f"http://127.0.0.1:{self.server.server_port}/data/{d['name']}"
            rows.append(f"<TR><TD>{escape(key)}</TD><TD>{escape(url)}</TD>"
                        f"<TD>application/fits</TD><TD>{d['ra']}</TD><TD>{d['dec']}</TD>"
                        f"<TD>{d['mjd']}</TD></TR>")
        return VOTABLE.format(rows="\n".join(rows)).encode()

    def _handler(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, code: int, body: bytes, kind: str, length: int | None = None):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlparse(self.path)
                if url.path == "/ssa":
                    query = {k.upper(): v[0] for k, v in parse_qs(url.query).items()}
                    service.queries.append(query)
                    assert query.get("REQUEST") == "queryData", query
                    self.send(200, service.votable(service.matches(query)),
                              "application/x-votable+xml")
                    return
                name = url.path.removeprefix("/data/")
                key = PREFIX + name
                if key not in service.datasets:
                    self.send(404, b"no such dataset", "text/plain")
                    return
                service.downloads.append(name)
                body = (service.root / f"{name}.fits").read_bytes()
                how = service.broken.get(key)
                if how == "500":
                    self.send(500, b"internal error", "text/plain")
                elif how == "short":  # the connection ends before the announced length
                    self.send(200, body[:5000], "application/fits", length=len(body))
                    self.close_connection = True
                else:
                    self.send(200, body, "application/fits")

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service(tmp_path):
    (tmp_path / "served").mkdir()
    s = SSAService(tmp_path / "served")
    yield s
    s.close()


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_fetch_by_ids_names_every_failure_and_resumes(service, tmp_path):
    out = tmp_path / "out"
    ids = [(PREFIX + f"ua{i:06d}", label) for i, label in
           enumerate(["emission", "absorption", "emission", "absorption", "double-peak"])]
    ids.append((PREFIX + "ua999999", "emission"))
    summary = fetch(service.url, out, ids=ids, workers=3)
    assert (summary.fetched, summary.skipped) == (3, 0)
    reasons = dict(summary.failed)
    assert set(reasons) == {PREFIX + "ua000003", PREFIX + "ua000004", PREFIX + "ua999999"}
    assert "HTTP 500" in reasons[PREFIX + "ua000003"]
    assert "download failed" in reasons[PREFIX + "ua000004"]
    assert reasons[PREFIX + "ua999999"] == "not found by the service"
    assert {r["id"]: r["reason"] for r in _rows(out / "fetch-failures.csv")} == reasons
    # only whole files, under their final names, each identical to what the service holds
    assert sorted(p.name for p in out.iterdir()) == [
        "fetch-failures.csv", "fetched.csv", "ua000000.fits", "ua000001.fits", "ua000002.fits"]
    for i in range(3):
        name = f"ua{i:06d}.fits"
        assert (out / name).read_bytes() == (service.root / name).read_bytes()
        assert read(out / name).flux.size == 2000
    assert {(r["id"], r["path"], r["label"]) for r in _rows(out / "fetched.csv")} == {
        (PREFIX + f"ua{i:06d}", f"ua{i:06d}.fits", ids[i][1]) for i in range(3)}

    # a second run downloads only what is still missing; the ledger gets no duplicates
    service.broken.pop(PREFIX + "ua000004")
    before = len(service.downloads)
    summary = fetch(service.url, out, ids=ids, workers=3)
    assert (summary.fetched, summary.skipped) == (1, 3)
    assert sorted(service.downloads[before:]) == ["ua000003", "ua000004"]
    assert sorted(r for r, _ in summary.failed) == [PREFIX + "ua000003", PREFIX + "ua999999"]
    ledger = [r["id"] for r in _rows(out / "fetched.csv")]
    assert sorted(ledger) == sorted(PREFIX + f"ua{i:06d}" for i in (0, 1, 2, 4))


def test_fetch_replaces_a_partial_file_and_refetches_a_deleted_one(service, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ua000000.fits.part").write_bytes(b"half a file")  # a run killed mid-download
    ids = [(PREFIX + "ua000000", ""), (PREFIX + "ua000001", "")]
    assert fetch(service.url, out, ids=ids).fetched == 2
    assert not list(out.glob("*.part"))
    (out / "ua000001.fits").unlink()
    summary = fetch(service.url, out, ids=ids)
    assert (summary.fetched, summary.skipped) == (1, 1)
    assert (out / "ua000001.fits").read_bytes() == (service.root / "ua000001.fits").read_bytes()


def test_fetch_by_position_and_time(service, tmp_path):
    out = tmp_path / "out"
    summary = fetch(service.url, out, pos=(11.0, 0.0), size=1.5,
                    time_range=("2009-06-18T12:00:00", "2009-06-19T12:00:00"))
    # within 1.5 deg of RA 11: ua000000 .. ua000002; observed MJD 55000.5 .. 55001.5: ua000001
    assert summary.fetched == 1 and not summary.failed
    assert service.queries[-1]["POS"].startswith("11")
    assert "TIME" in service.queries[-1]
    assert [r["id"] for r in _rows(out / "fetched.csv")] == [PREFIX + "ua000001"]
    summary = fetch(service.url, out, pos=(11.0, 0.0), size=1.5)
    assert (summary.fetched, summary.skipped) == (2, 1)


def test_fetch_then_ingest_as_a_labelled_set(service, tmp_path, capsys):
    ids = tmp_path / "ids.csv"
    ids.write_text("id,label\n" + "".join(f"{PREFIX}ua{i:06d},{i % 2}\n" for i in (0, 1, 2, 5)))
    out = tmp_path / "out"
    assert main(["fetch", str(out), "--service", service.url, "--ids", str(ids)]) == 0
    assert "fetched 4, skipped 0 already there, failed 0" in capsys.readouterr().out
    project = tmp_path / "project"
    assert main(["init", str(project)]) == 0
    assert main(["ingest", str(project), str(out), "--labels", str(out / "fetched.csv"),
                 "--label-map", "0=emission,1=other", "--quiet"]) == 0
    from specscout.archive.project import Project

    labelled = Project(project).store("labelled")
    meta = labelled.meta(["path", "label"])
    labels = dict(zip(meta["path"].to_pylist(), meta["label"].to_pylist(), strict=True))
    assert {p.rsplit("/", 1)[-1]: v for p, v in labels.items()} == {
        "ua000000.fits": "emission", "ua000001.fits": "other",
        "ua000002.fits": "emission", "ua000005.fits": "other"}


def test_fetch_refuses_a_request_without_a_target(tmp_path, capsys):
    assert main(["fetch", str(tmp_path / "out"), "--service", "http://127.0.0.1:9/ssa"]) == 2
    assert "--ids CSV, or --pos RA DEC" in capsys.readouterr().err


def test_file_names_are_safe():
    assert file_name(PREFIX + "ua000001", "") == "ua000001.fits"
    assert file_name("ivo://x/y?../../etc/passwd", "") == "passwd.fits"
    assert file_name("", "http://h/get?id=a b") == "a_b.fits"


def test_a_service_that_cannot_answer_is_named_not_a_crash(service, tmp_path):
    """Nothing listening, or something that answers but not with a VOTable: each id, and
    the query by position, is a named failure, and the run ends normally."""
    ids = [(PREFIX + "ua000000", ""), (PREFIX + "ua000001", "")]
    for url in ("http://127.0.0.1:9/ssa", service.url.replace("/ssa", "/data/ua000000")):
        out = tmp_path / "out"
        summary = fetch(url, out, ids=ids, workers=2)
        assert summary.fetched == 0 and sorted(k for k, _ in summary.failed) == sorted(
            k for k, _ in ids)
        assert all("could not answer the query" in r for _, r in summary.failed)
        assert len(_rows(out / "fetch-failures.csv")) == 2
        summary = fetch(url, out, pos=(11.0, 0.0), size=1.5)
        ((key, reason),) = summary.failed
        assert key.startswith("query") and "could not answer the query" in reason
        assert _rows(out / "fetch-failures.csv") == [{"id": key, "reason": reason}]


def test_ids_with_the_same_tail_get_files_of_their_own():
    taken: dict[str, str] = {}
    a = unique_name("ivo://one/archive#spec1", "", taken)
    b = unique_name("ivo://two/archive#spec1", "", taken)
    assert a == "spec1.fits" and b != a and b.startswith("spec1-") and b.endswith(".fits")
    assert unique_name("ivo://two/archive#spec1", "", taken) == b  # stable for one id
