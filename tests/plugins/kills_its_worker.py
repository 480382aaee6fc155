"""Loaded into Dask workers by the tests (``distributed.worker.preload``): a reader for files
whose primary header has ``KILLME = T``, which kills the worker process reading them, as a
segfault in a library or the kernel's out-of-memory killer would."""

import os
import signal

from specscout.spectra.readers import register


@register("kills-its-worker", lambda fits: fits.hdu(0).header.get("KILLME") is True,
          priority=1000)
def read(fits, path):
    os.kill(os.getpid(), signal.SIGKILL)
