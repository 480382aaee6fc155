"""DESI coadded spectra: many targets per file.

Data model (DESI data release documentation, ``coadd-SURVEY-PROGRAM-PIXNUM.fits`` and
``coadd-*`` of tiles): ``FIBERMAP`` (one row per target: TARGETID, TARGET_RA, TARGET_DEC,
COADD_FIBERSTATUS, ...), and per camera arm ``B``, ``R``, ``Z``: ``<ARM>_WAVELENGTH`` (1-D image,
vacuum Angstrom), ``<ARM>_FLUX`` and ``<ARM>_IVAR`` (images, targets x pixels, 1e-17 erg/s/cm2/A),
``<ARM>_MASK`` (integer image, 0 = good); ``<ARM>_RESOLUTION`` is not needed here. The arms
overlap (B 3600-5930, R 5660-7720, Z 7470-9824 A: H-alpha falls in R): each target's spectrum
takes each arm up to the middle of its overlap with the next. One spectrum per target, id
``<file>#<TARGETID>``.
"""

from __future__ import annotations

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers import register
from specscout.spectra.readers._common import checked_wavelength, number, stem, text
from specscout.spectra.readers.fitsbytes import FitsBytes
from specscout.spectra.spectrum import Meta, Spectrum

ARMS = ("B", "R", "Z")
#: DESI's resolving power near H-alpha (R arm: 3200-4100).
RESOLVING_POWER = 3800.0


def _identify(fits: FitsBytes) -> bool:
    return fits.find("FIBERMAP") is not None and any(
        fits.find(f"{arm}_FLUX") is not None for arm in ARMS)


def _image(fits: FitsBytes, name: str) -> np.ndarray | None:
    hdu = fits.find(name)
    return None if hdu is None else fits.image(hdu)


@register("desi", _identify, priority=10)
def read(fits: FitsBytes, path: str) -> list[Spectrum]:
    fibermap = fits.table(fits.find("FIBERMAP"))
    columns = set(fibermap.dtype.names or ())
    if "TARGETID" not in columns:
        raise ReadError(path, "missing-keyword", f"FIBERMAP has columns {sorted(columns)}")
    arms = []  # (wavelength, flux, ivar, mask) of each arm present
    for arm in ARMS:
        wave = _image(fits, f"{arm}_WAVELENGTH")
        flux = _image(fits, f"{arm}_FLUX")
        if wave is None or flux is None:
            continue
        flux = np.atleast_2d(flux)
        if wave.ndim != 1 or flux.shape != (len(fibermap), wave.size):
            raise ReadError(path, "unknown-layout", f"{arm}_FLUX has shape {flux.shape}, for "
                            f"{len(fibermap)} targets and {wave.size} wavelengths")
        ivar = _image(fits, f"{arm}_IVAR")
        mask = _image(fits, f"{arm}_MASK")
        for what, image in (("IVAR", ivar), ("MASK", mask)):
            if image is not None and np.atleast_2d(image).shape != flux.shape:
                raise ReadError(path, "unknown-layout", f"{arm}_{what} has shape "
                                f"{np.shape(image)}, {arm}_FLUX {flux.shape}")
        arms.append((np.asarray(wave, np.float64), flux,
                     None if ivar is None else np.atleast_2d(ivar),
                     np.zeros(flux.shape) if mask is None else np.atleast_2d(mask)))
    if not arms:
        raise ReadError(path, "no-flux", "no <ARM>_WAVELENGTH and <ARM>_FLUX images")
    keep = [np.ones(a[0].size, dtype=bool) for a in arms]
    for k in range(len(arms) - 1):  # each arm up to the middle of its overlap with the next
        middle = (arms[k + 1][0][0] + arms[k][0][-1]) / 2
        keep[k] &= arms[k][0] < middle
        keep[k + 1] &= arms[k + 1][0] >= middle
    wave = checked_wavelength(np.concatenate([a[0][m] for a, m in zip(arms, keep, strict=True)]),
                              path)

    def joined(part: int, i: int) -> np.ndarray:
        return np.concatenate([a[part][i][m] for a, m in zip(arms, keep, strict=True)])

    # An arm without an inverse variance leaves the whole spectrum without one (never
    # invented): preprocessing then estimates its noise from the flux.
    has_ivar = all(a[2] is not None for a in arms)

    h = fits.hdu(0).header
    name = stem(path)
    out = []
    for i, target in enumerate(fibermap["TARGETID"]):
        flux = joined(1, i).astype(np.float32)
        ivar = joined(2, i).astype(np.float32) if has_ivar else None
        bad = joined(3, i) != 0
        if ivar is not None:
            bad |= ~(ivar > 0)
        row = fibermap[i]
        meta = Meta(
            id=f"{name}#{int(target)}", path=path, instrument="DESI", layout="desi-coadd",
            release=text(h, "SPECPROD") or text(h, "RUN"),
            ra=float(row["TARGET_RA"]) if "TARGET_RA" in columns else np.nan,
            dec=float(row["TARGET_DEC"]) if "TARGET_DEC" in columns else np.nan,
            obsid=int(target), designation="", snr=number(h, "SNR_R"),
            resolving_power=RESOLVING_POWER, exposure=str(int(target)))
        out.append(Spectrum(wave, flux, ivar, bad, "vacuum", meta))
    return out
