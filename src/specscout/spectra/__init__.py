"""Spectra: the in-memory record, the readers of every survey layout, writers, and the
preprocessing that puts any spectrum on the grid the network sees. Pure numpy; knows nothing
of projects or models."""
