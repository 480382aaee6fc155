"""Simulated surveys on real photospheres, with H-alpha emission injected with known truth.

Each spectrum is a real star of the MILES library (the package's templates, see
scripts/build_templates.py) given a radial velocity, a continuum tilt (reddening and instrument
response), the target instrument's resolution, flux-conserving pixels, noise at a drawn
signal-to-noise, bad pixels, cosmic rays and sky-line residuals; then, for the rare classes, an
H-alpha profile of a known family and equivalent width is added. Everything drawn is written to
a truth table, so the survey can serve as an oracle.

Two products:
- a LAMOST-like survey (:func:`simulate_survey`) in a real LAMOST layout, vacuum wavelengths;
- an Ondrejov-like labelled set (:func:`simulate_labelled`): R ~ 13000, air, CCD700 raw layout,
  the reference paper's class mix, with a labels CSV ready for ``specscout ingest --labels``.

The templates cover 6240-6790 A (air) only: in LAMOST-layout files the pixels outside that range
carry no data (flux 0, ivar 0, andmask set), as a survey marks pixels it could not measure.
Photospheres keep MILES's resolution (FWHM 2.5 A) where the target is sharper (the Ondrejov-like
set); the injected lines are rendered at the target's resolution.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specscout.progress import progress_bar
from specscout.simulate.profiles import CLASSES, draw_profile, line_profile, log_uniform
from specscout.spectra.lines import C_KMS, HALPHA_AIR, HALPHA_VACUUM, continuum
from specscout.spectra.preprocess import FWHM_PER_SIGMA, air_to_vacuum, match_resolution, resample
from specscout.spectra.spectrum import Meta
from specscout.spectra.templates import Templates, load_templates
from specscout.spectra.writers import (
    LAMOST_LAYOUTS,
    lamost_wavelength,
    mrs_wavelength,
    write_lamost,
    write_lamost_mrs,
    write_ondrejov_raw,
)

#: The layouts of a simulated survey: LAMOST LRS (DR1, DR2-DR8, DR9+) and LAMOST MRS.
SURVEY_LAYOUTS = (*LAMOST_LAYOUTS, "mrs")
#: Exposures of each simulated MRS file, besides their coadd.
MRS_EXPOSURES = 3

#: Night-sky lines near H-alpha (air, Angstrom): [O I] and OH, where sky subtraction leaves
#: residuals in real spectra.
SKY_LINES_AIR = (6300.30, 6363.78, 6498.73, 6553.62, 6577.18, 6604.13)
NO_DATA, BAD_PIXEL = 1 << 6, 1 << 1  # andmask bits of the simulated files


# --- what is drawn ------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """How the simulated spectrograph sees: resolving power, pixels, medium, noise."""

    resolving_power: float
    snr_median: float
    snr_sigma: float  # of ln(SNR)
    medium: str  # "vacuum" or "air"


#: LAMOST LRS near H-alpha. R = 1600 before pixelisation gives the effective R ~ 1530 that
#: ``specscout calibrate`` measures on real LAMOST spectra; the SNR distribution follows the
#: sideband scatter of the real LAMOST files of ../shared/data (median 0.028).
LAMOST = Instrument(resolving_power=1600.0, snr_median=42.0, snr_sigma=0.35, medium="vacuum")
#: LAMOST MRS, red arm: R ~ 7500, vacuum; the SNR of the coadd of its exposures.
MRS = Instrument(resolving_power=7500.0, snr_median=30.0, snr_sigma=0.45, medium="vacuum")
#: Ondrejov 2m, CCD700 around H-alpha: R ~ 13000, air, high signal-to-noise.
ONDREJOV = Instrument(resolving_power=13000.0, snr_median=150.0, snr_sigma=0.3, medium="air")


@dataclass(frozen=True)
class SurveyConfig:
    """What a simulated survey looks like. Fractions are of the classes other than "other"."""

    n: int = 1000
    seed: int = 0
    fractions: dict[str, float] = field(
        default_factory=lambda: {"emission": 0.01, "double-peak": 0.003})
    rv_sigma: float = 30.0  # km/s
    tilt_mean: float = 0.007  # fractional continuum slope added, per 100 A
    tilt_sigma: float = 0.006
    bad_pixel_rate: float = 0.002
    cosmic_rays: float = 0.3  # mean number per spectrum in the data range
    sky_residual_rate: float = 0.2  # chance of a residual at each sky line
    snr_median: float | None = None  # None: the instrument's
    repeats: float = 0.0  # chance that a spectrum revisits an earlier spectrum's star
    resolvable_at: float = LAMOST.resolving_power  # double peaks are resolved at this R

    def __post_init__(self) -> None:
        unknown = set(self.fractions) - set(CLASSES[1:])
        if unknown or sum(self.fractions.values()) > 1 or min(self.fractions.values(),
                                                              default=0) < 0:
            raise ValueError(f"fractions must be of {CLASSES[1:]} and sum to at most 1: "
                             f"{self.fractions}")


# --- one spectrum -------------------------------------------------------------------------


def _draw_class(rng: np.random.Generator, fractions: dict[str, float]) -> str:
    u, edge = rng.uniform(), 0.0
    for cls in CLASSES[1:]:
        edge += fractions.get(cls, 0.0)
        if u < edge:
            return cls
    return "other"


def draw(rng: np.random.Generator, config: SurveyConfig, instrument: Instrument,
         templates: Templates, cls: str | None = None) -> dict:
    """Everything random about one spectrum (the truth table's row)."""
    cls = cls or _draw_class(rng, config.fractions)
    t = int(rng.choice(templates.usable))
    snr_median = config.snr_median or instrument.snr_median
    return {
        "class": cls, "template": int(t), "miles_id": str(templates.miles_id[t]),
        "star": str(templates.name[t]), "spt": str(templates.spt[t]),
        "teff": float(templates.teff[t]), "logg": float(templates.logg[t]),
        "feh": float(templates.feh[t]),
        "rv": float(rng.normal(0, config.rv_sigma)),
        "tilt": float(rng.normal(config.tilt_mean, config.tilt_sigma)),
        "snr": float(snr_median * np.exp(rng.normal(0, instrument.snr_sigma))),
        "amplitude": log_uniform(rng, 100, 5000),
        **{f"line_{k}": v for k, v in draw_profile(rng, cls, config.resolvable_at).items()},
    }


def render(truth: dict, templates: Templates, instrument: Instrument, wavelength: np.ndarray,
           rng: np.random.Generator, config: SurveyConfig) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray, dict]:
    """Flux, ivar and andmask of one spectrum on the pixels ``wavelength`` (in the instrument's
    medium), and what the noise draws added (cosmic rays, sky residuals)."""
    doppler = 1 + truth["rv"] / C_KMS
    src = templates.wavelength_air * doppler
    if instrument.medium == "vacuum":
        src = air_to_vacuum(src)
    photosphere = templates.flux[truth["template"]]
    r_template = 6563.0 / templates.fwhm
    if instrument.resolving_power < r_template:
        photosphere, _, _ = match_resolution(src, photosphere, r_template,
                                             instrument.resolving_power)
    centre = (HALPHA_VACUUM if instrument.medium == "vacuum" else HALPHA_AIR) * doppler
    # Emission is added relative to the local continuum (a line through the sidebands).
    line = {k[5:]: v for k, v in truth.items() if k.startswith("line_")}
    model = photosphere
    if line.get("family"):
        cont = continuum(src, photosphere, centre)
        model = photosphere + cont * line_profile(src, line, centre, instrument.resolving_power)
    # Not in place: without a line, model is the (cached) template itself.
    model = model * (1 + truth["tilt"] * (src - centre) / 100) * truth["amplitude"]
    flux, _, nodata = resample(src, model, wavelength, min_coverage=0.99)
    flux = np.where(nodata, 0.0, flux)

    covered = ~nodata
    sigma = float(np.median(flux[covered])) / truth["snr"]
    flux[covered] += rng.normal(0, sigma, covered.sum())
    ivar = np.where(covered, sigma**-2, 0.0)
    andmask = np.where(nodata, NO_DATA, 0)
    bad = covered & (rng.uniform(size=flux.size) < config.bad_pixel_rate)
    andmask[bad] |= BAD_PIXEL
    ivar[bad] = 0.0
    idx = np.nonzero(covered)[0]
    n_cosmic = int(rng.poisson(config.cosmic_rays))
    hits = rng.choice(idx, size=n_cosmic) if n_cosmic else np.array([], int)
    flux[hits] += sigma * rng.uniform(5, 50, n_cosmic)
    sky = np.array(SKY_LINES_AIR)
    if instrument.medium == "vacuum":
        sky = air_to_vacuum(sky)
    residuals = 0
    for line_centre in sky:  # sky lines do not move with the star
        if not wavelength[idx[0]] < line_centre < wavelength[idx[-1]]:
            continue
        if rng.uniform() < config.sky_residual_rate:
            width = line_centre / instrument.resolving_power / FWHM_PER_SIGMA
            bump = np.exp(-0.5 * ((wavelength - line_centre) / width) ** 2)
            flux += sigma * rng.uniform(-6, 6) * bump * covered
            residuals += 1
    return flux, ivar, andmask, {"cosmic_rays": n_cosmic, "sky_residuals": residuals}


