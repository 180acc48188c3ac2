"""Polls, runs and reconciles interleaved with feed changes, against the simulator over
HTTP and a real store (SQLite): whatever the order, the watermark never moves backward
and never passes a change the store lacks, and a last poll or run plus a reconcile makes
the store equal to the feed.

Each example starts a small feed (80 listings, 8 members), syncs it once, and applies a
list of operations Hypothesis chooses:

- `Change`: records changed (the simulator's `mutate`, fresh timestamps), removed from
  the feed, new ones added, removed ones back (fresh timestamps too);
- `Late`: changes no incremental sync can see, stamped at or below the watermark (new
  records stamped in the past, late commits, records back with the version they left
  with). They are the reconcile's by design: the per-step invariant leaves out each such
  (key, version) until the resource's next reconcile;
- `Poll` with a small `$top` and page budget (so TOO_MANY happens), `Run` (`sync --local`'s
  plan, windows, finalize, with small pages) and `Reconcile` (census in small pages or
  one), each optionally with something happening `During` it, deterministically: after
  the operation's client has fetched its Nth page, a `Change` of the feed, or an
  `Attempt` at a poll, run or reconcile of the same resource, which must find it busy
  and change nothing.

After every operation: for every record of the feed stamped at or below the watermark
(the `Late` ones aside), the store holds it, live, at that version or newer; and the
watermark has not moved backward. Without a `During`, the operation's figures are also
checked against the feed: a poll fetches exactly the records past the watermark (or its
budget of them, and then leaves the watermark), a run fetches exactly those, and a
reconcile leaves the store equal to the feed.

Not generated: a change committed during an operation with a timestamp already below
that operation's upper bound (a Trestle clock behind ours, a late commit). A watermark
can pass such a change by design; SYNC_SETTLE_SECONDS is the guard, and reconcile the
repair. Changes landing during an operation here are stamped by the simulator's clock,
after the operation read its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import canonical, create_database, settings_for
from tests.redis_space import redis_url
from trestle_tasks.cli.local import local_services, sync_local
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.sync_log import SyncRun
from trestle_tasks.sync.local import run_locally
from trestle_tasks.sync.plan import Skipped
from trestle_tasks.sync.poll import BUSY, CHANGED, IDLE, TOO_MANY, PollOutcome, poll_resource
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.trestle.client import Page, SlimPage, TrestleClient
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

pytestmark = pytest.mark.integration

RESOURCES = ("Property", "Member")
KEY_FIELDS = {"Property": "ListingKey", "Member": "MemberKey"}
# A field a late commit changes, per resource.
REMARK_FIELDS = {"Property": "PublicRemarks", "Member": "MemberNickname"}
LISTINGS = 80  # members: 8
RUN_PAGE_SIZE = 3  # a run walks its window in several pages, so a change can land between
DAY = 864_000_000_000  # ticks
# Kept below reconcile's 50 % guard against mass deletion: a census that would delete
# more is refused by design, which is not what this test is about.
DELETABLE_FRACTION = 0.4


# --- operations ------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """Fresh-timestamped changes: `modify` changed and `delete` removed (the simulator's
    mutate, chosen by `seed`), `insert` new records, `back` removed ones back."""
    resource: str
    modify: int = 0
    delete: int = 0
    insert: int = 0
    back: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Late:
    """Changes stamped `below` ticks under the watermark (0: at it): `arrive` new records,
    `change` existing ones, `back` removed ones with the version they left with."""
    resource: str
    arrive: int = 0
    change: int = 0
    back: int = 0
    below: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Landing:
    """A `Change` of the resource an operation holds, landing while it runs."""
    modify: int = 0
    delete: int = 0
    insert: int = 0
    back: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Attempt:
    """A poll, run or reconcile of the resource an operation holds."""
    kind: str


@dataclass(frozen=True)
class During:
    after_pages: int
    action: Landing | Attempt


@dataclass(frozen=True)
class Poll:
    resource: str
    top: int
    max_pages: int
    during: During | None = None


@dataclass(frozen=True)
class Run:
    resource: str
    during: During | None = None


@dataclass(frozen=True)
class Reconcile:
    resource: str
    census_page_size: int
    during: During | None = None


Operation = Change | Late | Poll | Run | Reconcile

resources = st.sampled_from(RESOURCES)
changes = st.builds(Change, resource=resources, modify=st.integers(0, 6),
                    delete=st.integers(0, 3), insert=st.integers(0, 3),
                    back=st.integers(0, 2), seed=st.integers(0, 2**16))
lates = st.builds(Late, resource=resources, arrive=st.integers(0, 3),
                  change=st.integers(0, 3), back=st.integers(0, 2),
                  below=st.sampled_from([0, 1, 10_000_000, 30 * DAY]),
                  seed=st.integers(0, 2**16))
# What lands during an operation on its resource: a change that stamps something (a
# fresh version past the operation's upper bound, a record gone), or an attempt.
landing = st.builds(Landing, modify=st.integers(1, 4),
                    delete=st.integers(0, 1), insert=st.integers(0, 2),
                    back=st.integers(0, 1), seed=st.integers(0, 2**16))
attempts = st.builds(Attempt, kind=st.sampled_from(["poll", "run", "reconcile"]))
durings = st.one_of(st.none(), st.builds(During, after_pages=st.integers(1, 2),
                                          action=st.one_of(landing, landing, attempts)))
polls = st.builds(Poll, resource=resources, top=st.integers(1, 4),
                  max_pages=st.integers(1, 3), during=durings)
runs = st.builds(Run, resource=resources, during=durings)
reconciles = st.builds(Reconcile, resource=resources,
                       census_page_size=st.sampled_from([5, 30, 300_000]), during=durings)
operations = st.lists(st.one_of(changes, lates, polls, runs, reconciles), min_size=2,
                      max_size=12)
# How each resource is brought up to date at the end, before the last reconcile.
finishes = st.tuples(*(st.sampled_from(["poll", "run"]) for _ in RESOURCES))


# --- the hook: something happens after the Nth page an operation fetched ---------------

class Hook:
    """Fires `action` once, right after the `after_pages`th page any of the operation's
    clients fetched (the run walks its one window in one thread: deterministic)."""

    def __init__(self, after_pages: int, action: Callable[[], None] | None) -> None:
        self.after_pages = after_pages
        self.action = action
        self.pages = 0
        self.fired = False
        self._lock = threading.Lock()

    def page_done(self) -> None:
        with self._lock:
            self.pages += 1
            fire = (self.action is not None and not self.fired
                    and self.pages == self.after_pages)
            self.fired = self.fired or fire
        if fire and self.action is not None:
            self.action()


class HookedClient:
    """A TrestleClient whose every page is followed by the hook."""

    def __init__(self, inner: TrestleClient, hook: Hook) -> None:
        self._inner = inner
        self._hook = hook

    def get_page(self, target: Any) -> Page:
        page = self._inner.get_page(target)
        self._hook.page_done()
        return page

    def get_slim_page(self, target: Any, fields: tuple[str, ...]) -> SlimPage:
        page = self._inner.get_slim_page(target, fields)  # a census page
        self._hook.page_done()
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def hooked(inner: TrestleClient, hook: Hook) -> TrestleClient:
    return cast(TrestleClient, HookedClient(inner, hook))


# --- the replica: one feed, one store, and what the test knows about them --------------

def ticks_of(record: dict[str, Any]) -> int:
    return ODataTimestamp.parse(record["ModificationTimestamp"]).ticks


class Replica:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sim = start_simulator(records=LISTINGS, seed=2718)
        self.url, _ = create_database("sqlite", folder)
        self.settings = settings_for(
            self.sim, self.url, LOCK_DIR=str(folder), REDIS_URL=redis_url(),
            TRESTLE_RESOURCES=",".join(RESOURCES), TRESTLE_PAGE_SIZE=str(RUN_PAGE_SIZE),
            TRESTLE_RETRY_BUDGET="0")
        self.runtime = LocalRuntime(self.settings)
        self.store = self.runtime.store
        # (key, ticks) of each version stamped at or below the watermark when it was
        # made: only a reconcile finds those.
        self.late: dict[str, set[tuple[str, int]]] = {r: set() for r in RESOURCES}
        self.departed: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RESOURCES}
        self.marks: dict[str, int] = {}
        self.inserted = 0
        self.problems: list[str] = []  # found inside a hook (raising there is swallowed)

    def start(self) -> None:
        # The first load in large pages (the feed's whole history is no interleaving).
        loading = settings_for(self.sim, self.url, LOCK_DIR=str(self.folder),
                               REDIS_URL=redis_url(), TRESTLE_RESOURCES=",".join(RESOURCES),
                               TRESTLE_PAGE_SIZE="1000", TRESTLE_RETRY_BUDGET="0")
        results = sync_local(LocalRuntime(loading), RESOURCES)
        assert [r.run.status if r.run else None for r in results] == \
            ["succeeded"] * len(RESOURCES)
        self.marks = {r: self.mark(r) for r in RESOURCES}

    def close(self) -> Thread:
        """Free the database; the simulator stops in the background (its server waits
        out a half-second poll), joined by the caller when convenient."""
        stopping = Thread(target=self.sim.stop, daemon=True)
        stopping.start()
        for key, value in list(factory._per_process.items()):
            if self.url in key[1]:
                factory._per_process.pop(key, None)
                if hasattr(value, "dispose"):
                    value.dispose()
        return stopping

    # -- reading both sides

    def mark(self, resource: str) -> int:
        mark = self.store.sync_log.read_watermark(resource)
        assert mark is not None
        return mark.ticks

    def feed(self, resource: str) -> dict[str, dict[str, Any]]:
        return {r[KEY_FIELDS[resource]]: r for r in self.sim.records(resource)}

    def feed_versions(self, resource: str) -> dict[str, int]:
        return {k: ticks_of(r) for k, r in self.feed(resource).items()}

    def stored(self, resource: str) -> dict[str, tuple[int | None, bool]]:
        return {k: (t, deleted) for k, t, deleted in self.store.stored_versions(resource)}

    def pending(self, resource: str) -> int:
        """Records of the feed past the watermark: what a poll or run has to fetch."""
        mark = self.mark(resource)
        return sum(1 for t in self.feed_versions(resource).values() if t > mark)

    # -- the invariants

    def check(self, after: object) -> None:
        assert not self.problems, (after, self.problems)
        for resource in RESOURCES:
            mark = self.mark(resource)
            assert mark >= self.marks[resource], (
                f"after {after}: the {resource} watermark moved backward, "
                f"{ODataTimestamp(self.marks[resource]).to_odata()} -> "
                f"{ODataTimestamp(mark).to_odata()}")
            self.marks[resource] = mark
            stored = self.stored(resource)
            late = self.late[resource]
            unstored = []
            for key, ticks in sorted(self.feed_versions(resource).items()):
                if ticks > mark or (key, ticks) in late:
                    continue
                held = stored.get(key)
                if held is None or held[1] or held[0] is None or held[0] < ticks:
                    unstored.append((key, ODataTimestamp(ticks).to_odata(), held))
            assert not unstored, (
                f"after {after}: the {resource} watermark "
                f"{ODataTimestamp(mark).to_odata()} passed {len(unstored)} change(s) the "
                f"store lacks (key, feed version, stored (ticks, deleted)): {unstored[:5]}")

    def assert_equal(self, resource: str, after: object) -> None:
        key = KEY_FIELDS[resource]
        feed = {r[key]: canonical(r) for r in self.sim.records(resource)}
        stored = {r[key]: canonical(r) for r in self.store.records(resource)}
        differ = sorted(k for k in feed.keys() | stored.keys() if feed.get(k) != stored.get(k))
        assert not differ, (f"after {after}: {len(differ)} {resource} record(s) differ "
                            f"between the store and the feed: {differ[:5]}")
        every = set(self.store.stored_keys(resource, include_deleted=True))
        assert set(self.store.deleted_keys(resource)) == every - feed.keys(), after

    # -- feed changes

    def change(self, change: Change) -> None:
        resource, key_field = change.resource, KEY_FIELDS[change.resource]
        before = self.feed(resource)
        stored = self.stored(resource)
        live = [k for k, (_, deleted) in stored.items() if not deleted]
        gone = sum(1 for k in live if k not in before)
        # A census that would delete more than half the stored records is refused.
        delete = min(change.delete, max(0, int(DELETABLE_FRACTION * len(live)) - gone))
        result = self.sim.mutate(resource, count=change.modify, seed=change.seed,
                                 delete=delete)
        for key in result["deleted"]:
            self.departed[resource][key] = before[key]
        if change.insert:
            template = dict(before[min(before)])
            template.pop("ModificationTimestamp")
            if resource == "Property":
                template.update(PhotosCount=0, PhotosChangeTimestamp=None)
            fresh = []
            for _ in range(change.insert):
                self.inserted += 1
                key = hashlib.sha256(f"{resource}:{self.inserted}".encode()).hexdigest()[:16]
                fresh.append({**template, key_field: key})
            self.sim.upsert(resource, fresh)
        back = sorted(self.departed[resource])[:change.back]
        if back:
            self.sim.upsert(resource, [
                {f: v for f, v in self.departed[resource].pop(k).items()
                 if f != "ModificationTimestamp"} for k in back])

    def late_change(self, late: Late) -> None:
        resource, key_field = late.resource, KEY_FIELDS[late.resource]
        at = self.mark(resource) - late.below
        stamp = ODataTimestamp(at).to_odata()
        before = self.feed(resource)
        made: list[dict[str, Any]] = []
        if late.arrive:
            template = dict(before[max(before)])
            if resource == "Property":
                template.update(PhotosCount=0, PhotosChangeTimestamp=None)
            for _ in range(late.arrive):
                self.inserted += 1
                key = hashlib.sha256(f"{resource}:{self.inserted}".encode()).hexdigest()[:16]
                made.append({**template, key_field: key, "ModificationTimestamp": stamp})
        older = sorted(k for k, r in before.items() if ticks_of(r) < at)
        random.Random(late.seed).shuffle(older)
        made.extend({key_field: k, REMARK_FIELDS[resource]: f"late commit {late.seed}",
                     "ModificationTimestamp": stamp} for k in older[:late.change])
        if made:
            self.sim.upsert(resource, made)
            self.late[resource].update((r[key_field], at) for r in made)
        back = sorted(self.departed[resource])[:late.back]
        if back:
            returning = [self.departed[resource].pop(k) for k in back]
            self.sim.upsert(resource, returning)
            mark = self.mark(resource)
            self.late[resource].update((r[key_field], ticks_of(r)) for r in returning
                                       if ticks_of(r) <= mark)

    # -- what happens during an operation

    def hook(self, during: During | None, resource: str) -> Hook:
        if during is None:
            return Hook(0, None)
        action = during.action

        def act() -> None:
            try:
                if isinstance(action, Landing):
                    self.change(Change(resource, **dataclasses.asdict(action)))
                else:
                    self.attempt(action.kind, resource)
            except Exception as error:  # the operation would swallow it: reported after
                self.problems.append(f"{during}: {type(error).__name__}: {error}")

        return Hook(during.after_pages, act)

    def attempt(self, kind: str, resource: str) -> None:
        """While an operation holds `resource`: another one must find it busy."""
        before = self.mark(resource)
        if kind == "poll":
            outcome = self.poll_once(resource, self.runtime.trestle_client(), top=50,
                                     max_pages=3)
            if outcome.status != BUSY:
                self.problems.append(f"a poll of a held {resource} was {outcome.status}")
        elif kind == "run":
            result = sync_local(self.runtime, [resource])[0]
            if result.skipped is None:
                self.problems.append(f"a run of a held {resource} was not skipped")
        else:
            run = self.reconcile_once(resource, self.runtime.trestle_client(),
                                      census_page_size=300_000)
            if not isinstance(run, Skipped):
                self.problems.append(f"a reconcile of a held {resource} was not skipped")
        if self.mark(resource) != before:
            self.problems.append(f"a {kind} of a held {resource} moved its watermark")

    # -- the operations

    def poll_once(self, resource: str, client: Any, *, top: int,
                  max_pages: int) -> PollOutcome:
        return poll_resource(resource, store=self.store, client=client,
                             lock=self.runtime.run_lock(), log_run_id="poll-interleaving",
                             top=top, max_pages=max_pages)

    def reconcile_once(self, resource: str, client: Any, *,
                       census_page_size: int) -> SyncRun | Skipped:
        return reconcile(resource, store=self.store, client=client,
                         lock=self.runtime.run_lock(), lock_ttl_s=60,
                         synced_resources=self.settings.resources,
                         census_page_size=census_page_size)

    def poll(self, op: Poll) -> PollOutcome:
        resource = op.resource
        before, pending = self.mark(resource), self.pending(resource)
        hook = self.hook(op.during, resource)
        outcome = self.poll_once(resource, hooked(self.runtime.trestle_client(), hook),
                                 top=op.top, max_pages=op.max_pages)
        assert outcome.status in (CHANGED, IDLE, TOO_MANY), (op, outcome)
        event(f"poll: {outcome.status}{' (hook fired)' if hook.fired else ''}")
        after = self.mark(resource)
        if outcome.status == TOO_MANY:
            assert after == before and outcome.watermark_to is None, (op, outcome)
        elif outcome.watermark_to is not None:
            assert after == ODataTimestamp.parse(outcome.watermark_to).ticks > before
        if not hook.fired:
            budget = op.top * op.max_pages
            if pending >= budget:
                assert (outcome.status, outcome.fetched) == (TOO_MANY, budget), \
                    (op, pending, outcome)
            else:
                assert (outcome.status, outcome.fetched) == (
                    CHANGED if pending else IDLE, pending), (op, pending, outcome)
                assert outcome.watermark_to is not None, (op, outcome)
        return outcome

    def run(self, op: Run) -> None:
        resource = op.resource
        before, pending = self.mark(resource), self.pending(resource)
        hook = self.hook(op.during, resource)
        services = dataclasses.replace(
            local_services(self.runtime),
            new_client=lambda: hooked(self.runtime.trestle_client(), hook))
        result = run_locally(self.settings, [resource], services, concurrency=1)[0]
        assert result.run is not None and result.run.status == "succeeded", (op, result)
        assert self.mark(resource) > before, op
        event(f"run: {'fetched' if result.run.records_fetched else 'nothing new'}"
              f"{' (hook fired)' if hook.fired else ''}")
        if not hook.fired:
            assert result.run.records_fetched == pending, (op, pending, result.run)

    def reconcile(self, op: Reconcile) -> None:
        resource = op.resource
        hook = self.hook(op.during, resource)
        run = self.reconcile_once(resource, hooked(self.runtime.trestle_client(), hook),
                                  census_page_size=op.census_page_size)
        assert isinstance(run, SyncRun) and run.status == "succeeded", (op, run)
        details = run.details or {}
        event(f"reconcile: fetched {bool(details['fetched'])}, deleted "
              f"{bool(details['deleted'])}{' (hook fired)' if hook.fired else ''}")
        # Every late version was in the feed when the census started: it is stored now.
        self.late[resource].clear()
        if not hook.fired:
            self.assert_equal(resource, op)

    def apply(self, op: Operation) -> None:
        if isinstance(op, Change):
            self.change(op)
        elif isinstance(op, Late):
            self.late_change(op)
        elif isinstance(op, Poll):
            self.poll(op)
        elif isinstance(op, Run):
            self.run(op)
        else:
            self.reconcile(op)
        self.check(op)

    def finish(self, resource: str, how: str) -> None:
        """One more poll (a run if the poll finds too much) or run, then a reconcile: the
        store equals the feed."""
        if how == "poll":
            outcome = self.poll(Poll(resource, top=100, max_pages=2))
            if outcome.status == TOO_MANY:
                self.run(Run(resource))
        else:
            self.run(Run(resource))
        self.check(f"the last {how} of {resource}")
        self.reconcile(Reconcile(resource, census_page_size=300_000))
        self.check(f"the last reconcile of {resource}")
        self.assert_equal(resource, f"the last reconcile of {resource}")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="poll-interleaving-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Stopping:
    """The examples' simulators, stopping in the background (`close`), joined at the end."""

    def __init__(self) -> None:
        self.threads: list[Thread] = []

    def __repr__(self) -> str:
        return f"<{len(self.threads)} simulator(s) stopping>"


