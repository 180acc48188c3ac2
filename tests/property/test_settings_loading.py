"""Configuration loading completeness."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.settings import SPECS, load_settings

VALID = {
    "TRESTLE_FEEDS": "north,south",
    "TRESTLE_CLIENT_ID": "client",
    "TRESTLE_CLIENT_SECRET": "s3cret-value",
    "TRESTLE_TOKEN_URL": "http://127.0.0.1:1/trestle/oidc/connect/token",
    "TRESTLE_ALLOW_HTTP_TOKEN_URL": "false",
    "TRESTLE_BASE_URL": "http://127.0.0.1:1/trestle/odata",
    "TRESTLE_RESOURCES": "Property,Member",
    "DATABASE_URL": "mysql+pymysql://root:dbpass@127.0.0.1:3306/test",
    "DATABASE_SCHEMA": "mls_main",
    "REDIS_URL": "redis://:redispass@127.0.0.1:6379/1",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/2",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/3",
    "TRESTLE_HTTP_TIMEOUT": "30",
    "TRESTLE_MAX_RESPONSE_MB": "64",
    "TRESTLE_RETRY_BUDGET": "120",
    "TRESTLE_PAGE_SIZE": "500",
    "TRESTLE_QUOTA_PER_MINUTE": "90",
    "TRESTLE_QUOTA_PER_HOUR": "4000",
    "SYNC_WINDOW_SIZE": "5000",
    "SYNC_LOCK_TTL": "600",
    "SYNC_INTERVAL_MINUTES": "2",
    "SYNC_POLL_QUOTA_SHARE": "0.1",
    "SYNC_POLL_MIN_SECONDS": "5",
    "SYNC_POLL_MAX_SECONDS": "120",
    "SYNC_RETRY_DELAY": "5",
    "SYNC_SETTLE_SECONDS": "10",
    "SYNC_MAX_CONCURRENT_WINDOWS": "4",
    "SYNC_WINDOW_LANES": "2",
    "SYNC_REPLICATION_MIN_RECORDS": "50000",
    "SYNC_WORKER_RATE_LIMIT": "30/m",
    "SYNC_WINDOW_STALE_SECONDS": "60",
    "CELERY_WORKER_MAX_MEMORY_MB": "512",
    "DB_BATCH_SIZE": "500",
    "STORE_INDEXED_FIELDS": "Property.LivingArea, Property.Latitude,Member.MemberEmail",
    "STORE_DEFER_INDEXES": "no",
    "LOCK_DIR": "/tmp/locks",
    "LOG_DIR": "/tmp/logs",
    "COST_PER_REQUEST": "0.002",
    "COST_PER_GB": "0.09",
    "LOG_LEVEL": "debug",
    "LOG_FORMAT": "json",
    "ALERT_EMAIL_TO": "ops@example.com, oncall@example.com",
    "ALERT_EMAIL_FROM": "etl@example.com",
    "ALERT_SMTP_HOST": "smtp.example.com",
    "ALERT_SMTP_PORT": "2525",
    "ALERT_SMTP_USER": "etl",
    "ALERT_SMTP_PASSWORD": "smtp-pass",
    "ALERT_SMTP_STARTTLS": "no",
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/alerts/tok3n",
    "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T0/B0/x",
    "ALERT_COOLDOWN_MINUTES": "30",
    "ALERT_QUOTA_THRESHOLD": "0.8",
    "ALERT_REJECT_THRESHOLD": "0.05",
    "ALERT_DRIFT_THRESHOLD": "0",
    "ALERT_STALE_AFTER_MINUTES": "90",
    "ALERT_FRESHNESS_SECONDS": "30",
    "ALERT_LOCK_MAX_MINUTES": "120",
}
INVALID = {
    "TRESTLE_FEEDS": "North,south",
    "DATABASE_SCHEMA": "mls-main",
    "TRESTLE_TOKEN_URL": "ftp://nowhere",
    "TRESTLE_ALLOW_HTTP_TOKEN_URL": "maybe",
    "TRESTLE_BASE_URL": "not a url",
    "TRESTLE_RESOURCES": "Prop erty",
    "DATABASE_URL": "oracle://x",
    "REDIS_URL": "http://127.0.0.1",
    "TRESTLE_HTTP_TIMEOUT": "-1",
    "TRESTLE_MAX_RESPONSE_MB": "0",
    "TRESTLE_RETRY_BUDGET": "lots",
    "TRESTLE_PAGE_SIZE": "5000",
    "TRESTLE_QUOTA_PER_MINUTE": "2",
    "TRESTLE_QUOTA_PER_HOUR": "many",
    "SYNC_WINDOW_SIZE": "10",
    "COST_PER_REQUEST": "free",
    "COST_PER_GB": "-1",
    "SYNC_LOCK_TTL": "forever",
    "SYNC_INTERVAL_MINUTES": "0",
    "SYNC_POLL_QUOTA_SHARE": "0.9",
    "SYNC_POLL_MIN_SECONDS": "0",
    "SYNC_POLL_MAX_SECONDS": "-1",
    "SYNC_RETRY_DELAY": "-1",
    "SYNC_SETTLE_SECONDS": "forever",
    "SYNC_MAX_CONCURRENT_WINDOWS": "0",
    "SYNC_WINDOW_LANES": "9",
    "SYNC_REPLICATION_MIN_RECORDS": "-5",
    "SYNC_WORKER_RATE_LIMIT": "fast",
    "SYNC_WINDOW_STALE_SECONDS": "1",
    "CELERY_WORKER_MAX_MEMORY_MB": "lots",
    "DB_BATCH_SIZE": "0",
    "STORE_INDEXED_FIELDS": "Property.Living Area,LivingArea",
    "STORE_DEFER_INDEXES": "later",
    "LOG_LEVEL": "LOUD",
    "LOG_FORMAT": "xml",
    "ALERT_EMAIL_TO": "ops@example.com, nobody",
    "ALERT_EMAIL_FROM": "etl",
    "ALERT_SMTP_PORT": "70000",
    "ALERT_SMTP_STARTTLS": "maybe",
    "ALERT_WEBHOOK_URL": "hooks.example.com/alerts",
    "ALERT_SLACK_WEBHOOK_URL": "ftp://hooks.slack.example/x",
    "ALERT_COOLDOWN_MINUTES": "-5",
    "ALERT_QUOTA_THRESHOLD": "90%",
    "ALERT_REJECT_THRESHOLD": "2",
    "ALERT_DRIFT_THRESHOLD": "1.5",
    "ALERT_STALE_AFTER_MINUTES": "0",
    "ALERT_FRESHNESS_SECONDS": "0",
    "ALERT_LOCK_MAX_MINUTES": "never",
}


def test_every_setting_is_covered_by_this_test():
    assert set(VALID) == {spec.env for spec in SPECS}


def test_every_setting_is_documented_in_env_example_and_readme():
    example = (REPO_ROOT / ".env.example").read_text()
    readme = (REPO_ROOT / "docs" / "configuration.md").read_text()
    for spec in SPECS:
        assert f"{spec.env}=" in example, spec.env
        assert f"`{spec.env}`" in readme, spec.env


@given(st.sets(st.sampled_from(sorted(INVALID))))
def test_every_bad_variable_is_named_at_once(bad_names):
    environ = {**VALID, **{name: INVALID[name] for name in bad_names}}
    if not bad_names:
        settings = load_settings(environ, env_file=None)
        assert settings.page_size == 500 and settings.resources == ("Property", "Member")
        return
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ, env_file=None)
    named = {problem.split("=")[0].split(":")[0] for problem in caught.value.problems}
    assert named == bad_names


@given(st.sets(st.sampled_from(sorted(VALID))))
def test_missing_variables_take_defaults_and_only_credentials_are_required(missing):
    environ = {k: v for k, v in VALID.items() if k not in missing}
    if "DATABASE_URL" in missing:
        environ.pop("DATABASE_SCHEMA", None)  # the default URL is SQLite: no schemas
    required = {"TRESTLE_CLIENT_ID", "TRESTLE_CLIENT_SECRET"} & missing
    if required:
        with pytest.raises(ConfigurationError) as caught:
            load_settings(environ, env_file=None)
        assert {p.split(":")[0] for p in caught.value.problems} == required
    settings = load_settings(environ, env_file=None, require_credentials=False)
    for spec in SPECS:
        if spec.env in missing:
            value = getattr(settings, spec.attribute)
            assert value == spec.default


# A "secret" that is a piece of the public text (a variable name such as TRESTL…) would be
# found there without leaking: draw only strings the settings' own text does not contain.
_PUBLIC_TEXT = repr(load_settings(VALID, env_file=None)) + " ".join(spec.env for spec in SPECS)
secrets = st.text(string.ascii_letters + string.digits + "!@$%^*-_", min_size=6,
                  max_size=40).filter(lambda text: text not in _PUBLIC_TEXT)


@given(secrets, secrets, secrets)
def test_secrets_never_show_in_repr_or_errors(client_secret, db_password, redis_password):
    environ = {
        **VALID,
        "TRESTLE_CLIENT_SECRET": client_secret,
        "DATABASE_URL": f"mysql+pymysql://root:{db_password}@127.0.0.1:3306/test",
        "REDIS_URL": f"redis://:{redis_password}@127.0.0.1:6379/0",
    }
    settings = load_settings(environ, env_file=None)
    shown = repr(settings) + str(settings.masked())
    for secret in (client_secret, db_password, redis_password):
        assert secret not in shown
    assert settings.client_secret.reveal() == client_secret
    assert set(settings.secret_values()) >= {client_secret, db_password, redis_password}
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**environ, "TRESTLE_PAGE_SIZE": "0"}, env_file=None)
    for secret in (client_secret, db_password, redis_password):
        assert secret not in str(caught.value)


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TRESTLE_CLIENT_ID=from-file\nTRESTLE_PAGE_SIZE=250\n")
    settings = load_settings(
        {"TRESTLE_CLIENT_ID": "from-env", "TRESTLE_CLIENT_SECRET": "x"}, env_file=env_file
    )
    assert settings.client_id == "from-env"
    assert settings.page_size == 250


def test_malformed_env_file_is_named_with_its_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TRESTLE_CLIENT_ID=ok\nthis is not a setting\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"TRESTLE_CLIENT_SECRET": "x"}, env_file=env_file)
    assert any("line 2" in problem for problem in caught.value.problems)


def test_indexed_fields_are_grouped_by_resource():
    settings = load_settings({**VALID, "STORE_INDEXED_FIELDS":
                              "Property.LivingArea,Property.Latitude,Property.LivingArea,"
                              "Member.MemberEmail"}, env_file=None)
    assert settings.indexed_fields == ("Property.LivingArea", "Property.Latitude",
                                       "Member.MemberEmail")
    assert settings.promoted_fields == {"Property": ("LivingArea", "Latitude"),
                                        "Member": ("MemberEmail",)}
    assert load_settings({**VALID, "STORE_INDEXED_FIELDS": ""},
                         env_file=None).promoted_fields == {}
