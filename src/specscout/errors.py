"""The errors specscout raises: each names the input and what was wrong with it."""

from __future__ import annotations

from pathlib import Path


class SpecscoutError(Exception):
    """Base class of every error specscout raises on purpose."""


class ReadError(SpecscoutError):
    """A spectrum file that cannot be read.

    ``reason`` is a short stable code that ingest stores in its failures table: ``not-fits``,
    ``truncated``, ``damaged`` (FITS structure broken), ``bad-gzip``, ``too-large`` (over
    1 GiB, on disk or gunzipped), ``empty``, ``no-flux``, ``missing-keyword``, ``bad-keyword``
    (a count or axis that is not one), ``bad-wavelength``, ``unknown-layout``, ``malformed``
    (values no reader foresaw), ``io``;
    ``detail`` says more in words.
    """

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        text = f"{self.path}: {reason}"
        super().__init__(f"{text} ({detail})" if detail else text)

    def __reduce__(self):  # whole again in the process it is sent to
        return type(self), (self.path, self.reason, self.detail)


class PartError(ReadError):
    """One spectrum of a file of several (an exposure, a fibre) that cannot be read, while
    the file's others can: ``spectrum_id`` names it."""

    def __init__(self, path: str | Path, spectrum_id: str, reason: str, detail: str = "") -> None:
        super().__init__(path, reason, f"{spectrum_id}: {detail}" if detail else spectrum_id)
        self.spectrum_id = spectrum_id
        self.part_detail = detail

    def __reduce__(self):
        return type(self), (self.path, self.spectrum_id, self.reason, self.part_detail)
