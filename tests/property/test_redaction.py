"""The redactor masks a configured secret in every form it takes on its way into text.

Fast and pure (no I/O), so it runs many examples: the end-to-end secret test
(test_secret_leaks.py) runs only a few whole syncs, too few to meet every encoding.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from tests.secret_strategies import leaked_forms, secrets
from trestle_tasks.core.logs import JsonFormatter, Redactor
from trestle_tasks.core.settings import load_settings

ENCODINGS = {
    "as is": lambda s: s,
    "percent-encoded": lambda s: quote(s, safe=""),
    "form-encoded": quote_plus,
    "JSON-escaped": lambda s: json.dumps(s)[1:-1],
    "repr-escaped": lambda s: repr(s)[1:-1],
}
# Text around the secret that cannot itself complete an encoded form.
around = st.text(alphabet="abc XYZ:;,.=()[]", max_size=20)


def assert_masked(text: str, secret: str) -> None:
    for form in leaked_forms(secret):
        assert form not in text, (form, text)


@given(secret=secrets(), encoding=st.sampled_from(sorted(ENCODINGS)), before=around,
       after=around)
def test_a_secret_is_masked_in_every_encoding(secret, encoding, before, after):
    redact = Redactor()
    redact.add([secret])
    assert_masked(redact(before + ENCODINGS[encoding](secret) + after), secret)


@given(secret=secrets(), before=around)
def test_a_json_log_line_never_shows_a_secret(secret, before):
    """The JSON formatter redacts after encoding: the escaped form must be caught too."""
    redact = Redactor()
    redact.add([secret])
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "%s%s", (before, secret),
                               None)
    record.detail = {"nested": secret}
    line = JsonFormatter().format(record)
    assert_masked(redact(line), secret)


@given(password=secrets())
def test_a_percent_encoded_url_password_is_masked_decoded_too(password):
    """DATABASE_URL holds the password percent-encoded; drivers and SQLAlchemy see and
    may print it decoded."""
    settings = load_settings({
        "DATABASE_URL": f"mysql+pymysql://u:{quote(password, safe='')}@127.0.0.1:3306/t",
        "REDIS_URL": f"redis://:{quote(password, safe='')}@127.0.0.1:6379/8",
    }, env_file=None, require_credentials=False)
    redact = Redactor()
    redact.add(settings.secret_values())
    assert_masked(redact(f"login failed for u with {password}"), password)
