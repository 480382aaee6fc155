"""Commands on spectrum files: inspect, measure, calibrate."""

from __future__ import annotations

import click

from specscout.cli.common import RESOLVING_POWER, Finite, grid, grid_options


@click.command()
@click.argument("files", nargs=-1, required=True)
@grid_options
@click.option("--normalisation", type=click.Choice(["minmax", "continuum"]), default="minmax",
              show_default=True, help="to [-1, 1] (the paper's) or by a fitted continuum")
@click.option("--degrade-to", type=RESOLVING_POWER, default=None, metavar="R",
              help="degrade to this resolving power before resampling")
def inspect(files, window, points, normalisation, degrade_to) -> int:
    """Read spectrum files and show what specscout sees."""
    import numpy as np

    from specscout.errors import SpecscoutError
    from specscout.spectra.preprocess import PreprocessConfig, describe, prepare
    from specscout.spectra.readers import read

    config = PreprocessConfig(grid=grid(window, points), normalisation=normalisation,
                              degrade_to=degrade_to)
    failed = 0
    for path in files:
        try:
            s = read(path)
            prepared = prepare(s, config)
        except SpecscoutError as exc:
            print(f"FAILED  {exc}")
            failed += 1
            continue
        m = s.meta
        known = [f"designation {m.designation!r}" if m.designation else "",
                 f"ra {m.ra:.6f} dec {m.dec:.6f}" if np.isfinite(m.ra) else "",
                 f"obsid {m.obsid}" if m.obsid is not None else "",
                 f"snr {m.snr:.2f}" if np.isfinite(m.snr) else "",
                 f"class {m.survey_class} {m.survey_subclass}".rstrip() if m.survey_class else ""]
        snr = f"window snr {prepared.snr:.1f}, " if np.isfinite(prepared.snr) else ""
        print(f"{path}\n  layout {m.layout} ({m.instrument}, {m.release}), id {m.id}\n"
              f"  {len(s)} pixels, {s.wavelength[0]:.2f}-{s.wavelength[-1]:.2f} A "
              f"{s.medium}, {int(s.mask.sum())} masked\n"
              f"  {' '.join(k for k in known if k)}\n"
              f"  {snr}quality: {describe(prepared.flags) or 'ok'}")
    return 1 if failed else 0


def _show(value: float, error: float, unit: str = "", digits: int = 2) -> str:
    """'1.23 +- 0.04 A', '-' where nothing was measured."""
    import math

    if not math.isfinite(value):
        return "-"
    spread = f" +- {error:.{digits}f}" if math.isfinite(error) else ""
    return f"{value:.{digits}f}{spread}{unit}"


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--resolving-power", type=RESOLVING_POWER, default=None,
              metavar="R", help="the lines' resolving power (default: the instrument's "
                                "effective one, else the file's)")
@click.option("--out", default=None, metavar="TABLE",
              help="write every column as .xml (VOTable), .fits, .csv, .ecsv or .parquet")
