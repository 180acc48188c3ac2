"""Each thread gets its own requests Session from the one object clients hold."""

from __future__ import annotations

import threading

from trestle_tasks.trestle.client import new_session
from trestle_tasks.trestle.sessions import SessionPerThread


def test_every_thread_gets_a_session_of_its_own_and_keeps_it():
    sessions = SessionPerThread(new_session)
    seen: dict[str, list] = {}  # the sessions themselves: ids of freed ones get reused
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        barrier.wait()  # all alive at once: thread ids cannot be reused between them
        seen[name] = [sessions.current() for _ in range(3)]

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len({id(s) for s in kept}) == 1 for kept in seen.values())  # kept per thread
    firsts = [kept[0] for kept in seen.values()]
    assert len({id(s) for s in firsts}) == 4  # never shared between threads
    assert all(sessions.current() is not s for s in firsts)


def test_requests_go_through_the_calling_threads_session():
    calls = []

    class Recording:
        headers: dict = {}

        def get(self, url, **kwargs):
            calls.append(("get", url, threading.get_ident()))

        def post(self, url, **kwargs):
            calls.append(("post", url, threading.get_ident()))

    sessions = SessionPerThread(Recording)
    sessions.get("http://x/a", timeout=1)
    other = threading.Thread(target=lambda: sessions.post("http://x/b"))
    other.start()
    other.join()
    assert [c[:2] for c in calls] == [("get", "http://x/a"), ("post", "http://x/b")]
    assert calls[0][2] != calls[1][2]
