"""Ingest end to end: real files, bad files, resume after kill -9, a real Dask cluster."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from specscout.archive.ingest import ingest, iter_paths, load_labels
from specscout.archive.project import Project, ProjectConfig
from specscout.archive.store import Store
from specscout.cli import main
from specscout.errors import SpecscoutError
from specscout.spectra.preprocess import PreprocessConfig
from specscout.spectra.writers import write_lamost

from conftest import lamost_meta, star_flux


def _survey(directory: Path, n: int, seed: int = 0) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    flux, ivar = star_flux(seed=seed)
    first = write_lamost(directory / "spec-00000.fits.gz", flux, ivar, lamost_meta())
    data = first.read_bytes()
    paths = [first]
    for i in range(1, n):  # the same spectrum under other names: ingest sees n files
        p = directory / f"spec-{i:05d}.fits.gz"
        p.write_bytes(data)
        paths.append(p)
    return paths


def _bad_files(directory: Path) -> dict[str, str]:
    """One file per kind of failure, and the reason ingest must give."""
    directory.mkdir(parents=True, exist_ok=True)
    flux, ivar = star_flux()
    good = write_lamost(directory / "good.fits", flux, ivar, lamost_meta()).read_bytes()
    (directory / "truncated.fits").write_bytes(good[:10000])
    (directory / "corrupt.fits.gz").write_bytes(gzip.compress(good)[:3000] + b"\0" * 3000)
    (directory / "notfits.fits").write_bytes(b"plain text, not FITS\n")
    (directory / "empty.fits").write_bytes(b"")
    flux_nan = flux.copy()
    flux_nan[2400:2700] = np.nan
    write_lamost(directory / "nan.fits", flux_nan, ivar, lamost_meta())
    write_lamost(directory / "zero.fits", np.zeros_like(flux), np.zeros_like(ivar), lamost_meta())
    short_flux, short_ivar = star_flux(2300)
    write_lamost(directory / "short.fits", short_flux, short_ivar, lamost_meta())
    (directory / "good.fits").unlink()
    return {"truncated.fits": "truncated", "corrupt.fits.gz": "bad-gzip",
            "notfits.fits": "not-fits", "empty.fits": "not-fits", "nan.fits": "nonfinite",
            "zero.fits": "zero_flux", "short.fits": "window_not_covered"}


def test_iter_paths(tmp_path):
    files = _survey(tmp_path / "a" / "b", 3)
    (tmp_path / "a" / "notes.md").write_text("not a spectrum")
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\na/b/spec-00001.fits.gz\n\n")
    assert list(iter_paths([tmp_path / "a"])) == [str(p) for p in files]
    assert list(iter_paths([str(tmp_path / "a" / "**" / "*-0000[02].fits.gz")])) == [
        str(files[0]), str(files[2])]
    assert list(iter_paths([listing])) == [str(files[1])]


def test_real_files_ingest_with_right_counts(shared_data, tmp_path, capsys):
    project = Project.init(tmp_path / "p")
    assert main(["ingest", str(project.path), str(shared_data / "lamost"), "--workers", "2",
                 "--quiet"]) == 0
    store = project.store()
    assert store.files == 194  # 177 DR1 + 15 DR2 + 1 DR7 + 1 DR9
    meta = store.meta(columns=["release", "path"])
    releases = meta["release"].to_pylist()
    assert {r: releases.count(r) for r in set(releases)} == {"DR1": 175, "DR2": 15, "DR7": 1,
                                                             "DR9": 1}
    # The two DR1 files without flux in the window are flagged, not pooled as zeros.
    fails = store.failures().to_pylist()
    assert sorted(Path(f["path"]).name for f in fails) == [
        "spec-55862-B6212_sp06-117.fits", "spec-55862-B6212_sp06-145.fits"]
    assert all("zero_flux" in f["reason"] for f in fails)
    flux = store.flux(np.arange(len(store)))
    assert np.all(np.isfinite(flux)) and flux.min() == -1 and flux.max() == 1
    capsys.readouterr()
    assert main(["info", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert "pool: 192 spectra; files 194: ingested 192, flagged 2, failed 0" in out
    assert "DR1 175, DR2 15, DR7 1, DR9 1" in out


def test_bad_files_each_get_a_failure_row_and_the_run_completes(tmp_path):
    expected = _bad_files(tmp_path / "bad")
    _survey(tmp_path / "bad", 5)
    store = Store.open_or_create(tmp_path / "store", points=140)
    summary = ingest(store, [tmp_path / "bad"], PreprocessConfig(), workers=1, progress=False)
    assert summary.ingested == 5 and summary.processed == 5 + len(expected)
    fails = {Path(f["path"]).name: f for f in store.failures().to_pylist()}
    assert set(fails) == set(expected)
    for name, reason in expected.items():
        assert reason in fails[name]["reason"], (name, fails[name])
    assert len(store) == 5


def test_second_run_skips_everything(tmp_path):
    _survey(tmp_path / "s", 30)
    store = Store.open_or_create(tmp_path / "store", points=140)
    first = ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=1, part_rows=7,
                   compact=False, progress=False)
    assert len(store.parts) == 5  # parts of 7 files: 7+7+7+7+2
    before = store.meta(columns=["row", "path"])
    # A path named twice in one run is still ingested once.
    again = ingest(store, [tmp_path / "s", tmp_path / "s" / "spec-00003.fits.gz"],
                   PreprocessConfig(), workers=1, progress=False)
    assert (first.ingested, again.ingested, again.skipped) == (30, 0, 31)
    paths = store.meta(columns=["path"])["path"].to_pylist()
    assert len(paths) == len(set(paths)) == 30
    # The run ended by merging the small parts: the same rows, in one part.
    assert len(store.parts) == 1
    assert store.meta(columns=["row", "path"]).equals(before)


def test_a_run_that_skips_everything_starts_no_cluster(tmp_path, monkeypatch):
    _survey(tmp_path / "s", 5)
    store = Store.open_or_create(tmp_path / "store", points=140)
    ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=1, progress=False)

    def no_cluster(*args, **kw):
        raise AssertionError("a cluster was started with nothing to read")

    monkeypatch.setattr("specscout.archive.ingest.dask_client", no_cluster)
    again = ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=1, progress=False)
    assert (again.ingested, again.skipped, len(store)) == (0, 5, 5)
    (tmp_path / "s" / "spec-00000.fits.gz").rename(tmp_path / "s" / "spec-new.fits.gz")
    with pytest.raises(AssertionError, match="nothing to read"):  # a new file needs one
        ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=1, progress=False)


def test_kill_9_and_resume_gives_every_file_exactly_once(tmp_path):
    files = _survey(tmp_path / "survey", 1200)
    expected = _bad_files(tmp_path / "survey" / "bad")
    project = Project.init(tmp_path / "p", ProjectConfig(part_rows=40))
    cmd = [sys.executable, "-m", "specscout.cli", "ingest", str(project.path),
           str(tmp_path / "survey"), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parts = project.pool_path / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len([p for p in parts.iterdir()
                                   if not p.name.startswith(".")]) >= 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    proc.wait()
    killed = Store.open(project.pool_path)
    assert 0 < killed.files < len(files) + len(expected), "the kill came too late to test"
    subprocess.run(cmd, check=True, timeout=300)
    store = Store.open(project.pool_path)
    everything = store.meta(columns=["path", "row", "status"], status=None).to_pylist()
    paths = [r["path"] for r in everything]
    assert len(paths) == len(set(paths)) == len(files) + len(expected)
    assert set(paths) == {str(p) for p in files} | {
        str(tmp_path / "survey" / "bad" / n) for n in expected}
    rows = sorted(r["row"] for r in everything if r["status"] == "ok")
    assert rows == list(range(len(files))) == list(range(len(store)))


def test_scheduler_address_uses_an_existing_cluster(tmp_path):
    from distributed import Client, LocalCluster

    _survey(tmp_path / "s", 40)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        project = Project.init(tmp_path / "p")
        assert main(["ingest", str(project.path), str(tmp_path / "s"), "--scheduler",
                     cluster.scheduler_address, "--quiet"]) == 0
        with Client(cluster.scheduler_address) as client:
            # The work ran on the cluster's workers, not in this process.
            assert len(client.scheduler_info()["workers"]) == 2
    assert len(project.store()) == 40


def test_labelled_set_with_resolution_matching(shared_data, tmp_path):
    pairs = shared_data / "pairs"
    labels_csv = tmp_path / "labels.csv"
    rows = [line.split(",") for line in (pairs / "pairs.csv").read_text().splitlines()[1:]]
    labels_csv.write_text("path,label\n" + "".join(
        f"{pairs / src},{'other' if lab == 'absorption' else lab}\n"
        for src, _, lab in rows if lab))
    project = Project.init(tmp_path / "p")
    assert main(["ingest", str(project.path), str(pairs / "ondrejov"), "--labels",
                 str(labels_csv), "--degrade-to", "1531", "--workers", "1", "--quiet"]) == 0
    labelled = project.store("labelled")
    assert len(labelled) == 16 and len(project.store("pool")) == 0
    fails = labelled.failures().to_pylist()
    assert [Path(f["path"]).name for f in fails] == ["bt-cmi.fits"]  # unlabelled in pairs.csv
    assert fails[0]["reason"] == "no-label"
    labels = labelled.meta(columns=["label"])["label"].to_pylist()
    assert sorted(set(labels)) == ["double-peak", "emission", "other"]


def test_labels_by_id_with_a_label_map(shared_data, tmp_path):
    csv_path = tmp_path / "ondrejov.csv"
    csv_path.write_text("id,label\nivo://asu.cas.cz/stel/ccd700/uk220017,0\n"
                        "ivo://asu.cas.cz/stel/ccd700/vh130075,1\nivo://x/y,2\n")
    labels = load_labels(csv_path, ("other", "emission", "double-peak"),
                         {"0": "emission", "1": "other", "2": "", "3": "double-peak"})
    assert labels == {"ivo://asu.cas.cz/stel/ccd700/uk220017": "emission",
                      "ivo://asu.cas.cz/stel/ccd700/vh130075": "other"}
    with pytest.raises(SpecscoutError, match="is not one of"):
        load_labels(csv_path, ("other", "emission"))


def test_rows_follow_the_files_not_the_workers(tmp_path):
    """Two runs on two workers give the same rows: results are taken in batch order."""
    from specscout.simulate import SurveyConfig, simulate_survey

    simulate_survey(tmp_path / "s", SurveyConfig(n=300, seed=3), workers=0)
    orders = []
    for name in ("a", "b"):
        store = Project.init(tmp_path / name).store()
        ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=2, batch_size=16,
               progress=False)
        orders.append(store.meta(columns=["row", "path"]).sort_by("row")["path"].to_pylist())
    assert orders[0] == orders[1] == sorted(orders[0])


def test_a_file_that_kills_its_worker_is_named_and_the_rest_ingested(tmp_path):
    import dask
    import distributed  # noqa: F401  (its defaults must be loaded before a setting is lifted)

    from specscout.spectra.fitswrite import image_hdu

    files = _survey(tmp_path / "s", 24)
    killer = tmp_path / "s" / "spec-00010.fits"
    files[10].unlink()
    killer.write_bytes(image_hdu(np.zeros(4, np.float32), [("KILLME", True, "")]))
    store = Store.open_or_create(tmp_path / "store", points=140)
    plugin = Path(__file__).parent / "plugins" / "kills_its_worker.py"
    with dask.config.set({"distributed.worker.preload": [str(plugin)]}):
        summary = ingest(store, [tmp_path / "s"], PreprocessConfig(), workers=2,
                         batch_size=8, progress=False)
    assert (summary.ingested, summary.failed) == (23, 1)
    (fail,) = store.failures().to_pylist()
    assert fail["path"] == str(killer) and fail["reason"] == "worker-died"
    paths = store.meta(columns=["path"])["path"].to_pylist()
    assert sorted(paths) == sorted(str(p) for p in files if p != files[10])


def test_retry_failed_processes_failures_again_and_counts_each_file_once(tmp_path):
    files = _survey(tmp_path / "s", 6)
    good = files[2].read_bytes()
    files[2].write_bytes(good[:5000])  # truncated, as by an interrupted copy
    project = Project.init(tmp_path / "p")
    assert main(["ingest", str(project.path), str(tmp_path / "s"), "--quiet"]) == 0
    store = project.store()
    assert [f["reason"] for f in store.failures().to_pylist()] == ["bad-gzip"]
    files[2].write_bytes(good)  # the copy completed
    assert main(["ingest", str(project.path), str(tmp_path / "s"), "--quiet"]) == 0
    assert len(project.store()) == 5  # a failure is not retried unless asked
    assert main(["ingest", str(project.path), str(tmp_path / "s"), "--quiet",
                 "--retry-failed"]) == 0
    store = project.store()
    assert len(store) == 6 and store.files == 6 and not len(store.failures())
    assert store.summary()["status"] == {"ok": 6, "flagged": 0, "failed": 0}
    assert main(["ingest", str(project.path), str(tmp_path / "s"), "--quiet",
                 "--retry-failed"]) == 0
    assert len(project.store()) == 6


def test_retrying_a_file_of_several_spectra_adds_only_what_failed(tmp_path):
    """A file of a coadd and three exposures, only the coadd labelled: the exposures fail
    (no-label). A retry must not store the coadd a second time, nor lose a failure."""
    from specscout.simulate import SurveyConfig, simulate_survey

    simulate_survey(tmp_path / "s", SurveyConfig(n=2, seed=3), layout="mrs")
    config = ProjectConfig.preset("lamost-mrs")
    store = Store.open_or_create(tmp_path / "store", points=config.grid.points)
    pre = config.preprocess()
    ids = Store.open_or_create(tmp_path / "probe", points=config.grid.points)
    ingest(ids, [tmp_path / "s"], pre, workers=1, progress=False)
    every = ids.meta(columns=["id", "exposure"])["id"].to_pylist()
    coadds = [i for i, e in zip(every, ids.meta(columns=["exposure"])["exposure"].to_pylist(),
                                strict=True) if e == "coadd"]
    assert len(every) == 8 and len(coadds) == 2

    def run(labelled: list[str], retry: bool):
        return ingest(store, [tmp_path / "s"], pre, workers=1, progress=False,
                      labels=dict.fromkeys(labelled, "other"), retry_failed=retry)

    first = run(coadds, retry=False)
    assert (first.ingested, first.failed) == (2, 6)
    again = run(coadds, retry=True)  # the exposures still have no label
    assert (again.ingested, again.failed) == (0, 6)
    assert sorted(store.meta(columns=["id"])["id"].to_pylist()) == sorted(coadds)
    assert len(store.failures()) == 6
    last = run(every, retry=True)  # now they have
    assert (last.ingested, last.failed) == (6, 0)
    stored = store.meta(columns=["id"])["id"].to_pylist()
    assert sorted(stored) == sorted(every) and not len(store.failures())


def test_two_ingests_at_once_one_refuses_and_nothing_is_doubled(tmp_path):
    _survey(tmp_path / "s", 300)
    project = Project.init(tmp_path / "p", ProjectConfig(part_rows=20))
    cmd = [sys.executable, "-m", "specscout.cli", "ingest", str(project.path),
           str(tmp_path / "s"), "--workers", "1", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is being written by pid" in refused and "wait for it to finish" in refused
    paths = project.store().meta(columns=["path"])["path"].to_pylist()
    assert len(paths) == len(set(paths)) == 300


def test_a_damaged_exposure_fails_alone_and_the_file_s_other_spectra_are_pooled(tmp_path):
    """An MRS file whose one exposure table lost its wavelengths: the coadd and the other
    exposures are pooled, the damaged one is a failure naming its id and why."""
    from astropy.io import fits

    from specscout.simulate import SurveyConfig, simulate_survey

    simulate_survey(tmp_path / "s", SurveyConfig(n=1, seed=3), layout="mrs")
    (path,) = sorted((tmp_path / "s").rglob("*.fits*"))
    with fits.open(path) as hdul:
        exposures = [h.name for h in hdul if h.name.startswith("R-")]
        damaged = exposures[1]
        hdus = [h if h.name != damaged else fits.BinTableHDU.from_columns(
            [c for c in h.columns if c.name != "LOGLAM"], header=h.header, name=h.name)
            for h in hdul]
        fits.HDUList(hdus).writeto(tmp_path / "damaged.fits")
    path.unlink()
    config = ProjectConfig.preset("lamost-mrs")
    store = Store.open_or_create(tmp_path / "store", points=config.grid.points)
    summary = ingest(store, [tmp_path / "damaged.fits"], config.preprocess(), workers=1,
                     progress=False)
    assert (summary.ingested, summary.failed, summary.files) == (3, 1, 1)
    meta = store.meta(columns=["id", "status", "reason", "detail"], status=None).to_pylist()
    (fail,) = [m for m in meta if m["status"] == "failed"]
    assert fail["id"] == f"damaged#{damaged[2:]}" and fail["reason"] == "no-flux"
    assert fail["detail"].startswith(f"{damaged} has columns")
    assert sorted(m["id"] for m in meta if m["status"] == "ok") == sorted(
        ["damaged#coadd"] + [f"damaged#{e[2:]}" for e in exposures if e != damaged])


def test_a_label_changed_in_the_csv_is_refused_not_skipped(tmp_path, capsys):
    """Ingest skips files it has seen: a label changed in the CSV since would be lost without
    a word. It is refused, naming the spectrum and both labels, and nothing changes; a file
    stored without a label that has one now is pointed to --retry-failed."""
    paths = _survey(tmp_path / "set", 3)
    project = Project.init(tmp_path / "p")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\n" + "".join(f"set/{p.name},emission\n" for p in paths[:2]))
    args = ["ingest", str(project.path), str(tmp_path / "set"), "--labels", str(csv_path),
            "--workers", "1", "--quiet", "--degrade-to", "1531"]
    assert main(args) == 0
    store = project.store("labelled")
    before = sorted(p.name for p in store.path.rglob("*"))
    csv_path.write_text("path,label\n" + "".join(
        f"set/{p.name},{label}\n" for p, label in zip(paths, ("emission", "double-peak", "other"),
                                                  strict=True)))
    capsys.readouterr()
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "another label in the CSV" in err and "(emission -> double-peak)" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in store.path.rglob("*")) == before
    with pytest.raises(SpecscoutError, match="another label"):
        ingest(store, [tmp_path / "set"], PreprocessConfig(), labels={
            str(paths[1]): "other"}, workers=1, progress=False)
    csv_path.write_text("path,label\n" + "".join(
        f"set/{p.name},{label}\n" for p, label in zip(paths, ("emission", "emission", "other"),
                                                  strict=True)))
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "1 files stored before without a label have one now" in capsys.readouterr().err
