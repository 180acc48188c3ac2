"""Several feeds in one simulator, the pure parts: settings, keys, `--feed` parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from trestle_simulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FeedConfig,
    SimulatorConfig,
)
from trestle_simulator.feed_spec import FeedSpec, feeds_from_specs, parse_feed_spec
from trestle_simulator.plan import build_plan
from trestle_tasks.cli.commands import main


def two_feeds(**overrides: object) -> SimulatorConfig:
    return SimulatorConfig(
        records=40,
        seed=5,
        feeds={"a": FeedConfig({"id-a": "secret-a"}), "b": FeedConfig({"id-b": "secret-b"})},
        **overrides,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- settings


def test_without_feeds_the_top_level_is_the_default_feed_itself() -> None:
    config = SimulatorConfig(records=12, seed=3)
    assert config.feed_settings() == {"default": config}
    assert config.feed_settings()["default"] is config  # not even a copy: nothing changes


def test_feeds_inherit_what_they_do_not_set() -> None:
    config = SimulatorConfig(
        records=40,
        seed=5,
        minute_quota=10,
        hour_quota=100,
        latency_ms_per_request=2.0,
        rate_5xx=0.25,
        feeds={
            "a": FeedConfig({"id-a": "secret-a"}),
            "b": FeedConfig(
                {"id-b": "secret-b", "id-b2": "secret-b2"},
                records=7,
                seed=99,
                minute_quota=None,
                hour_quota=3,
                latency_ms_per_request=0.0,
            ),
        },
    )
    a, b = config.feed_settings()["a"], config.feed_settings()["b"]
    assert (a.records, a.seed, a.key_seed, a.minute_quota, a.hour_quota) == (40, 5, 5, 10, 100)
    assert a.latency_ms_per_request == 2.0 and a.rate_5xx == 0.25
    assert a.credentials == {"id-a": "secret-a"} and a.feeds == {}
    assert (b.records, b.seed, b.key_seed, b.minute_quota, b.hour_quota) == (7, 99, 5, None, 3)
    assert b.latency_ms_per_request == 0.0 and b.rate_5xx == 0.25
    assert set(b.credentials) == {"id-b", "id-b2"}


def test_undeclared_seeds_differ_by_position_and_keys_are_shared() -> None:
    settings = two_feeds().feed_settings()
    assert [s.seed for s in settings.values()] == [5, 6]
    assert [s.key_seed for s in settings.values()] == [5, 5]
    distinct = two_feeds(key_seed=11).feed_settings()
    assert [s.key_seed for s in distinct.values()] == [11, 11]


def test_feed_metadata_path_overrides_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "metadata.xml"
    config = SimulatorConfig(
        feeds={
            "plain": FeedConfig({"p": "s"}),
            "wide": FeedConfig({"w": "s"}, metadata_path=path),
        }
    )
    settings = config.feed_settings()
    assert settings["plain"].metadata_path is None and settings["wide"].metadata_path == path


@pytest.mark.parametrize(
    ("feeds", "overrides", "fragment"),
    [
        ({"a b": FeedConfig({"x": "y"})}, {}, "feed name 'a b'"),
        ({"": FeedConfig({"x": "y"})}, {}, "feed name ''"),
        ({"a": FeedConfig({})}, {}, "at least one client_id"),
        ({"a": FeedConfig({"x": ""})}, {}, "secret of client id 'x' is empty"),
        ({"a": FeedConfig({"": "s"})}, {}, "client id must be a non-empty string"),
        (
            {"a": FeedConfig({"x": "y"}), "b": FeedConfig({"x": "z"})},
            {},
            "client id 'x' is declared by feeds 'a' and 'b'",
        ),
        ({"a": FeedConfig({"x": "y"}, records=-1)}, {}, "records must be >= 0"),
        ({"a": FeedConfig({"x": "y"}, minute_quota=-2)}, {}, "minute_quota must be >= 0"),
        ({"a": FeedConfig({"x": "y"})}, {"credentials": {"c": "d"}}, "give each feed its own"),
    ],
    ids=[
        "space-in-name",
        "empty-name",
        "no-credentials",
        "empty-secret",
        "empty-client-id",
        "client-in-two-feeds",
        "negative-records",
        "negative-quota",
        "top-level-credentials",
    ],
)
def test_bad_feeds_are_refused(
    feeds: dict[str, FeedConfig], overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError) as caught:
        SimulatorConfig(feeds=feeds, **overrides)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_error_messages_never_carry_a_secret() -> None:
    with pytest.raises(ValueError) as caught:
        SimulatorConfig(
            feeds={"a": FeedConfig({"x": "hunter2"}), "b": FeedConfig({"x": "swordfish"})}
        )
    assert "hunter2" not in str(caught.value) and "swordfish" not in str(caught.value)


def test_default_credentials_are_still_the_single_feeds() -> None:
    config = SimulatorConfig()
    assert config.credentials == {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    assert config.key_seed is None and config.feeds == {}


# --------------------------------------------------------------------------- keys


def test_a_shared_key_seed_gives_the_same_keys_with_other_data() -> None:
    one = build_plan(1, 50, {}, key_seed=7)
    two = build_plan(2, 50, {}, key_seed=7)
    assert one.property_keys == two.property_keys
    assert one.member_keys == two.member_keys and one.office_keys == two.office_keys
    assert one.property_ticks != two.property_ticks  # the data follows the seed


def test_key_seed_none_keeps_the_keys_a_seed_has_always_had() -> None:
    assert build_plan(3, 30, {}).property_keys == build_plan(3, 30, {}, key_seed=3).property_keys
    assert build_plan(3, 30, {}).property_keys != build_plan(4, 30, {}).property_keys


# --------------------------------------------------------------------------- --feed


def test_feed_spec_fields() -> None:
    assert parse_feed_spec("mls-a:id:secret") == FeedSpec("mls-a", "id", "secret", None, None)
    assert parse_feed_spec("b:id:s:500:7") == FeedSpec("b", "id", "s", 500, 7)
    assert parse_feed_spec("b:id:s::-3") == FeedSpec("b", "id", "s", None, -3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a:b", "expected NAME:CLIENT_ID:SECRET"),
        ("a:b:c:1:2:3", "got 6 field(s)"),
        (":id:s", "feed name ''"),
        ("a b:id:s", "feed name 'a b'"),
        ("a::s", "the CLIENT_ID is empty"),
        ("a:id:", "the SECRET is empty"),
        ("a:id:s:many", "RECORDS must be a whole number, not 'many'"),
        ("a:id:s:-1", "RECORDS must be >= 0"),
        ("a:id:s:1:x", "SEED must be a whole number"),
    ],
)
def test_bad_feed_specs(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_feed_spec(text)
    assert fragment in str(caught.value)


def test_a_repeated_name_adds_a_credential() -> None:
    feeds = feeds_from_specs(["a:id1:s1:10", "b:id2:s2", "a:id3:s3"])
    assert list(feeds) == ["a", "b"]
    assert feeds["a"].credentials == {"id1": "s1", "id3": "s3"} and feeds["a"].records == 10
    with pytest.raises(ValueError, match="two different RECORDS"):
        feeds_from_specs(["a:id1:s1:10", "a:id3:s3:11"])
    with pytest.raises(ValueError, match="client id 'id1' twice"):
        feeds_from_specs(["a:id1:s1", "a:id1:s2"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--feed", "a:b"], "expected NAME:CLIENT_ID:SECRET"),
        (["--feed", "a:id:s:lots"], "RECORDS must be a whole number"),
        (["--feed", "a:x:s1", "--feed", "b:x:s2"], "client id 'x' is declared by feeds"),
    ],
)
def test_the_cli_refuses_bad_feeds_before_serving(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(main, ["simulator", "--port", "0", *args])
    assert result.exit_code != 0
    assert "--feed" in result.output and fragment in result.output, result.output
    assert "s1" not in result.output and "s2" not in result.output  # no secret echoed
