"""The byte-level FITS parser agrees with astropy, value for value."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits

from specscout.spectra.readers.fitsbytes import FitsBytes, FitsError, load_bytes


def _real_files(shared_data):
    files = sorted(p for p in shared_data.rglob("*.fits*") if "miles" not in p.parts)
    assert len(files) > 200
    return files


def test_every_real_header_and_array_matches_astropy(shared_data):
    for path in _real_files(shared_data):
        ours = FitsBytes(load_bytes(path))
        with fits.open(path) as hdul:
            for i, theirs in enumerate(hdul):
                hdu = ours.hdu(i)
                assert hdu is not None, path
                seen = set()
                for card in theirs.header.cards:
                    key = card.keyword
                    if key in seen or key in ("", "COMMENT", "HISTORY"):
                        continue
                    seen.add(key)  # the first occurrence counts, as for astropy's lookups
                    expected = None if card.value is fits.card.UNDEFINED else card.value
                    if isinstance(expected, float):
                        assert hdu.header[key] == pytest.approx(expected), (path, key)
                    else:
                        assert hdu.header[key] == expected, (path, key)
                if theirs.data is None:
                    assert hdu.is_empty
                elif hdu.is_table:
                    table = ours.table(hdu)
                    for name in theirs.columns.names:
                        ours_col = table[name]
                        if ours_col.dtype.kind == "S":  # astropy decodes, drops blank padding
                            ours_col = np.char.decode(np.char.rstrip(ours_col, b" "), "ascii")
                        np.testing.assert_array_equal(ours_col, theirs.data[name])
                else:
                    np.testing.assert_array_equal(ours.image(hdu), theirs.data)
            assert ours.hdu(len(hdul)) is None


def _build(tmp_path, hdus) -> bytes:
    path = tmp_path / "x.fits"
    fits.HDUList(hdus).writeto(path)
    return path.read_bytes()


def test_values_of_every_kind(tmp_path):
    h = fits.Header()
    h["S"] = "it''s"
    h["S2"] = "O'Brien  "
    h["I"] = -42
    h["F"] = 1.5e-7
    h["B"] = False
    h["BLANK_S"] = ""
    data = _build(tmp_path, [fits.PrimaryHDU(np.arange(6, dtype=np.int16).reshape(2, 3),
                                            header=h)])
    header = FitsBytes(data).hdu(0).header
    assert header["S"] == "it''s"
    assert header["S2"] == "O'Brien"
    assert header["I"] == -42
    assert header["F"] == pytest.approx(1.5e-7)
    assert header["B"] is False
    assert header["BLANK_S"] == ""
    assert header.get("MISSING", "x") == "x"
    assert "I" in header and "MISSING" not in header
    assert header.keys()[:3] == ["SIMPLE", "BITPIX", "NAXIS"]


def test_exponent_with_d():
    card = "SIMPLE  =                    T".ljust(80) + "BITPIX  =                    8".ljust(80)
    card += "NAXIS   =                    0".ljust(80)
    card += "X       =              1.25D+2 / comment".ljust(80)
    card += "END".ljust(80)
    data = card.encode().ljust(2880, b" ")
    assert FitsBytes(data).hdu(0).header["X"] == 125.0


def _with_cards(data: bytes, cards: list[str]) -> bytes:
    """Add cards to the header of the last HDU, in the room before its END card."""
    end = b"END".ljust(80)
    pos = data.rfind(end, 0, data.rfind(b"XTENSION") + 2880 * 4)
    added = b"".join(c.encode().ljust(80) for c in cards)
    return data[:pos] + added + end + data[pos + 80 + len(added):]


def test_scaled_image_and_table(tmp_path):
    img = fits.PrimaryHDU(np.array([1, 2, 3], dtype=np.int16))
    img.header["BSCALE"] = 0.5
    img.header["BZERO"] = 10.0
    col = fits.Column(name="V", format="3J", array=np.array([[1, 2, 3]], dtype=np.int32))
    name = fits.Column(name="NAME", format="8A", array=np.array(["vega"]))
    table = fits.BinTableHDU.from_columns([col, name], name="T")
    data = _with_cards(_build(tmp_path, [img, table]),
                       ["TSCAL1  =                  2.0", "TZERO1  =                  1.0"])
    ours = FitsBytes(data)
    np.testing.assert_allclose(ours.image(ours.hdu(0)), [10.5, 11.0, 11.5])
    t = ours.table(ours.find("t"))
    np.testing.assert_allclose(t["V"][0], [3.0, 5.0, 7.0])
    assert t["NAME"][0] == b"vega"
    (tmp_path / "scaled.fits").write_bytes(data)  # astropy reads the same
    with fits.open(tmp_path / "scaled.fits") as hdul:
        np.testing.assert_allclose(hdul[1].data["V"][0], [3.0, 5.0, 7.0])


def test_variable_length_columns_are_unsupported(tmp_path):
    col = fits.Column(name="V", format="PE()", array=[np.array([1.0, 2.0], np.float32)])
    ours = FitsBytes(_build(tmp_path, [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col])]))
    with pytest.raises(FitsError, match="TFORM"):
        ours.table(ours.hdu(1))


@pytest.mark.parametrize("data, reason", [
    (b"", "not-fits"),
    (b"hello world\n", "not-fits"),
    (b"SIMPLE  =                    T".ljust(2880), "truncated"),
])
def test_broken_bytes(data, reason):
    with pytest.raises(FitsError) as info:
        FitsBytes(data).hdu(0)
    assert info.value.reason == reason


def test_gzip_is_transparent(tmp_path):
    raw = _build(tmp_path, [fits.PrimaryHDU(np.arange(10.0))])
    gz = tmp_path / "x.fits.gz"
    gz.write_bytes(gzip.compress(raw))
    assert load_bytes(gz) == raw
    two = tmp_path / "two.fits.gz"  # a multi-member gzip file
    two.write_bytes(gzip.compress(raw[:2880]) + gzip.compress(raw[2880:]))
    assert load_bytes(two) == raw


def test_written_hdus_are_valid_fits_for_astropy(tmp_path):
    from specscout.spectra.fitswrite import image_hdu, table_hdu

    cards = [("S", "it's", "a quote"), ("EMPTY", "", ""), ("I", -7, ""), ("F", 1.5e-12, ""),
             ("F2", 3.0, ""), ("B", False, ""), ("LONGCOM", 1, "x" * 100)]
    data = image_hdu(np.arange(6, dtype=np.float32).reshape(2, 3), cards)
    data += table_hdu({"A": np.arange(4, dtype=np.float64), "B": np.ones(4, np.int32)},
                      [("EXTNAME", "T", "")])
    path = tmp_path / "w.fits"
    path.write_bytes(data)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        h = hdul[0].header
        assert (h["S"], h["EMPTY"], h["I"], h["F"], h["F2"], h["B"]) == (
            "it's", "", -7, 1.5e-12, 3.0, False)
        np.testing.assert_array_equal(hdul[0].data, np.arange(6).reshape(2, 3))
        np.testing.assert_array_equal(hdul["T"].data["A"][0], np.arange(4))
        np.testing.assert_array_equal(hdul["T"].data["B"][0], np.ones(4))
    ours = FitsBytes(data)
    assert ours.hdu(0).header["S"] == "it's"