# --- surveys ------------------------------------------------------------------------------


def _designation(ra: float, dec: float) -> str:
    h = ra / 15
    hh, mm = int(h), int((h % 1) * 60)
    ss = ((h * 60) % 1) * 60
    sign = "+" if dec >= 0 else "-"
    d = abs(dec)
    dd, dm = int(d), int((d % 1) * 60)
    ds = ((d * 60) % 1) * 60
    return f"LAMOST J{hh:02d}{mm:02d}{ss:05.2f}{sign}{dd:02d}{dm:02d}{ds:04.1f}"


def _sky_position(rng: np.random.Generator) -> tuple[float, float]:
    """Uniform on the sky north of declination -10 deg, LAMOST's sky."""
    ra = rng.uniform(0, 360)
    dec = math.degrees(math.asin(rng.uniform(math.sin(math.radians(-10)), 1.0)))
    return ra, dec


def star_of(i: int, config: SurveyConfig) -> int:
    """The spectrum whose star spectrum ``i`` shows: itself, or with chance ``repeats`` an
    earlier one's (followed back to the first visit). Depends only on (seed, i)."""
    while i > 0 and config.repeats:
        pick = np.random.default_rng([config.seed, i, 1])
        if pick.uniform() >= config.repeats:
            break
        i = int(pick.integers(0, i))
    return i


