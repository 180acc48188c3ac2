"""The tests pick their Redis through one setting and never flush what is not theirs.

A test file that hard-codes a Redis database (a URL ending in `/9`, `Redis(db=13)`) or flushes one
writes into whatever a user keeps there and cannot be moved (issue 13, "Tests that stand on
their own"). Every file under tests/ but this one (whose URLs test the helper) is scanned
for those; tests/redis_space.py, which hands out the databases from TEST_REDIS_URL and
empties the Celery one only when it is the suite's, is the one place allowed to. The
helper's URL arithmetic is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import redis_space
from tests.redis_space import database_number, redis_url, with_database, with_password

REPO_ROOT = Path(__file__).resolve().parents[2]
HELPER = REPO_ROOT / "tests" / "redis_space.py"
# Files whose Redis URLs are only parsed as settings, never connected to.
PARSED_ONLY = {
    "tests/property/test_settings_loading.py": "settings parsing, no Redis",
    "tests/property/test_redaction.py": "the password of a parsed URL is masked, no Redis",
}

PATTERNS: dict[str, re.Pattern[str]] = {
    "a Redis URL with a database number on the default port": re.compile(r":6379/[\d{]"),
    "a Redis database chosen by number": re.compile(r"Redis\([^)]*\bdb\s*=|[?&]db=\d"),
    "a flushed Redis database": re.compile(r"\bflush(?:db|all)\b", re.IGNORECASE),
}


def hard_coded_redis(text: str, relative: str) -> list[str]:
    """Each place `text` (the file at `relative`) names a Redis database or flushes one."""
    return [f"{relative}:{text.count(chr(10), 0, match.start()) + 1}: {what}: "
            f"{match.group(0)!r}"
            for what, pattern in PATTERNS.items() for match in pattern.finditer(text)]


def test_only_the_helper_names_a_redis_database_or_flushes_one() -> None:
    files = [path for path in sorted((REPO_ROOT / "tests").rglob("*"))
             if path.is_file() and "__pycache__" not in path.parts
             and path not in (HELPER, Path(__file__).resolve())]
    assert len(files) > 50 and any(p.name == "test_celery_sync.py" for p in files)
    problems: list[str] = []
    for path in files:
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in PARSED_ONLY:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += hard_coded_redis(text, relative)
    assert not problems, ("use tests/redis_space.py (redis_url(), run_key(), the "
                          "celery_redis fixture) instead:\n" + "\n".join(problems))


def test_the_files_let_off_still_exist() -> None:
    for relative in PARSED_ONLY:
        assert (REPO_ROOT / relative).is_file(), relative


# The checker on made-up lines, assembled from parts so this file holds none of them.
PORT, DB, FLUSH = "6379", "db", "flush"
BAD_LINES = [
    f'REDIS_URL = "redis://127.0.0.1:{PORT}/9"',
    f'env["REDIS_URL"] = f"redis://:{{pw}}@127.0.0.1:{PORT}/{{REDIS_DB}}"',
    f'REDIS = "127.0.0.1:{PORT}/8"',
    f"client = redis.Redis({DB}=13)",
    f"client = redis.StrictRedis(host='h', {DB} = 7)",
    f'url = "unix:///run/redis.sock?{DB}=3"',
    f"client.{FLUSH}{DB}()",
    f"redis_client.{FLUSH}all()",
    f"pipe.{FLUSH.upper()}{DB.upper()}",
]
GOOD_LINES = [
    'REDIS_URL = redis_url()',
    'env = worker_env(sim, url, REDIS_URL=redis_url("celery"))',
    'REDIS_URL="redis://127.0.0.1:1/0"',  # nothing listens on port 1: Redis is down
    "client = shared_client()",
    "redis_client.delete(*keys)",
    "for key in redis_client.scan_iter(pattern):",
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_the_checker_finds_hard_coded_databases_and_flushes(line: str) -> None:
    assert hard_coded_redis(line, "tests/integration/test_x.py"), line


@pytest.mark.parametrize("line", GOOD_LINES)
def test_the_checker_accepts_the_helpers_urls(line: str) -> None:
    assert not hard_coded_redis(line, "tests/integration/test_x.py"), line


# The helper's URLs: same server, password and options; only the database changes.
@pytest.mark.parametrize(("base", "purpose", "expected"), [
    ("redis://127.0.0.1:7000/15", "shared", "redis://127.0.0.1:7000/15"),
    ("redis://127.0.0.1:7000/15", "celery", "redis://127.0.0.1:7000/14"),
    ("redis://:pw@redis.example:6380/4", "celery", "redis://:pw@redis.example:6380/3"),
    ("rediss://u:pw@[::1]:6390/2?ssl_cert_reqs=none", "celery",
     "rediss://u:pw@[::1]:6390/1?ssl_cert_reqs=none"),
    ("redis://127.0.0.1:7000/9?db=5", "celery", "redis://127.0.0.1:7000/9?db=4"),
    ("unix:///run/redis.sock?db=8", "celery", "unix:///run/redis.sock?db=7"),
    ("unix://:pw@/run/redis.sock?db=8&timeout=3", "shared",
     "unix://:pw@/run/redis.sock?timeout=3&db=8"),
])
def test_each_purpose_gets_its_database_on_the_same_server(base: str, purpose: str,
                                                          expected: str) -> None:
    url = redis_url(purpose, base=base)
    assert url == expected
    assert database_number(url) == database_number(base) + redis_space.DATABASES[purpose]


def test_the_databases_are_listed_in_one_place() -> None:
    assert redis_space.DATABASES == {"shared": 0, "celery": -1}
    assert database_number(redis_space.DEFAULT_TEST_REDIS_URL) == 15


def test_database_zero_leaves_no_room_below_for_celery() -> None:
    assert redis_url("shared", base="redis://127.0.0.1:7000") == "redis://127.0.0.1:7000/0"
    with pytest.raises(ValueError, match="database 1 or above"):
        redis_url("celery", base="redis://127.0.0.1:7000/0")


def test_a_password_replaces_the_urls_own_percent_encoded() -> None:
    assert with_password("redis://127.0.0.1:7000/15", "p@ss:w/rd") == \
        "redis://:p%40ss%3Aw%2Frd@127.0.0.1:7000/15"
    assert with_password("redis://user:old@h:1/2", "new") == "redis://user:new@h:1/2"
    assert redis_url(password="s", base="redis://:old@h:1/5") == "redis://:s@h:1/5"
    assert with_database("redis://h:1/2", 11) == "redis://h:1/11"


def test_this_runs_keys_share_one_prefix_of_its_own() -> None:
    key = redis_space.run_key("quota", "abc")
    assert key == f"{redis_space.RUN_PREFIX}quota:abc"
    assert redis_space.RUN_PREFIX.startswith("trestle-tests:")
    assert not redis_space.MARKER.startswith(redis_space.RUN_PREFIX)  # outlives the run