def measure(files, resolving_power, out) -> int:
    """Measure H-alpha and its neighbours on each spectrum of FILES, and tell its kind of
    emission (docs/lines.md)."""
    import math

    from astropy.table import Table

    from specscout.catalogue.candidates import LINE_COLUMNS, _describe, write
    from specscout.errors import SpecscoutError
    from specscout.spectra.kinds import classify
    from specscout.spectra.measure import measure as measure_spectrum
    from specscout.spectra.readers import read_all

    rows, failed = [], 0
    for path in files:
        try:
            spectra = read_all(path)
        except SpecscoutError as exc:
            print(f"FAILED  {exc}")
            failed += 1
            continue
        for s in spectra:
            m = classify(measure_spectrum(s, resolving_power))
            rows.append({"path": path, "id": s.meta.id, **m})
            if m["status"] != "ok":
                print(f"{s.meta.id}: not measured ({m['status']})")
                continue

            kind = m["kind"] + (f" ({m['profile']})" if m["profile"] else "")
            why = f", {m['kind_reason']}" if m["kind_reason"] else ""
            print(f"{s.meta.id}: {kind}{why}\n"
                  f"  H-alpha net EW {_show(m['ha_ew'], m['ha_ew_err'], ' A')}, emission "
                  f"{_show(m['ha_emission_ew'], m['ha_emission_ew_err'], ' A')} above "
                  f"{m['photosphere'] or 'the continuum'}; peak {_show(m['ha_peak'], math.nan)} "
                  f"({_show(m['ha_peak_snr'], math.nan, ' sigma', 1)}), FWHM "
                  f"{_show(m['ha_fwhm'], math.nan, ' km/s', 0)} (instrument "
                  f"{m['ha_fwhm_instrument']:.0f}), {m['ha_peaks']} peak(s), velocity "
                  f"{_show(m['ha_velocity'], math.nan, ' km/s', 0)}\n"
                  f"  [N II] 6583 EW {_show(m['nii_6583_ew'], m['nii_6583_ew_err'], ' A')}, "
                  f"[N II]/H-alpha {_show(m['nii_ha'], m['nii_ha_err'], '', 3)}, He I 6678 "
                  f"{_show(m['hei_6678_ew'], m['hei_6678_ew_err'], ' A')}, [S II] 6716/6731 "
                  f"{_show(m['sii_6716_ew'], m['sii_6716_ew_err'], '')}/"
                  f"{_show(m['sii_6731_ew'], m['sii_6731_ew_err'], ' A')}"
                  + (f"\n  not measured: {m['notes']}" if m["notes"] else ""))
    if out and rows:
        table = Table(rows=[{("lines_status" if k == "status" else k): v
                             for k, v in r.items()} for r in rows])
        for name in table.colnames:
            if name in LINE_COLUMNS and table[name].dtype.kind == "f":
                table[name] = table[name].astype("float32")
        print(f"wrote {write(_describe(table), out)}")
    return 1 if failed else 0


@click.command()
@click.argument("pairs")
@grid_options
@click.option("--r-source", type=RESOLVING_POWER, default=None,
              help="resolving power of the source spectra (default: the reader's)")
@click.option("--fixed-blur", type=Finite(0.0, 100.0, min_open=True), default=7.0,
              metavar="PIXELS", show_default=True,
              help="the fixed blur to compare with (the paper's)")
def calibrate(pairs, window, points, r_source, fixed_blur) -> int:
    """Fit the survey's resolving power from pairs of spectra of one star.

    PAIRS is a CSV: source file, survey file[, label] (paths relative to it)."""
    import numpy as np

    from specscout.spectra.calibrate import calibrate_resolution, load_pairs

    cal = calibrate_resolution(load_pairs(pairs), grid=grid(window, points),
                               r_source=r_source, fixed_blur_pixels=fixed_blur)
    print(f"{'pair':<16}{'label':<13}{'v (km/s)':>9}{'R alone':>9}"
          f"{'resid(R)':>10}{f'resid({cal.fixed_blur_pixels:g}px)':>12}")
    for p in cal.pairs:
        print(f"{p.name:<16}{p.label or '-':<13}{p.velocity:>9.1f}{p.resolving_power:>9.0f}"
              f"{p.residual:>10.4f}{p.residual_fixed_blur:>12.4f}")
    own = np.array([p.resolving_power for p in cal.pairs])
    print(f"\nfitted resolving power R = {cal.resolving_power:.0f} "
          f"(source R = {cal.r_source:.0f}; per-pair R median {np.median(own):.0f}, "
          f"16-84% {np.percentile(own, 16):.0f}-{np.percentile(own, 84):.0f})")
    print(f"median normalised RMS residual: {cal.median_residual:.4f} with R = "
          f"{cal.resolving_power:.0f}; {cal.median_residual_fixed_blur:.4f} with the fixed "
          f"sigma = {cal.fixed_blur_pixels:g} px blur")
    return 0


COMMANDS = [inspect, measure, calibrate]
