"""Last resort: files no specscout reader identifies go through specutils' readers."""

from __future__ import annotations

import gzip

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers._common import checked_wavelength, stem
from specscout.spectra.spectrum import Meta, Spectrum

_HDF5 = b"\x89HDF\r\n\x1a\n"


def may_read(path: str) -> bool:
    """Whether a file that is not FITS may be another format specutils reads: HDF5, or text
    (lines, no NUL bytes). Binary garbage and damaged FITS (whose 80-character header cards
    have no line breaks) are not tried: specutils' format guessing takes tens of seconds on
    them and can only fail."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                head = fh.read(4096)
    except (OSError, EOFError):
        return False
    if head.startswith(_HDF5):
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end
            return False
    return b"\0" not in head and b"\n" in head


def read_or_raise(path: str, error: ReadError) -> Spectrum:
    """Read ``path`` with specutils, or raise ``error`` (amended with specutils' reason)."""
    try:
        import astropy.units as u
        import specutils
        from astropy.nddata import InverseVariance
    except ImportError:
        raise error from None
    cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    try:
        spec = cls.read(path)
    except Exception as exc:  # specutils raises many kinds; all mean "cannot read"
        # its first line says why; the rest is its table of every format it knows
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReadError(path, error.reason,
                        f"{error.detail}; specutils could not read it either: {why}") from None
    flux = np.asarray(spec.flux.value, dtype=np.float32)
    if flux.ndim != 1:
        raise ReadError(path, "unknown-layout", f"specutils gives a flux of shape {flux.shape}")
    wave = spec.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    ivar = None
    if spec.uncertainty is not None:
        ivar = np.asarray(
            spec.uncertainty.represent_as(InverseVariance).array, dtype=np.float32)
    mask = (np.zeros(flux.size, dtype=bool) if spec.mask is None
            else np.asarray(spec.mask, dtype=bool))
    order = np.argsort(wave)
    wave = checked_wavelength(wave[order], path)
    meta = Meta(id=stem(path), path=path, instrument="", layout="specutils")
    return Spectrum(wave, flux[order], None if ivar is None else ivar[order], mask[order],
                    "unknown", meta)

