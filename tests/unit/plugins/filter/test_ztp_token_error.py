"""The ztp_token_error filter gives the ztp module's own verdict on a token, and never echoes the token."""

import pytest
from ansible_collections.gnss.pointperfect.plugins.filter import ztp_token_error as f
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import token_error

GOOD = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01"


@pytest.mark.parametrize("token", [None, "", GOOD])
def test_no_problem(token):
    assert f.ztp_token_error(token) is None


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (GOOD.upper(), "upper-case letters"),
        (" " + GOOD, "whitespace"),
        (GOOD + "\n", "whitespace"),
        ("not-a-token-at-all", "not a device-profile token"),
        (12345, "not a string"),
    ],
)
def test_problem_is_the_modules_message(token, words):
    message = f.ztp_token_error(token)
    assert message == token_error(token)
    assert words in message
    assert "\n" not in message
    if isinstance(token, str):
        assert token.strip() not in message


def test_registered_under_its_name():
    assert f.FilterModule().filters() == {"ztp_token_error": f.ztp_token_error}
