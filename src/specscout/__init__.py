"""specscout: find rare objects in survey archives of spectra by active deep learning."""

from specscout.errors import ReadError, SpecscoutError
from specscout.grid import Grid
from specscout.readers import read
from specscout.spectrum import Meta, Spectrum

__version__ = "0.1.0"

__all__ = ["Grid", "Meta", "ReadError", "SpecscoutError", "Spectrum", "__version__", "read"]
