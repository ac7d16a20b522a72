"""The operations settings (issue 14): read from the environment, typed, and a bad value is an
error naming the setting and the value."""

import pytest

from neuroscribe.settings import Settings


def test_operations_settings_come_from_the_environment_typed():
    s = Settings.from_env({"NEUROSCRIBE_JOB_TTL": "60", "NEUROSCRIBE_IDEMPOTENCY_TTL": "5.5",
                           "NEUROSCRIBE_DEAD_LETTER_TTL": "120", "NEUROSCRIBE_RATE_LIMIT": "2",
                           "NEUROSCRIBE_RATE_BURST": "4", "NEUROSCRIBE_REQUIRE_AUTH": "yes",
                           "NEUROSCRIBE_LOCAL_TRIAL": "0", "NEUROSCRIBE_API_KEYS_FILE": "/etc/keys.json",
                           "NEUROSCRIBE_RESULT_INLINE_BYTES": "1000", "NEUROSCRIBE_LOG_FORMAT": "text"})
    assert (s.job_ttl_s, s.idempotency_ttl_s, s.dead_letter_ttl_s) == (60.0, 5.5, 120.0)
    assert (s.rate_limit, s.rate_burst, s.require_auth, s.local_trial) == (2.0, 4, True, False)
    assert str(s.api_keys_file) == "/etc/keys.json" and s.result_inline_bytes == 1000 and s.log_format == "text"
    assert Settings.from_json(s.to_json()) == s


def test_defaults_keep_things_a_week_and_no_auth_requirement_outside_compose():
    s = Settings()
    assert s.job_ttl_s == 7 * 86400 and s.idempotency_ttl_s == 86400 and s.dead_letter_ttl_s == 14 * 86400
    assert not s.require_auth and s.rate_limit == 0 and s.log_format == "json"


@pytest.mark.parametrize("var, value, field", [("NEUROSCRIBE_JOB_TTL", "a week", "job_ttl_s"),
                                               ("NEUROSCRIBE_RATE_BURST", "2.5", "rate_burst"),
                                               ("NEUROSCRIBE_REQUIRE_AUTH", "maybe", "require_auth"),
                                               ("NEUROSCRIBE_DEAD_LETTER_TTL", "-1", "dead_letter_ttl_s"),
                                               ("NEUROSCRIBE_LOG_FORMAT", "xml", "log_format")])
def test_a_bad_value_names_the_setting_and_the_value(var, value, field):
    with pytest.raises(ValueError) as e:
        Settings.from_env({var: value})
    assert field in str(e.value) and repr(value) in str(e.value)
