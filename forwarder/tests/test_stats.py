"""stats.py: the counters the status, metrics and summary read; `connected_since` across `subscribing`; the words
an error leaves in `last_error`."""

from __future__ import annotations

from pointperfect_forwarder.stats import Stats, error_text


def test_counts_per_stream_and_in_total():
    s = Stats("mqtt", "h:1", "serial", "/dev/x")
    s.data_in("spartn", 100)
    s.data_in("spartn", 50)
    s.data_in("ubx", 20)
    s.data_out("spartn", 100)
    assert (s.input_frames, s.input_bytes, s.output_frames, s.output_bytes) == (3, 170, 1, 100)
    assert s.in_streams["spartn"] == {"frames": 2, "bytes": 150} and s.in_streams["ubx"] == {"frames": 1, "bytes": 20}
    assert s.out_streams["spartn"] == {"frames": 1, "bytes": 100} and s.out_streams["ubx"] == {"frames": 0, "bytes": 0}
    assert s.last_data_age() is not None


def test_connected_since_is_kept_while_subscribing_and_cleared_by_any_other_state():
    s = Stats("mqtt", "h:1", "serial", "/dev/x")
    s.set_input("subscribing")
    assert s.connected_since is None
    s.set_input("connected")
    since = s.connected_since
    assert since is not None
    s.set_input("subscribing", "a region was chosen")
    s.set_input("connected")
    assert s.connected_since == since and s.last_error == "a region was chosen"
    s.set_input("backoff")
    assert s.connected_since is None


def test_error_text():
    assert error_text(FileNotFoundError(2, "No such file or directory")) == "No such file or directory"
    assert error_text(OSError("serial port closed")) == "serial port closed"
    assert error_text(ValueError("Invalid host.")) == "Invalid host."
    assert error_text(TimeoutError()) == "TimeoutError"
