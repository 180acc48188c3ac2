"""Which resources the poll task polls: Media not when Property polls bring it inline."""

from __future__ import annotations

from types import SimpleNamespace

from trestle_tasks.worker.tasks import _polled_resources


def runtime_of(*resources: str) -> SimpleNamespace:
    return SimpleNamespace(settings=SimpleNamespace(resources=list(resources)))


def test_media_is_left_to_property_polls_when_they_bring_it_inline():
    runtime = runtime_of("Property", "Media", "Office")
    assert _polled_resources(runtime, media_inline=True) == ["Property", "Office"]
    assert _polled_resources(runtime, media_inline=False) == ["Property", "Media", "Office"]
    assert runtime.settings.resources == ["Property", "Media", "Office"]  # not changed
