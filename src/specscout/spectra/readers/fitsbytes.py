"""A minimal FITS parser over bytes in memory, for the hot path of ingest.

Ingest reads millions of small files, and for files of a few tens of kB astropy.io.fits spends
most of its time building objects rather than moving bytes (see benchmarks/bench_readers.py).
This module implements only what survey spectra need, following the FITS Standard 4.0:
header cards (values parsed on access), uncompressed images (BITPIX, NAXISn, BSCALE/BZERO) and
binary tables of fixed-width columns (L, B, I, J, K, A, E, D, with TSCALn/TZEROn). Anything else
raises :class:`Unsupported`, and tests compare every value with astropy on the real files.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # Intel ISA-L: the same API as zlib, ~1.6x faster at gunzip (benchmarks/bench_readers.py)
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - a platform without isal wheels
    import zlib as _zlib

BLOCK = 2880
CARD = 80
_END = b"END" + b" " * 77
_GZIP_MAGIC = b"\x1f\x8b"
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")

_IMAGE_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_TFORM = re.compile(r"^(\d*)([A-Z])")
_TABLE_DTYPES = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


class FitsError(Exception):
    """The bytes are not a well-formed FITS file; ``reason`` is a ReadError reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Unsupported(FitsError):
    """Well-formed FITS that this parser does not handle (e.g. variable-length columns)."""

    def __init__(self, detail: str) -> None:
        super().__init__("unknown-layout", detail)


#: The most bytes a spectrum file may hold, or expand to once gunzipped: a bound on the
#: memory one file can take (a gzip bomb, a mislabelled cube), far above any spectrum file
#: (LAMOST ~0.2 MB, MRS ~3 MB, a DESI coadd of 500 targets ~0.3 GB).
MAX_BYTES = 1 << 30