#: What a revisit draws anew: the observing conditions, not the star.
VISIT_KEYS = ("snr", "amplitude", "tilt")


def _survey_batch(indices: list[int], out: str, config: SurveyConfig, layout: str,
                  compress: bool) -> list[dict]:
    templates = load_templates()
    instrument = MRS if layout == "mrs" else LAMOST
    wave = lamost_wavelength(3909)
    rows = []
    for i in indices:
        rng = np.random.default_rng([config.seed, i])
        truth = draw(rng, config, instrument, templates)
        star = star_of(i, config)
        if star != i:  # the same star again: its spectrum's star and line, new conditions
            first = draw(np.random.default_rng([config.seed, star]), config, instrument,
                         templates)
            truth = {k: (truth[k] if k in VISIT_KEYS else v) for k, v in first.items()}
        truth["object"] = star
        ra, dec = _sky_position(np.random.default_rng([config.seed, star, 2]))
        if star != i:  # astrometry of another visit: within a fraction of an arcsec
            jitter = np.random.default_rng([config.seed, i, 2]).normal(0, 0.2 / 3600, 2)
            ra = (ra + jitter[0] / max(math.cos(math.radians(dec)), 1e-6)) % 360
            dec = float(np.clip(dec + jitter[1], -90, 90))
        plan = i // 4000
        meta = dict(layout=layout, ra=ra, dec=dec,
                    designation=_designation(ra, dec), obsid=100_000_000 + i,
                    snr=truth["snr"], survey_class="STAR",
                    survey_subclass=truth["spt"][:2] or "Non")
        if layout == "mrs":
            name = f"med-{58300 + plan}-SIM{plan:05d}_sp{(i // 250) % 16 + 1:02d}-{i % 250 + 1:03d}"
            ids, noise = _mrs_file(i, name, out, truth, templates, rng, config, meta, compress)
        else:
            name = (f"spec-{55900 + plan}-SIM{plan:05d}_sp{(i // 250) % 16 + 1:02d}-"
                    f"{i % 250 + 1:03d}")
            path = Path(out) / f"plan{plan:05d}" / (name + (".fits.gz" if compress else ".fits"))
            path.parent.mkdir(parents=True, exist_ok=True)
            flux, ivar, andmask, noise = render(truth, templates, LAMOST, wave, rng, config)
            write_lamost(path, flux, ivar, Meta(
                id=name, path=str(path), instrument="LAMOST LRS",
                release="DR9" if layout == "dr9" else "",
                **meta),
                layout=layout, andmask=andmask, compress=compress)
            ids = [(name, str(path))]
        for ident, path in ids:  # one truth row per spectrum
            rows.append({"id": ident, "path": path, "obsid": meta["obsid"], "ra": ra,
                         "dec": dec, "designation": meta["designation"], **truth, **noise})
    return rows


