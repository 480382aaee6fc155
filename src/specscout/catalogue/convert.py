"""A user's list as a HATS catalogue (``specscout catalogue import``): converted once with
hats-import, with a margin cache, then matched fast by :mod:`.references`."""

from __future__ import annotations

import sys
from pathlib import Path

from specscout.catalogue.references import (
    DEC_NAMES,
    RA_NAMES,
    column_named,
    positions,
    quiet_hats,
    read_table,
)
from specscout.errors import SpecscoutError


def import_hats(file: str | Path, out: str | Path, *, margin_arcsec: float = 60.0,
                workers: int | None = None, scheduler: str | None = None,
                progress: bool = False) -> dict:
    """Write the catalogue ``file`` (CSV, VOTable or FITS with RA/Dec) as a HATS catalogue
    collection at ``out`` with a margin cache of ``margin_arcsec`` (hats-import on Dask: a
    local cluster of ``workers``, or the one at ``scheduler``), so that a large list is
    converted once and matched fast afterwards. A CSV with RA/Dec in degrees is read in
    chunks; other files (and sexagesimal positions) are read whole with astropy first.
    ``progress``: hats-import's progress bars."""
    import time

    try:
        import pandas as pd
        from hats_import import CollectionArguments, pipeline_with_client
    except ImportError:
        raise SpecscoutError("making a HATS catalogue needs hats-import "
                             "(pip install 'specscout[hats]')") from None
    from specscout.archive.cluster import dask_client

    quiet_hats()
    path, out = Path(file).resolve(), Path(out).resolve()
    if out.exists():
        raise SpecscoutError(f"{out} exists already: name a new directory")
    if margin_arcsec <= 0:
        raise SpecscoutError(f"the margin must be positive, not {margin_arcsec}")
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}-input.parquet")
    reader = "csv"
    head = None
    if path.name.lower().endswith(".csv"):
        try:
            head = pd.read_csv(path, nrows=100)
        except Exception as exc:
            raise SpecscoutError(f"{path}: cannot read it as CSV ({exc})") from exc
        ra_name = column_named(head.columns, RA_NAMES)
        dec_name = column_named(head.columns, DEC_NAMES)
    if head is None or ra_name is None or dec_name is None or not (
            pd.api.types.is_numeric_dtype(head[ra_name])
            and pd.api.types.is_numeric_dtype(head[dec_name])):
        table = read_table(path)
        ra, dec, ra_name, dec_name = positions(table, path)
        table[ra_name], table[dec_name] = ra, dec  # degrees, whatever they were written in
        for name in table.colnames:  # Parquet takes no masked object columns
            if table[name].dtype.kind == "O":
                table[name] = [str(v) for v in table[name]]
        table.write(staged, format="parquet", overwrite=True)
        reader, inputs = "parquet", [str(staged)]
    else:
        inputs = [str(path)]
    try:
        with dask_client(workers, scheduler) as client:
            args = (CollectionArguments(output_artifact_name=out.name, output_path=out.parent,
                                        progress_bar=progress and sys.stderr.isatty(), resume=False)
                    .catalog(input_file_list=inputs, file_reader=reader, ra_column=ra_name,
                             dec_column=dec_name)
                    .add_margin(margin_threshold=margin_arcsec, is_default=True))
            pipeline_with_client(args, client)
    except Exception as exc:
        raise SpecscoutError(f"{path}: the HATS import failed ({exc})") from exc
    finally:
        staged.unlink(missing_ok=True)
    import hats

    catalog = hats.read_hats(out).main_catalog
    return {"path": out, "rows": int(catalog.catalog_info.total_rows or 0),
            "partitions": len(catalog.get_healpix_pixels()),
            "seconds": time.perf_counter() - start}
