"""The spectra store: append-only parts, stable rows, bounded reads."""

from __future__ import annotations

import numpy as np
import pytest

from specscout.archive.store import Store
from specscout.errors import SpecscoutError


def _records(paths, statuses):
    return [{"path": p, "status": s, "id": p.upper(), "obsid": i, "designation": f"D{i}",
             "flags": 0, "reason": "" if s == "ok" else "bad", "detail": ""}
            for i, (p, s) in enumerate(zip(paths, statuses, strict=True))]


def _filled(tmp_path, dtype="float32"):
    store = Store.open_or_create(tmp_path / "s", points=4, dtype=dtype)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.commit(a, _records(["a", "b", "x", "c"], ["ok", "ok", "failed", "ok"]))
    store.commit(np.empty((0, 4)), _records(["y"], ["flagged"]))
    store.commit(a + 100, _records(["d", "e", "f"], ["ok"] * 3))
    return store


def test_rows_are_stable_and_contiguous(tmp_path):
    store = _filled(tmp_path)
    assert len(store) == 6 and store.files == 8
    reopened = Store.open(tmp_path / "s")
    assert [(p.first_row, p.rows) for p in reopened.parts] == [(0, 3), (3, 0), (3, 3)]
    meta = reopened.meta(columns=["row", "path"]).to_pylist()
    assert [(m["row"], m["path"]) for m in meta] == [(0, "a"), (1, "b"), (2, "c"), (3, "d"),
                                                     (4, "e"), (5, "f")]
    np.testing.assert_array_equal(reopened.flux([5, 0, 3]),
                                  [[108, 109, 110, 111], [0, 1, 2, 3], [100, 101, 102, 103]])


def test_failures_and_lookup(tmp_path):
    store = _filled(tmp_path)
    fails = store.failures().to_pylist()
    assert {(f["path"], f["status"]) for f in fails} == {("x", "failed"), ("y", "flagged")}
    assert store.find(id="E")["row"].to_pylist() == [4]
    # A star observed twice has one designation and two spectra.
    assert store.find(designation="D0")["path"].to_pylist() == ["a", "d"]
    assert store.find(obsid=2)["path"].to_pylist() == ["f"]  # obsid 2 of "x" failed
    assert len(store.seen()) == 8


def test_streaming_and_dask(tmp_path):
    store = _filled(tmp_path)
    blocks = list(store.iter_chunks(chunk_rows=2))
    assert [len(r) for r, _ in blocks] == [2, 1, 2, 1]
    np.testing.assert_array_equal(np.concatenate([r for r, _ in blocks]), np.arange(6))
    arr = store.to_dask()
    assert arr.shape == (6, 4)
    np.testing.assert_array_equal(arr.compute(), np.concatenate([f for _, f in blocks]))


def test_float16_option(tmp_path):
    store = _filled(tmp_path, dtype="float16")
    assert store.flux([0]).dtype == np.float16


def test_uncommitted_part_is_ignored(tmp_path):
    store = _filled(tmp_path)
    (store.path / "parts" / ".tmp-deadbeef").mkdir()
    reopened = Store.open(store.path)
    assert len(reopened) == 6
    assert not (store.path / "parts" / ".tmp-deadbeef").exists()


def test_mismatched_commit_and_grid(tmp_path):
    store = _filled(tmp_path)
    with pytest.raises(ValueError, match="pooled records"):
        store.commit(np.zeros((2, 4)), _records(["g"], ["ok"]))
    with pytest.raises(SpecscoutError, match="grid has 5"):
        Store.open_or_create(store.path, points=5)
    with pytest.raises(IndexError):
        store.flux([6])