def _mrs_file(i: int, name: str, out: str, truth: dict, templates: Templates,
              rng: np.random.Generator, config: SurveyConfig, meta: dict,
              compress: bool) -> tuple[list[tuple[str, str]], dict]:
    """A LAMOST MRS file of MRS_EXPOSURES exposures of the star and their coadd; the blue arm
    lies outside the templates, so it carries no data. Returns (id, path) of its spectra."""
    plan = i // 4000
    path = Path(out) / f"plan{plan:05d}" / (name + (".fits.gz" if compress else ".fits"))
    path.parent.mkdir(parents=True, exist_ok=True)
    red = mrs_wavelength("R")
    blue = np.zeros(mrs_wavelength("B").size)
    no_blue = (blue, blue, np.full(blue.size, NO_DATA))
    exposure_truth = {**truth, "snr": truth["snr"] / math.sqrt(MRS_EXPOSURES)}
    exposures, noise = [], {"cosmic_rays": 0, "sky_residuals": 0}
    start = 83_900_000 + 1440 * (i // 250) + 100  # local minutes: one night per plate
    for e in range(MRS_EXPOSURES):
        flux, ivar, bits, added = render(exposure_truth, templates, MRS, red, rng, config)
        exposures.append((start + 14 * e, {"B": no_blue, "R": (flux, ivar, bits)}))
        noise = {k: noise[k] + added[k] for k in noise}
    fluxes = np.array([x[1]["R"][0] for x in exposures])
    ivars = np.array([x[1]["R"][1] for x in exposures])
    weight = ivars.sum(0)
    coadd_flux = np.divide((fluxes * ivars).sum(0), weight, out=np.zeros(red.size),
                           where=weight > 0)
    bits = np.bitwise_and.reduce(np.array([x[1]["R"][2] for x in exposures]), axis=0)
    write_lamost_mrs(path, {"B": no_blue, "R": (coadd_flux, weight, bits)}, exposures,
                     Meta(id=name, path=str(path), instrument="LAMOST MRS", release="DR7",
                          **{**meta, "layout": "lamost-mrs"}), compress=compress)
    return ([(f"{name}#coadd", str(path))]
            + [(f"{name}#{m}", str(path)) for m, _ in exposures]), noise


def _labelled_batch(indices: list[int], out: str, config: SurveyConfig,
                    compress: bool) -> list[dict]:
    templates = load_templates()
    rows = []
    for i in indices:
        rng = np.random.default_rng([config.seed, i])
        start = 6250.0 + rng.uniform(0, 6)
        wave = start + 0.2567 * np.arange(2000)
        truth = draw(rng, config, ONDREJOV, templates)
        flux, _, _, noise = render(truth, templates, ONDREJOV, wave, rng, config)
        ra, dec = _sky_position(rng)
        name = f"ua{i:06d}"
        path = Path(out) / (name + (".fits.gz" if compress else ".fits"))
        write_ondrejov_raw(path, wave, flux, obj=f"SIM {i}", ra=_hms(ra / 15), dec=_hms(dec),
                           compress=compress)
        rows.append({"id": "ivo://asu.cas.cz/stel/ccd700/" + name, "path": str(path),
                     "ra": ra, "dec": dec, **truth, **noise})
    return rows


def _hms(value: float) -> str:
    """Sexagesimal text of hours or degrees, rounded to the millisecond first so that the
    seconds never read 60."""
    sign = "-" if value < 0 else ""
    ms = round(abs(value) * 3_600_000)
    return f"{sign}{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms % 60_000 / 1000:06.3f}"


def _chunks(n: int, size: int) -> Iterator[list[int]]:
    for start in range(0, n, size):
        yield list(range(start, min(start + size, n)))


def _run(batch_func, n: int, args: tuple, workers: int | None, scheduler: str | None,
         progress: bool) -> list[dict]:
    from specscout.archive.cluster import dask_client, map_batches

    rows: list[dict] = []
    bar = progress_bar(n, "spectra") if progress else None
    try:
        if n <= 200 or workers == 0:  # not worth a cluster
            for batch in _chunks(n, 100):
                rows.extend(batch_func(batch, *args))
                if bar is not None:
                    bar.update(len(batch))
        else:
            with dask_client(workers, scheduler) as client:
                for result in map_batches(client, batch_func, _chunks(n, 200), *args):
                    rows.extend(result)
                    if bar is not None:
                        bar.update(len(result))
    finally:
        if bar is not None:
            bar.close()
    return sorted(rows, key=lambda r: r["path"])


def _write_truth(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("line_"), k))
    table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
    pq.write_table(table, path)


