"""Unit-test setup: import the collection as `ansible_collections.gnss.pointperfect`; shared test PKI material."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _collection_root():
    """The installed tree when `make test` provides one, else a symlink tree to this checkout."""
    installed = os.environ.get("PP_COLLECTIONS_PATH")
    if installed:
        return installed
    root = Path(tempfile.mkdtemp(prefix="pp-unit-"))
    (root / "ansible_collections" / "gnss").mkdir(parents=True)
    (root / "ansible_collections" / "gnss" / "pointperfect").symlink_to(REPO)
    return str(root)


sys.path.insert(0, str(Path(__file__).resolve().parent))  # for ztp_samples
if not any(Path(p, "ansible_collections", "gnss", "pointperfect").exists() for p in sys.path if p):
    sys.path.insert(0, _collection_root())


@pytest.fixture(scope="session")
def pki():
    """Two certificate/key pairs: `a` and `b` (for mismatch tests)."""
    from ztp_samples import make_pair  # noqa: PLC0415 - importable only once sys.path is set above

    cert_a, key_a, not_after = make_pair()
    cert_b, key_b, _ = make_pair(cn="other")
    return {"cert": cert_a, "key": key_a, "not_after": not_after, "other_cert": cert_b, "other_key": key_b}