@pytest.fixture(scope="module")
def stopping() -> Iterator[Stopping]:
    pending = Stopping()
    yield pending
    for thread in pending.threads:
        thread.join(timeout=10)


# No explain phase: it replays the failing example many times over (a second each).
@settings(max_examples=40, deadline=None, report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations, finish=finishes)
# Whatever the generation finds, these run every time: a change landing during a poll
# (after its first, last page, and mid-walk of a poll that runs out of pages), during a
# run and during a reconcile's census; attempts on a held resource; late changes; records
# removed, marked deleted and back with a fresh version.
@example(ops=[
    Change("Property", modify=5, insert=1, seed=1),
    Poll("Property", top=2, max_pages=2, during=During(1, Landing(modify=2, delete=1, seed=2))),
    Poll("Property", top=4, max_pages=3, during=During(1, Landing(modify=1, insert=1, seed=3))),
    Poll("Property", top=1, max_pages=1),
], finish=("poll", "poll"))
@example(ops=[
    Change("Member", modify=2, delete=2, seed=4),
    Reconcile("Member", census_page_size=5, during=During(1, Attempt("poll"))),
    Change("Property", modify=3, delete=1, seed=5),
    Run("Property", during=During(1, Landing(modify=2, insert=1, seed=6))),
    Late("Property", arrive=2, change=2, back=1, below=0, seed=7),
    Poll("Property", top=3, max_pages=2, during=During(1, Attempt("run"))),
    Run("Member", during=During(1, Attempt("reconcile"))),
    Reconcile("Property", census_page_size=30, during=During(2, Landing(modify=1, delete=1,
                                                                         seed=8))),
], finish=("run", "poll"))
@example(ops=[
    Change("Property", delete=3, seed=9),
    Reconcile("Property", census_page_size=300_000),
    Change("Property", back=2),
    Poll("Property", top=4, max_pages=3),
], finish=("run", "run"))
def test_no_watermark_passes_an_unstored_change_and_the_store_ends_equal_to_the_feed(
        folder: Path, stopping: Stopping, ops: list[Operation],
        finish: tuple[str, ...]) -> None:
    replica = Replica(Path(tempfile.mkdtemp(dir=folder)))
    try:
        replica.start()
        for op in ops:
            replica.apply(op)
        for resource, how in zip(RESOURCES, finish, strict=True):
            replica.finish(resource, how)
    finally:
        stopping.threads.append(replica.close())
