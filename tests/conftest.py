"""Shared fixtures. Tests that need the real data of ../shared/data skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the tests run in parallel processes (pyproject's addopts): one thread each for torch
    # and BLAS, also in the commands they start (the variable); two threads a process on two
    # cores made the suite a fifth slower than one process. numpy may be loaded already (a
    # plugin's import): its BLAS is limited in place.
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threadpool_limits(1)

import numpy as np
import pytest

from specscout.spectra.lines import C_KMS
from specscout.spectra.preprocess import match_resolution, vacuum_to_air
from specscout.spectra.spectrum import Meta, Spectrum
from specscout.spectra.writers import lamost_wavelength

SHARED_DATA = Path(os.environ.get(
    "SPECSCOUT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SPECSCOUT_SHARED_DATA)")
    return SHARED_DATA


def lamost_meta(**kw) -> Meta:
    values = dict(id="spec-55859-F5902_sp01-001", path="", instrument="LAMOST LRS", layout="",
                  ra=332.202274, dec=-2.056767, designation="LAMOST J220848.54-020324.3",
                  obsid=101001, snr=27.16, survey_class="STAR", survey_subclass="G7",
                  release="DR7")
    values.update(kw)
    return Meta(**values)


def star_flux(n: int = 3909, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A continuum with an H-alpha absorption line on the LAMOST grid, and its ivar."""
    wave = lamost_wavelength(n)
    rng = np.random.default_rng(seed)
    flux = 1000.0 * (1 - 0.4 * np.exp(-0.5 * ((wave - 6564.61) / 3.0) ** 2))
    sigma = 10.0
    return flux + rng.normal(0, sigma, n), np.full(n, sigma**-2)


R_TRUE, VELOCITY = 2000.0, 30.0


def _intrinsic(wave_vac, seed):
    """A star's spectrum near H-alpha: a broad Balmer line and narrow metal lines."""
    rng = np.random.default_rng(seed)
    flux = 1 - 0.5 * np.exp(-0.5 * ((wave_vac - 6564.61) / 2.0) ** 2)
    for centre in rng.uniform(6530, 6720, 12):
        flux -= rng.uniform(0.1, 0.4) * np.exp(-0.5 * ((wave_vac - centre) / 0.15) ** 2)
    return flux


def synthetic_pair(seed: int) -> tuple[Spectrum, Spectrum]:
    fine = np.arange(6200.0, 6850.0, 0.02)  # vacuum, rest frame
    star = _intrinsic(fine, seed)
    source_flux, _, _ = match_resolution(fine, star, 1e9, 13000.0)
    target_flux, _, _ = match_resolution(fine, star, 1e9, R_TRUE)
    # Source: Ondrejov-like, air, 0.2567 A pixels, at rest.
    src_air = np.arange(6255.0, 6765.0, 0.2567)
    src_vac_of_air = np.interp(src_air, vacuum_to_air(fine), fine)
    src = np.interp(src_vac_of_air, fine, source_flux)
    source = Spectrum(src_air, src.astype(np.float32), None, np.zeros(src_air.size, bool), "air",
                      Meta(id=f"s{seed}", path="", instrument="Ondrejov CCD700", layout="",
                           resolving_power=13000.0))
    # Target: LAMOST-like, vacuum, log-linear, moving at VELOCITY, tilted, a little noise.
    wave = lamost_wavelength()
    shifted = np.interp(wave, fine * (1 + VELOCITY / C_KMS), target_flux)
    rng = np.random.default_rng(100 + seed)
    flux = np.nan_to_num(shifted) * (1 + 1e-4 * (wave - 6600)) * 500
    flux += rng.normal(0, 1.0, wave.size)
    target = Spectrum(wave, flux.astype(np.float32), np.ones(wave.size, np.float32),
                      np.zeros(wave.size, bool), "vacuum", lamost_meta())
    return source, target


def printed(proc, pattern: str, timeout: float = 60):
    """The first match of ``pattern`` in what the process ``proc`` prints (its stdout, read in
    a thread that keeps draining it), within ``timeout`` seconds; AssertionError if none."""
    import queue
    import re
    import threading

    lines: queue.Queue = queue.Queue()

    def drain() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing like {pattern!r} printed in {timeout} s: "
                                 f"{''.join(seen)[-2000:]}") from None
        if line is None:
            raise AssertionError(f"the process ended (exit {proc.wait()}): {''.join(seen)}")
        seen.append(line)
        if m := re.search(pattern, line):
            return m


def log_in(client):
    """A TestClient of the app with a session opened by the app's one-time launch link, as
    the page opens it: the login token and the session's secret in its headers."""
    client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
    token = client.app.state.specscout.launch_token
    r = client.post("/api/launch", json={"token": token})
    assert r.status_code == 200, r.text
    client.headers["X-Session-Secret"] = r.json()["secret"]
    return client


class LiveServer:
    """A FastAPI app served by uvicorn on a free loopback port, in a thread of the test;
    ``launch_url``: the app's one-time link."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.app = app
        # port 0: the system gives a free port to the listening socket itself (a port found
        # free and then bound could be taken by a test in another process meanwhile)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        for _ in range(200):
            if self.server.started:
                self.port = self.server.servers[0].sockets[0].getsockname()[1]
                self.url = f"http://127.0.0.1:{self.port}"
                token = self.app.state.specscout.launch_token
                self.launch_url = f"{self.url}/?token={token}" if token else self.url
                return self
            time.sleep(0.02)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def annotate_at_once(app, tokens: dict[str, str], annotate) -> None:
    """Serve ``app`` and run ``annotate(name, token, url)`` for every user in a thread of its
    own, all at once; re-raises the first error a thread met."""
    import threading

    errors: list[BaseException] = []

    def run(name: str, token: str, url: str) -> None:
        try:
            annotate(name, token, url)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    with LiveServer(app) as server:
        threads = [threading.Thread(target=run, args=(n, t, server.url))
                   for n, t in tokens.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def scored_iteration(project, number: int, probabilities: np.ndarray) -> Path:
    """Iteration ``number`` of ``project`` as 'specscout score' leaves it, with the given
    class probabilities of every pool row; its model is an untrained small network (the tests
    that use this look at what follows from the scores, not at the network)."""
    from specscout.learn.iterations import iteration_path
    from specscout.learn.model import build
    from specscout.learn.train import Fitted, TrainConfig

    classes, points = tuple(project.config.classes), project.config.grid.points
    path = iteration_path(project, number)
    path.mkdir(parents=True)
    Fitted(build("small-cnn", points, len(classes)), "small-cnn", classes, points, 1.0,
           TrainConfig(model="small-cnn")).save(path / "model.pt")
    np.save(path / "scores.npy", np.asarray(probabilities, dtype=np.float16))
    return path


#: The modules with the longest tests, run first: parallel processes take whole modules,
#: and one of these started last would leave the others idle at the end.
FIRST = ("test_real_candidates", "test_demo", "test_docs_console", "test_references",
         "test_candidates", "test_web_server", "test_engine", "test_web_properties",
         "test_map", "test_ingest", "test_train", "test_domain_project", "test_cluster",
         "test_mrs")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: k for k, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(FIRST)))