def simulate_survey(out: str | Path, config: SurveyConfig | None = None, layout: str = "dr2",
                    compress: bool = True, workers: int | None = None,
                    scheduler: str | None = None, progress: bool = False) -> Path:
    """Write a LAMOST-like survey of ``config.n`` files under ``out`` and ``out/truth.parquet``.
    Spectrum i depends only on (seed, i), so the survey is the same however it is split."""
    config = config or SurveyConfig()
    if layout not in SURVEY_LAYOUTS:
        raise ValueError(f"layout must be one of {SURVEY_LAYOUTS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _run(_survey_batch, config.n, (os.fspath(out), config, layout, compress), workers,
                scheduler, progress)
    _write_truth(rows, out / "truth.parquet")
    return out / "truth.parquet"


#: The class mix of the reference paper's Ondrejov training set.
PAPER_MIX = {"emission": 0.41, "double-peak": 0.12}


def simulate_labelled(out: str | Path, config: SurveyConfig | None = None,
                      compress: bool = False, workers: int | None = None,
                      scheduler: str | None = None, progress: bool = False) -> Path:
    """Write an Ondrejov-like labelled set (CCD700 raw layout, air, R ~ 13000, the paper's
    class mix by default) under ``out`` with ``truth.parquet`` and ``labels.csv`` (path,label).
    """
    config = config or SurveyConfig(fractions=PAPER_MIX)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _run(_labelled_batch, config.n, (os.fspath(out), config, compress), workers,
                scheduler, progress)
    _write_truth(rows, out / "truth.parquet")
    with (out / "labels.csv").open("w") as fh:
        fh.write("path,label\n")
        for r in rows:
            fh.write(f"{Path(r['path']).name},{r['class']}\n")
    return out / "truth.parquet"

