"""The ``specscout`` command: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from specscout import __version__
from specscout.errors import SpecscoutError
from specscout.grid import Grid


def _grid(args: argparse.Namespace) -> Grid:
    return Grid(args.window[0], args.window[1], args.points)


def _add_grid_options(p: argparse.ArgumentParser) -> None:
    default = Grid()
    p.add_argument("--window", nargs=2, type=float, metavar=("START", "STOP"),
                   default=(default.start, default.stop),
                   help="vacuum wavelength window in Angstrom (default: %(default)s)")
    p.add_argument("--points", type=int, default=default.points,
                   help="points of the grid (default: %(default)s)")


def cmd_inspect(args: argparse.Namespace) -> int:
    from specscout.preprocess import PreprocessConfig, describe, prepare
    from specscout.readers import read

    config = PreprocessConfig(grid=_grid(args), normalisation=args.normalisation,
                              degrade_to=args.degrade_to)
    failed = 0
    for path in args.files:
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


def cmd_calibrate(args: argparse.Namespace) -> int:
    from specscout.calibrate import calibrate_resolution, load_pairs

    pairs = load_pairs(args.pairs)
    cal = calibrate_resolution(pairs, grid=_grid(args), r_source=args.r_source,
                               fixed_blur_pixels=args.fixed_blur)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specscout",
        description="Find rare objects in survey archives of spectra by active deep learning.")
    parser.add_argument("--version", action="version", version=f"specscout {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="read spectrum files and show what specscout sees")
    p.add_argument("files", nargs="+")
    _add_grid_options(p)
    p.add_argument("--normalisation", default="minmax", choices=("minmax", "continuum"))
    p.add_argument("--degrade-to", type=float, default=None, metavar="R",
                   help="degrade to this resolving power before resampling")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("calibrate",
                       help="fit the survey's resolving power from pairs of spectra of one star")
    p.add_argument("pairs", help="CSV: source file, survey file[, label] (paths relative to it)")
    _add_grid_options(p)
    p.add_argument("--r-source", type=float, default=None,
                   help="resolving power of the source spectra (default: the reader's)")
    p.add_argument("--fixed-blur", type=float, default=7.0, metavar="PIXELS",
                   help="the fixed blur to compare with (default: the paper's %(default)s px)")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecscoutError, ValueError, OSError) as exc:
        print(f"specscout: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
