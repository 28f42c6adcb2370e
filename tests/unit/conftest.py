"""Unit-test setup: shared test PKI material (`ansible_collections.gnss.pointperfect` is importable through pytest.ini's
pythonpath, the link `make venv` makes)."""

import pytest

from tests.unit.ztp_samples import make_pair


@pytest.fixture(scope="session")
def pki():
    """Two certificate/key pairs: `a` and `b` (for mismatch tests)."""
    cert_a, key_a, not_after = make_pair()
    cert_b, key_b, _ = make_pair(cn="other")
    return {"cert": cert_a, "key": key_a, "not_after": not_after, "other_cert": cert_b, "other_key": key_b}