def load_bytes(path: str | Path, limit: int | None = None) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic number; at most
    ``limit`` bytes (default ``MAX_BYTES``), before or after gunzipping."""
    path = Path(path)
    limit = MAX_BYTES if limit is None else limit
    if path.stat().st_size > limit:
        raise FitsError("too-large", f"{path.stat().st_size} bytes, more than {limit}")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    d = _zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(raw, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise FitsError("too-large", f"expands to more than {limit} bytes when gunzipped")
        out += d.flush()
    except _zlib.error as exc:
        raise FitsError("bad-gzip", f"corrupt gzip stream: {exc}") from None
    if not d.eof:
        raise FitsError("bad-gzip", "gzip stream ends before its end marker (truncated download?)")
    if d.unused_data:  # a multi-member gzip file: rare, let the stdlib handle it
        import gzip

        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
                out = fh.read(limit + 1)
        except (OSError, EOFError, _zlib.error) as exc:
            raise FitsError("bad-gzip", f"corrupt gzip stream: {exc}") from None
        if len(out) > limit:
            raise FitsError("too-large", f"expands to more than {limit} bytes when gunzipped")
    return out


def _parse_value(text: str) -> object:
    """Parse the value field of a card (the text after ``= ``), comment included."""
    s = text.lstrip()
    if s.startswith("'"):
        # A string: '' inside is an escaped quote; trailing blanks are not significant.
        out, i = [], 1
        while True:
            j = s.find("'", i)
            if j < 0:
                return s[1:].rstrip()
            out.append(s[i:j])
            if s[j + 1 : j + 2] == "'":
                out.append("'")
                i = j + 2
            else:
                return "".join(out).rstrip()
    s = s.split("/", 1)[0].strip()
    if s == "T":
        return True
    if s == "F":
        return False
    if not s:
        return None
    if s.isdigit() or (s[0] in "+-" and s[1:].isdigit()):
        return int(s)
    try:
        return float(s.replace("D", "E").replace("d", "e"))
    except ValueError:
        return s


class Header:
    """Header cards of one HDU (``data[start:end]``); a value is parsed when first asked for.

    Building card objects for all ~120 cards is what makes astropy slow on small files. Here
    the cards are only indexed by keyword through a strided view of the buffer (first
    occurrence wins), and a reader parses the ~15 values it uses.
    """

    __slots__ = ("_cache", "_data", "_index")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        end = len(data) if end is None else end
        ncards = (end - start) // CARD
        keys = np.ndarray((ncards,), dtype="S8", buffer=data, offset=start,
                          strides=(CARD,)).tolist()
        keys.reverse()  # so that the first occurrence of a keyword wins
        self._index = dict(zip(keys, range(start + (ncards - 1) * CARD, start - 1, -CARD),
                               strict=True))
        self._data = data
        self._cache: dict[str, object] = {}

    def _find(self, key: str) -> int:
        pos = self._index.get(key.encode("ascii").ljust(8), -1)
        return pos if pos >= 0 and self._data[pos + 8 : pos + 10] == b"= " else -1

    def __contains__(self, key: str) -> bool:
        return self._find(key) >= 0

    def __getitem__(self, key: str) -> object:
        try:
            return self._cache[key]
        except KeyError:
            pos = self._find(key)
            if pos < 0:
                raise KeyError(key) from None
            card = self._data[pos + 10 : pos + CARD].decode("ascii", errors="replace")
            value = self._cache[key] = _parse_value(card)
            return value

    def get(self, key: str, default: object = None) -> object:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return [k.decode("ascii", errors="replace").rstrip()
                for k, pos in sorted(self._index.items(), key=lambda kv: kv[1])
                if self._data[pos + 8 : pos + 10] == b"= "]


@dataclass(frozen=True, slots=True)
class HDU:
    header: Header
    offset: int  # where the data starts in the buffer
    nbytes: int  # data size without padding
    start: int = 0  # where the header starts

    @property
    def is_table(self) -> bool:
        return self.header.get("XTENSION") == "BINTABLE"

    @property
    def is_empty(self) -> bool:
        return self.nbytes == 0


class FitsBytes:
    """The HDUs of a FITS file held in memory, parsed lazily in order."""

    def __init__(self, data: bytes) -> None:
        if data[:9] != b"SIMPLE  =":
            what = "empty file" if not data else f"starts with {data[:20]!r}"
            raise FitsError("not-fits", f"not a FITS file: {what}")
        self.data = data
        self._hdus: list[HDU] = []
        self._next = 0  # buffer offset of the next unparsed HDU

    def _parse_next(self) -> HDU | None:
        start, data = self._next, self.data
        if start >= len(data) or data[start : start + 8] not in (b"SIMPLE  ", b"XTENSION"):
            return None
        pos = data.find(_END, start)
        while pos >= 0 and (pos - start) % CARD:
            pos = data.find(_END, pos + 1)
        if pos < 0:
            raise FitsError("truncated", f"header of HDU {len(self._hdus)} has no END card")
        header = Header(data, start, pos)
        offset = start + -(-(pos + CARD - start) // BLOCK) * BLOCK
        nbytes = _data_size(header)
        if offset + nbytes > len(data):
            raise FitsError(
                "truncated",
                f"HDU {len(self._hdus)} needs {nbytes} data bytes, file has {len(data) - offset}",
            )
        hdu = HDU(header, offset, nbytes, start)
        self._hdus.append(hdu)
        self._next = offset + -(-nbytes // BLOCK) * BLOCK
        return hdu

    def hdu(self, index: int) -> HDU | None:
        """The HDU at ``index``, or None when the file has fewer."""
        while len(self._hdus) <= index:
            if self._parse_next() is None:
                return None
        return self._hdus[index]

    def check_structure(self) -> None:
        """Raise ``FitsError("damaged", ...)`` unless the file is sound FITS throughout: the
        primary says SIMPLE = T, every header is printable ASCII ending in END, every HDU's
        data fits, and nothing but padding follows the last HDU. Checked before a file goes to
        a general FITS library (astropy can loop for minutes on a damaged header)."""
        i = 0
        while self.hdu(i) is not None:
            i += 1
        if self.hdu(0).header.get("SIMPLE") is not True:
            raise FitsError("damaged", "the primary header does not say SIMPLE = T")
        for k, hdu in enumerate(self._hdus):
            if _NOT_PRINTABLE.search(self.data, hdu.start, hdu.offset):
                raise FitsError("damaged", f"header of HDU {k} has characters that are not "
                                           "printable ASCII")
        rest = self.data[self._next :]
        if rest.strip(b"\0 "):
            raise FitsError("damaged", f"{len(rest)} bytes after HDU {i - 1} are not an HDU")

    def find(self, extname: str) -> HDU | None:
        """The first extension whose EXTNAME is ``extname`` (case-insensitive)."""
        want, i = extname.upper(), 1
        while (hdu := self.hdu(i)) is not None:
            if str(hdu.header.get("EXTNAME", "")).upper() == want:
                return hdu
            i += 1
        return None

    def extnames(self) -> list[str]:
        """The EXTNAME of every extension, in order ("" where it has none)."""
        names, i = [], 1
        while (hdu := self.hdu(i)) is not None:
            names.append(str(hdu.header.get("EXTNAME", "")).strip())
            i += 1
        return names

    def image(self, hdu: HDU) -> np.ndarray:
        """The image of ``hdu`` as an array (big-endian; scaled to float when BSCALE/BZERO)."""
        h = hdu.header
        bitpix = h.get("BITPIX")
        dtype = _IMAGE_DTYPES.get(bitpix)  # type: ignore[arg-type]
        if dtype is None:
            raise FitsError("unknown-layout", f"BITPIX = {bitpix!r} is not valid FITS")
        shape = _axes(h)
        if not shape:
            raise FitsError("empty", "HDU has no data array (NAXIS = 0)")
        arr = np.frombuffer(self.data, dtype=dtype, count=math.prod(shape), offset=hdu.offset)
        arr = arr.reshape(shape[::-1])
        scale, zero = h.get("BSCALE", 1), h.get("BZERO", 0)
        if scale != 1 or zero != 0:
            arr = arr * np.float64(scale) + np.float64(zero)
        return arr

    def table(self, hdu: HDU) -> np.ndarray:
        """The rows of a binary table as a structured array (big-endian fields)."""
        h = hdu.header
        if not hdu.is_table:
            raise FitsError("unknown-layout", "HDU is not a binary table")
        fields, scales = [], {}
        for i in range(1, _int(h, "TFIELDS", 0) + 1):
            name = str(h.get(f"TTYPE{i}", f"col{i}"))
            form = str(h.get(f"TFORM{i}", "")).strip()
            match = _TFORM.match(form)
            if match is None:
                raise FitsError("unknown-layout", f"column {name} has TFORM {form!r}")
            repeat = int(match[1]) if match[1] else 1
            code = match[2]
            if code == "A":
                fields.append((name, f"S{repeat}"))
                continue
            if code not in _TABLE_DTYPES:
                raise Unsupported(f"column {name} has TFORM {form!r}")
            shape = _tdim(h.get(f"TDIM{i}"), repeat, name)
            fields.append((name, _TABLE_DTYPES[code], shape) if shape != (1,) else
                          (name, _TABLE_DTYPES[code]))
            scale, zero = h.get(f"TSCAL{i}", 1), h.get(f"TZERO{i}", 0)
            if scale != 1 or zero != 0:
                scales[name] = (scale, zero)
        dtype = np.dtype(fields)
        width, rows = _int(h, "NAXIS1", 0), _int(h, "NAXIS2", 0)
        if dtype.itemsize != width:
            raise FitsError("unknown-layout", f"row width {width} != columns' {dtype.itemsize}")
        table = np.frombuffer(self.data, dtype=dtype, count=rows, offset=hdu.offset)
        if scales:
            table = _apply_scales(table, scales)
        return table


def _tdim(value, repeat: int, name: str) -> tuple[int, ...]:
    """The shape of a table cell: TDIMn = '(a,b,...)' (FITS order, first axis fastest), or
    ``(repeat,)`` without one."""
    if value is None:
        return (repeat,)
    try:
        axes = tuple(int(a) for a in str(value).strip().strip("()").split(","))
    except ValueError:
        raise FitsError("unknown-layout", f"column {name} has TDIM {value!r}") from None
    if int(np.prod(axes)) != repeat or min(axes) < 1:
        raise FitsError("unknown-layout", f"column {name}: TDIM {value!r} does not hold "
                                          f"{repeat} elements")
    return axes[::-1]


def _int(h: Header, key: str, default: int | None = None) -> int:
    """An integer keyword that must be >= 0 (axes, counts)."""
    value = h.get(key, default)
    if value is None:
        raise FitsError("missing-keyword", f"no {key}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FitsError("bad-keyword", f"{key} = {value!r}, not a count")
    return value


def _axes(h: Header) -> tuple[int, ...]:
    naxis = _int(h, "NAXIS")
    if naxis > 999:
        raise FitsError("bad-keyword", f"NAXIS = {naxis}")
    return tuple(_int(h, f"NAXIS{i}") for i in range(1, naxis + 1))


def _data_size(h: Header) -> int:
    """Data bytes of an HDU (FITS Standard 4.0, eq. 2 and 3), without padding."""
    axes = _axes(h)
    if not axes:
        return 0
    bitpix = h.get("BITPIX")
    if bitpix not in _IMAGE_DTYPES:
        raise FitsError("unknown-layout", f"BITPIX = {bitpix!r} is not valid FITS")
    count = math.prod(axes)  # Python integers: no overflow whatever NAXISn say
    if h.get("SIMPLE") is True and axes[0] == 0:  # random groups: not a spectrum layout
        raise Unsupported("random-groups primary HDU")
    pcount, gcount = _int(h, "PCOUNT", 0), _int(h, "GCOUNT", 1)
    return abs(int(bitpix)) // 8 * gcount * (pcount + count)  # type: ignore[arg-type]


def _apply_scales(table: np.ndarray, scales: dict[str, tuple[float, float]]) -> np.ndarray:
    names = table.dtype.names or ()
    out_fields = []
    for name in names:
        base = table.dtype[name]
        if name in scales:
            out_fields.append((name, np.float64, base.shape) if base.shape else (name, np.float64))
        else:
            out_fields.append((name, base.base, base.shape) if base.shape else (name, base))
    out = np.empty(table.shape, dtype=out_fields)
    for name in names:
        if name in scales:
            scale, zero = scales[name]
            out[name] = table[name] * np.float64(scale) + np.float64(zero)
        else:
            out[name] = table[name]
    return out
