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


def test_uncommitted_part_is_ignored_by_readers_and_removed_by_the_writer(tmp_path):
    store = _filled(tmp_path)
    leftover = store.path / "parts" / ".tmp-deadbeef"
    leftover.mkdir()
    reopened = Store.open(store.path)
    assert len(reopened) == 6
    assert leftover.exists()  # a reader never deletes: it may be another writer's part
    with reopened.writer():
        assert not leftover.exists()
    assert len(Store.open(store.path)) == 6


def test_mismatched_commit_and_grid(tmp_path):
    store = _filled(tmp_path)
    with pytest.raises(ValueError, match="pooled records"):
        store.commit(np.zeros((2, 4)), _records(["g"], ["ok"]))
    with pytest.raises(SpecscoutError, match="grid has 5"):
        Store.open_or_create(store.path, points=5)
    with pytest.raises(IndexError):
        store.flux([6])


def test_a_reader_during_commits_sees_whole_parts_only(tmp_path):
    """Readers open and read the store while a writer commits: every state they see is a
    prefix of whole parts, with every spectrum's own values (never zeros), and the writer
    never fails."""
    import threading

    path = tmp_path / "s"
    writer_store = Store.open_or_create(path, points=4)
    parts, size = 40, 50
    errors: list[BaseException] = []
    seen_sizes: list[int] = []
    done = threading.Event()

    def write() -> None:
        try:
            for k in range(parts):
                rows = np.arange(k * size, (k + 1) * size, dtype=np.float32)
                writer_store.commit(np.repeat(rows[:, None] + 1, 4, axis=1),
                                    _records([f"f{r:.0f}" for r in rows], ["ok"] * size))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                store = Store.open(path)
                n = len(store)
                assert n % size == 0, n
                if n:
                    flux = store.flux(np.arange(n))
                    np.testing.assert_array_equal(flux[:, 0], np.arange(n) + 1)
                    assert store.meta(columns=["row"]).num_rows == n
                seen_sizes.append(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(Store.open(path)) == parts * size
    assert len(set(seen_sizes)) > 3, "the reader saw too few states to test anything"


def test_one_writer_at_a_time(tmp_path):
    store = _filled(tmp_path)
    with store.writer(), pytest.raises(SpecscoutError, match=r"is being written by pid \d+"):
        Store.open(store.path).commit(np.zeros((1, 4)), _records(["z"], ["ok"]))
    part = Store.open(store.path).commit(np.zeros((1, 4)), _records(["z"], ["ok"]))
    assert part.first_row == 6


def test_compaction_keeps_rows_and_lookups_and_readers_of_the_old_parts(tmp_path):
    store = _filled(tmp_path)
    before = [store.meta(status=None), store.flux(np.arange(6)), store.find(designation="D0")]
    old = Store.open(store.path)  # a reader that opened the store before the compaction
    with store.writer() as w:
        assert w.compact() == 2
    assert [(p.first_row, p.rows, p.files) for p in store.parts] == [(0, 6, 8)]
    after = [store.meta(status=None), store.flux(np.arange(6)), store.find(designation="D0")]
    assert after[0].equals(before[0]) and after[2].equals(before[2])
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(old.flux([5]), before[1][[5]])  # retired, still there
    assert {f["path"] for f in store.failures().to_pylist()} == {"x", "y"}
    with store.writer(retain_hours=0):  # a later writer removes the retired parts
        pass
    assert len(list((store.path / "parts").iterdir())) == 1


def test_lookups_and_cone_through_the_indexes(tmp_path):
    store = Store.open_or_create(tmp_path / "s", points=2)
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 360, 3000), rng.uniform(-90, 90, 3000)
    ra[:3], dec[:3] = [359.9999, 0.0001, 10.0], [0.0, 0.0, 89.9999]  # wrap-around, a pole
    for start in range(0, 3000, 500):
        recs = [{"path": f"p{i}", "status": "ok", "id": f"spec-{i}", "obsid": 10 * i,
                 "designation": f"LAMOST J{i:06d}", "ra": ra[i], "dec": dec[i], "flags": 0,
                 "reason": "", "detail": ""} for i in range(start, start + 500)]
        store.commit(np.zeros((500, 2)), recs)
    got = store.lookup("obsid", [20, 20, 29999, 30])
    assert got.to_pylist() == [{"value": 20, "row": 2, "id": "spec-2"},  # each value once
                               {"value": 30, "row": 3, "id": "spec-3"}]
    assert store.lookup("designation", ["j000007", "LAMOST J002999"])["row"].to_pylist() == \
        [7, 2999]
    assert store.lookup("id", ["spec-1234", "nope"])["row"].to_pylist() == [1234]
    assert store.lookup("row", ["7", 7, 10**30])["id"].to_pylist() == ["spec-7"]
    with pytest.raises(ValueError, match="not a whole number"):
        store.lookup("obsid", [1.5])
    # The prefix is dropped only before a position: names that end alike stay apart.
    from specscout.archive.index import designation_key

    assert designation_key("LAMOST J063715.90+271356.5") == "J063715.90+271356.5"
    assert designation_key("Mr Jones") != designation_key("Object Jones")
    # Across RA = 0 / 360: both sides of the seam, 0.72" apart.
    assert sorted(r for r, _ in store.cone(0.0, 0.0, 1.0)) == [0, 1]
    assert [r for r, _ in store.cone(200.0, 89.99995, 1.0)] == [2]
    # Every cone agrees with a brute-force search.
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    coords = SkyCoord(ra * u.deg, dec * u.deg)
    for k in range(26):  # the last, of degrees, through coarser index levels
        c, radius = coords[k * 97], rng.uniform(1, 4000) if k < 20 else 3600 * 2 ** (k - 20)
        truth = np.nonzero(coords.separation(c).arcsec <= radius)[0]
        found = store.cone(float(c.ra.deg), float(c.dec.deg), radius)
        assert sorted(r for r, _ in found) == sorted(truth.tolist()), k
        assert [s for _, s in found] == sorted(s for _, s in found)


def test_the_skip_set_stays_a_few_sorted_blocks():
    from specscout.archive.index import HashSet

    rng = np.random.default_rng(0)
    s = HashSet()
    added = []
    for _ in range(1000):  # a thousand committed parts
        h = rng.integers(0, 2**63, 100, dtype=np.uint64)
        s.add(h)
        added.append(h)
    assert len(s) == 100_000 and len(s.blocks) <= 17  # log2(1000) + 1 at most
    everything = np.concatenate(added)
    assert s.contains(everything).all()
    assert not s.contains(rng.integers(0, 2**63, 1000, dtype=np.uint64)).any()
