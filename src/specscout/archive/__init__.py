"""The archive on disk: a project, its stores of preprocessed spectra, ingest of files on Dask,
and the Dask client bulk work runs on."""
