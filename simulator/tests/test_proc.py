"""The simulator's plumbing: atomic private files and half-started services that clean up after themselves."""

import pytest
from pointperfect_sim.proc import stopped_on_error, write_atomic


def test_write_atomic_replaces_with_the_final_mode_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text("old")
    assert write_atomic(path, "new") == path
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o600
    write_atomic(path, b"\x00bytes", 0o644)
    assert path.read_bytes() == b"\x00bytes" and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def test_stopped_on_error_stops_only_when_the_block_fails():
    class Service:
        stops = 0

        def stop(self):
            self.stops += 1

    service = Service()
    with stopped_on_error(service):
        pass
    assert service.stops == 0
    with pytest.raises(TimeoutError), stopped_on_error(service):
        raise TimeoutError("not ready")
    assert service.stops == 1
