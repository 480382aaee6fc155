"""The command line, end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys

from specscout.cli import main
from specscout.spectra.writers import write_lamost, write_ondrejov_raw

from conftest import lamost_meta, synthetic_pair


def test_console_script_is_installed():
    exe = shutil.which("specscout") or sys.executable
    args = [exe, "--version"] if exe != sys.executable else [exe, "-m", "specscout.cli",
                                                            "--version"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("specscout ")


def test_inspect_real_files(shared_data, capsys):
    files = [shared_data / "lamost" / "dr9" / "spec-55859-F5902_sp01-013_dr9.fits.gz",
             shared_data / "ondrejov" / "gamma-cas.fits"]
    assert main(["inspect", *map(str, files), "--degrade-to", "1800"]) == 0
    out = capsys.readouterr().out
    assert "lamost-coadd (LAMOST LRS, DR9)" in out and "obsid 101013" in out
    assert "ondrejov-votable" in out and "quality: ok" in out


def test_inspect_reports_bad_files_and_goes_on(tmp_path, capsys):
    bad = tmp_path / "broken.fits.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    flux, ivar = synthetic_pair(0)[1].flux, synthetic_pair(0)[1].ivar
    good = write_lamost(tmp_path / "spec-2.fits", flux, ivar, lamost_meta())
    assert main(["inspect", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED  {bad}: bad-gzip" in out
    assert "lamost-image" in out


def test_calibrate_command(tmp_path, capsys):
    source, target = synthetic_pair(1)
    write_ondrejov_raw(tmp_path / "ua000001.fits", source.wavelength, source.flux, obj="S")
    write_lamost(tmp_path / "spec-1.fits", target.flux, target.ivar, lamost_meta())
    (tmp_path / "pairs.csv").write_text("ua000001.fits,spec-1.fits,absorption\n")
    assert main(["calibrate", str(tmp_path / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    assert "fitted resolving power R = " in out and "median normalised RMS residual" in out


def test_errors_exit_2(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
