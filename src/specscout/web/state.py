"""What the app's endpoints share: its configuration, and the state over a project (the
label store, the pool, the latest queue batch and audit draw, caches kept up to date)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from fastapi import HTTPException

from specscout.archive.project import Project
from specscout.catalogue.live import LiveCandidates
from specscout.catalogue.samp import SampLink
from specscout.errors import SpecscoutError
from specscout.labels import LabelStore, label_store
from specscout.labels import _identity as file_identity
from specscout.labels.queue import SELECTION
from specscout.labels.store import agreed
from specscout.learn.iterations import iteration_path
from specscout.web.lines import Lines
from specscout.web.pool import Bounded, PoolView
from specscout.web.work import Worker

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
#: Labels changed since the candidate list was built, beyond which it is built again.
REBUILD_AFTER = 2000
#: Tables sent to SAMP tools that the app keeps serving, the latest first.
SENT_TABLES = 64
#: Label rows read again below the newest one seen, on a database server: there a label with
#: a lower id can commit after one with a higher id (SQLite commits one writer at a time).
REREAD = 256
#: Candidate lists kept, one per threshold (taken to 0.01) of the latest iteration, pool and
#: audit draw (lists of an earlier one are dropped).
CANDIDATE_LISTS = 4
#: The candidate pages' threshold unless they ask for another (static/app.js asks for it).
DEFAULT_THRESHOLD = 0.5
#: The lowest threshold a page may ask for: below it every spectrum would be a candidate.
MIN_THRESHOLD = 0.05
#: Spectra of the queue read ahead of the one the page shows (:meth:`State.read_ahead`).
READ_AHEAD = 32


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class AppConfig:
    annotator: str = "local"  # who labels through the launch link (or everyone, without auth)
    require_login: bool = False  # no launch link: only users' logins
    allowed_hosts: list[str] | None = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    samp: bool = True
    catalogues: tuple[str, ...] = ()  # reference catalogues the candidates are matched with
    auth: bool = True  # False: open to every local user (loopback only)
    session_hours: float = 12.0
    launch_token: str | None = None  # of the one-time link; made at random when None
    samp_web_port: int | None = 21012  # the annotator's hub (SAMP Web Profile); None: none
    #: Seconds a read (GET) may take before it is answered 503 (its work, bounded by the
    #: limits of each endpoint, ends on its own); writes always finish.
    deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.deadline_s, bool) or not (
                isinstance(self.deadline_s, int | float) and 0 < self.deadline_s <= 3600):
            raise SpecscoutError(f"deadline_s must be a number of seconds in (0, 3600], not "
                                 f"{self.deadline_s!r}")


class Logins:
    """Failed logins per client address: after ``most`` in ``window`` seconds, more are
    refused until the oldest falls out of the window (a token cannot be guessed at speed)."""

    def __init__(self, most: int = 10, window: float = 60.0) -> None:
        self.most, self.window = most, window
        self._failed: Bounded = Bounded(10_000)  # address -> times of its failures
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> list[float]:
        return [t for t in self._failed.get(address, ()) if now - t < self.window]

    def allow(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address, time.monotonic())) < self.most

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._failed[address] = [*self._recent(address, now), now]


class State:
    """Everything the endpoints share."""

    def __init__(self, project: Project, config: AppConfig) -> None:
        self.project = project
        self.config = config
        self.classes = list(project.config.classes)
        self.labels: LabelStore = label_store(project)
        self._label_file = _label_file(self.labels)
        self._label_identity = file_identity(f"sqlite:///{self._label_file}") if (
            self._label_file) else None
        self.pool = PoolView(project)
        self.worker = Worker(project)  # searches, and the start-up's line measurements
        self.given_up: set = set()  # reads answered at their deadline, still at work
        self.logins = Logins()
        # CSRF tokens are HMACs of sessions under a secret of the project's (0600), so that
        # the pages open at a restart keep working
        self.secret = _secret(project)
        self.cookie_id = hashlib.sha256(str(project.path.resolve()).encode()).hexdigest()[:12]
        self.launch_token = (config.launch_token or secrets.token_urlsafe(24)) if (
            config.auth and not config.require_login) else None
        self.samp: SampLink | None = None  # the server's SAMP link, made by the app
        self.sent_tables: dict[str, list[int]] = Bounded(SENT_TABLES)  # SAMP id -> rows
        self._versions: dict[int, str] = Bounded(64)
        self._candidates: dict[tuple, LiveCandidates] = Bounded(CANDIDATE_LISTS)
        self._candidates_lock = threading.Lock()
        self._votes: dict[bool, tuple[int, dict, dict, frozenset[int]]] = {}
        self._reread = 0 if self.labels.engine.dialect.name == "sqlite" else REREAD
        self._items: dict[bool, tuple] = {}
        self._batch_lock = threading.Lock()
        self._blind: tuple[int, frozenset[int]] = (-1, frozenset())
        self._map: tuple | None = None
        self._neighbours: tuple | None = None
        self._neighbours_lock = threading.Lock()
        self.lines = Lines(project)  # line measurements held
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # held while spectra are read ahead

    def launch(self, token: str, open_session):
        """``open_session()`` if ``token`` is the one-time link's, which then works no more
        (if the session cannot be stored, the link still works); None for another token."""
        with self._lock:
            if self.launch_token is None or not secrets.compare_digest(
                    token.encode(), self.launch_token.encode()):
                return None
            opened = open_session()
            self.launch_token = None
            return opened

    def check_labels(self) -> None:
        """503 when the label database file the app opened has gone or was replaced since:
        a label acknowledged now would be lost."""
        if self._label_file is None:
            return
        now = file_identity(f"sqlite:///{self._label_file}")
        if now != self._label_identity:
            what = "has gone" if now == ("missing",) else "was replaced"
            log.error("the label database %s %s while serving", self._label_file, what)
            raise HTTPException(503, f"the label database {what} while the app was serving: "
                                     f"no label is stored until it is restored and 'specscout "
                                     f"serve' is started again")

    def csrf(self, session: str | None) -> str:
        """The CSRF token of a session (cookie value; None before login)."""
        return hmac.new(self.secret, (session or "").encode(), "sha256").hexdigest()

    def blind(self) -> frozenset[int]:
        """The rows of the latest audit draw: no model output is sent for them."""
        stamp = self.labels.serial("audit_sample")
        if self._blind[0] != stamp:
            self._blind = (stamp, frozenset(s["row"] for s in
                                            self.labels.audit_samples.sample()))
        return self._blind[1]

    def model_version(self, iteration: int | None) -> str | None:
        """"NNNN:<hash of model.pt>": which network was behind a queue or a prediction."""
        if iteration is None:
            return None
        if iteration not in self._versions:
            path = iteration_path(self.project, iteration) / "model.pt"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else ""
            self._versions[iteration] = f"{iteration:04d}:{digest}"
        return self._versions[iteration]

    def items(self, audit: bool) -> tuple[int | None, list[dict]]:
        """(iteration, items) of the latest query batch, or of the latest audit draw. Kept
        until a new batch or draw appears. A spectrum of the latest audit draw is left out of
        the query batch: it is labelled blind, on the audit page, and never trains."""
        iteration, items, _ = self.batch(audit)
        return iteration, items

    def batch(self, audit: bool) -> tuple[int | None, list[dict], dict[int, dict]]:
        """(iteration, items, {row: item}) as :meth:`items`."""
        serials = self.labels.serials()
        stamp = (serials.get("queue", 0), serials.get("audit_sample", 0))
        cached = self._items.get(audit)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        with self._batch_lock:  # made once, whichever request sees the change first
            cached = self._items.get(audit)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            found = self._read_batch(audit)
            self._items[audit] = (stamp, found)
            return found

    def _read_batch(self, audit: bool) -> tuple[int | None, list[dict], dict[int, dict]]:
        if audit:
            sample = self.labels.audit_samples.sample()
            iteration = sample[0]["iteration"] if sample else None
            items = [{"rank": i, "row": s["row"], "id": s["spectrum"]}
                     for i, s in enumerate(sample)]
        else:
            queue, blind = self.labels.queue.batch(), self.blind()
            iteration = queue[0]["iteration"] if queue else None
            items = [{"rank": q["rank"], "row": q["row"], "id": q["spectrum"],
                      "acquisition_score": None if q["strategy"] == SELECTION
                      else q["acquisition_score"]} for q in queue if q["row"] not in blind]
        # A label of the batch takes its spectrum's id from here: checked against the pool
        # once per batch (a queue of another pool's rows is refused, not attached).
        pool = self.pool.pool
        ok = [i for i in items if 0 <= i["row"] < len(pool)]
        for item, pooled in zip(ok, pool.ids([i["row"] for i in ok]), strict=True):
            if item["id"] != pooled:
                log.warning("the %s holds row %d as %r, but the pool has %r there: "
                            "left out", "audit draw" if audit else "query batch",
                            item["row"], item["id"], pooled)
                item["row"] = -1
        items = [i for i in ok if i["row"] >= 0]
        return iteration, items, {i["row"]: i for i in items}

    def read_ahead(self, rows: list[int]) -> None:
        """Read the records and windows of ``rows`` (the spectra the page will ask for next)
        in the background, a part at a time, unless they are in memory or a read is under
        way: a few at a time, so that it never competes long with the requests."""
        rows = [r for r in rows[:READ_AHEAD] if not self.pool.kept(r)]
        if not rows or not self._reading.acquire(blocking=False):
            return

        def read() -> None:
            try:
                self.pool.keep(rows)
            except Exception as exc:  # read one by one then, as they are asked for
                log.warning("could not read the next spectra ahead: %s", exc)
            finally:
                self._reading.release()

        threading.Thread(target=read, daemon=True).start()

    def votes(self, audit: bool) -> dict[int, dict[str, str | None]]:
        """{row: {annotator: latest label}}, caught up with the labels appended since the
        last call. The dict is never changed once returned: a caller may read it while labels
        arrive."""
        return self._caught_up(audit)[1]

    def votes_and_done(self, audit: bool) -> tuple[dict, frozenset[int]]:
        """(:meth:`votes`, the rows someone has labelled: "unsure" is no label), at once."""
        _, votes, _, done = self._caught_up(audit)
        return votes, done

    def votes_seen(self, audit: bool) -> tuple[int, dict[int, dict[str, str | None]]]:
        """(id of the newest label read, :meth:`votes`)."""
        return self._caught_up(audit)[:2]

    def _caught_up(self, audit: bool) -> tuple[int, dict, dict, frozenset[int]]:
        """(id of the newest label read, votes, {id: (row, annotator)} of the labels read
        within the re-read window, done rows), caught up with the database."""
        window = self._reread
        with self._lock:
            last, votes, recent, done = self._votes.get(audit, (0, {}, {}, frozenset()))
            new = [r for r in self.labels.since(max(last - window, 0), audit)
                   if r[0] not in recent]
            if new:
                votes, recent = dict(votes), dict(recent)  # copied, then published whole
                shown: dict[tuple, int] = {}  # (row, annotator) -> id of its label shown
                for label_id, key in recent.items():
                    shown[key] = max(shown.get(key, 0), label_id)
                changed = set()
                for label_id, row, who, label in new:
                    recent[label_id] = (row, who)
                    if label_id > shown.get((row, who), 0):  # not a late commit of an older
                        shown[row, who] = label_id
                        votes[row] = {**votes.get(row, {}), who: label}
                        changed.add(row)
                labelled = {r for r in changed if any(v is not None for v in votes[r].values())}
                done = (done - changed) | labelled
                last = max(last, *(r[0] for r in new))
                recent = {i: k for i, k in recent.items() if i > last - window}
                self._votes[audit] = (last, votes, recent, done)
            return last, votes, recent, done

    def candidates(self, threshold: float) -> tuple[int, LiveCandidates]:
        """(iteration, the candidate list) of the latest scored iteration at ``threshold``
        (taken to 0.01, at least :data:`MIN_THRESHOLD`), brought up to date with the labels."""
        iteration, probs = self.pool.scores()
        if iteration is None:
            raise HTTPException(404, "no scored iteration yet: run 'specscout iterate'")
        threshold = max(round(threshold, 2), MIN_THRESHOLD)
        current = agreed(self.votes(False))
        hidden = self.blind()  # a new audit draw, a new list: hidden rows are left out once
        key = (iteration, threshold, len(self.pool), hidden)
        # a lock of its own: building a list reads the pool, and labels go on meanwhile
        with self._candidates_lock:
            live = self._candidates.get(key)
            # Rebuilt when labels have changed too much since (each page costs the change).
            if live is None or len(live.changed(current)) > REBUILD_AFTER:
                live = LiveCandidates(
                    self.pool.pool, probs, current, names=self.classes, threshold=threshold,
                    targets=range(1, len(self.classes)), references=self.config.catalogues,
                    hidden=hidden)
                for old in [k for k in self._candidates if k[:1] + k[2:] != key[:1] + key[2:]]:
                    del self._candidates[old]  # of an earlier iteration, pool or draw
                self._candidates[key] = live
            return iteration, live

    def map(self) -> dict | None:
        """The map (``specscout map``) of the latest iteration that has one, or None."""
        from specscout.learn.iterations import MAP_FILE, iteration_numbers, load_map

        mapped = [n for n in iteration_numbers(self.project)
                  if (iteration_path(self.project, n) / MAP_FILE).exists()]
        if not mapped:
            return None
        iteration = mapped[-1]
        path = iteration_path(self.project, iteration) / MAP_FILE
        stamp = (iteration, path.stat().st_mtime_ns if path.exists() else None)
        if self._map is None or self._map[0] != stamp:
            self._map = (stamp, load_map(self.project, iteration))
        return self._map[1]

    def neighbours(self) -> tuple:
        """(the labelled pool spectra in the latest scored iteration's features, caught up
        with the labels (:class:`specscout.learn.map.Neighbours`), the current labels); the
        first is None before an iteration."""
        from specscout.learn.iterate import members_of
        from specscout.learn.map import Neighbours

        iteration, _ = self.pool.scores()
        seen, votes = self.votes_seen(False)  # the labels, and the last one read, at once
        current = agreed(votes)
        if iteration is None:
            return None, current
        with self._neighbours_lock:  # its own: embedding takes seconds, others go on
            if self._neighbours is None or self._neighbours[0] != iteration:
                fitted = members_of(iteration_path(self.project, iteration))[0]
                self._neighbours = (iteration, Neighbours(
                    fitted, lambda rows: self.pool.pool.flux(rows), self._ids), -1)
            _, found, added = self._neighbours
            if added != seen:  # embeds only the rows labelled since
                found.add(np.fromiter(current, np.int64, len(current)))
                self._neighbours = (iteration, found, seen)
        return found, current

    def _ids(self, rows: np.ndarray) -> list[str]:
        """The ids of pool ``rows``, in the order given."""
        return self.pool.pool.ids(rows)


def _label_file(labels: LabelStore) -> str | None:
    """The SQLite file of the label store, None for a database server; refused when the
    app could not write labels to it."""
    import os

    url = labels.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = os.path.abspath(url.database)
    folder = os.path.dirname(path)
    # no write bit counts as read-only even where root could write it: it was meant so
    if not (os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)
            and os.stat(path).st_mode & 0o222):
        raise SpecscoutError(f"the label database {path} is read-only here (the file or its "
                             f"folder): the app could not store a label; make both writable "
                             f"(chmod u+w) or serve a copy of the project")
    return path


def _secret(project: Project) -> bytes:
    """The project's secret for the app's tokens: made once, readable by its owner only."""
    import os

    path = project.path / ".web-secret"
    if not path.exists():
        tmp = path.with_name(f".web-secret-{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic; the first of two servers starting at once wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    secret = path.read_bytes()
    if len(secret) != 32:
        raise SpecscoutError(f"{path} is damaged: remove it (open pages will have to reload)")
    return secret
