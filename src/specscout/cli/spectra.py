"""Commands on spectrum files: inspect, calibrate."""

from __future__ import annotations

import click

from specscout.cli.common import grid, grid_options


@click.command()
@click.argument("files", nargs=-1, required=True)
@grid_options
@click.option("--normalisation", type=click.Choice(["minmax", "continuum"]), default="minmax")
@click.option("--degrade-to", type=float, default=None, metavar="R",
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


@click.command()
@click.argument("pairs")
@grid_options
@click.option("--r-source", type=float, default=None,
              help="resolving power of the source spectra (default: the reader's)")
@click.option("--fixed-blur", type=float, default=7.0, metavar="PIXELS", show_default=True,
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


COMMANDS = [inspect, calibrate]
