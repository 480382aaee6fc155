"""specscout: find rare objects in survey archives of spectra by active deep learning.

The package follows the data: ``spectra`` (files -> preprocessed vectors) -> ``archive`` (the
project and its stores, ingest on Dask) -> ``simulate`` -> ``labels`` -> ``learn`` (train,
score, query, iterate) -> ``catalogue`` (candidates, audit, report, SAMP) -> ``web`` -> ``cli``.
The public API below is importable from here; each name is loaded when first used, so that
``import specscout`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "SpecscoutError": "specscout.errors",
    "ReadError": "specscout.errors",
    "Spectrum": "specscout.spectra.spectrum",
    "Meta": "specscout.spectra.spectrum",
    "Grid": "specscout.spectra.grid",
    "read": "specscout.spectra.readers",
    "read_all": "specscout.spectra.readers",
    "PreprocessConfig": "specscout.spectra.preprocess",
    "prepare": "specscout.spectra.preprocess",
    "Project": "specscout.archive.project",
    "ProjectConfig": "specscout.archive.project",
    "Store": "specscout.archive.store",
    "ingest": "specscout.archive.ingest",
    "SurveyConfig": "specscout.simulate",
    "simulate_survey": "specscout.simulate",
    "simulate_labelled": "specscout.simulate",
    "LabelStore": "specscout.labels",
    "label_store": "specscout.labels",
    "TrainConfig": "specscout.learn.train",
    "train_step": "specscout.learn.iterate",
    "score_step": "specscout.learn.iterate",
    "query_step": "specscout.learn.iterate",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'specscout' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
