"""outputs.py: every output refuses use while closed and closes twice without harm; the TCP output (a ser2net-like
server that drops the link) and the file output, fed over MQTT by the daemon."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys, wait_until
from pointperfect_forwarder.outputs import FileOutput, SerialOutput, TcpOutput, make_output
from pointperfect_sim import frames as F
from pointperfect_sim.replay import MqttReplayer


def serial_output(receiver) -> dict:
    """The `output` section for a receiver simulator's pty (the lab tests of the other files use it too)."""
    return {"type": "serial", "device": receiver.device_path, "baudrate": 115200}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (SerialOutput("/dev/ttyNONE", 115200), "serial port closed"),
        (TcpOutput("127.0.0.1", 9), "socket closed"),
        (FileOutput("/nonexistent/corrections.bin"), "file closed"),
    ],
)
def test_a_closed_output_says_so(output, message):
    for use in (output.fileno, lambda: output.write_some(b"x")):
        with pytest.raises(OSError, match=f"^{message}$"):
            use()
    output.close()  # closing a closed output is harmless
    if output.readable:
        with pytest.raises(OSError, match=f"^{message}$"):
            output.read()


def test_file_output_appends_and_closes_once(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    out = make_output({"type": "file", "path": str(path)})
    out.open()
    assert out.write_some(b"new") == 3 and out.wait_writable(0)
    assert out.identity() == (path.stat().st_dev, path.stat().st_ino, path.stat().st_rdev)
    fd = out.fileno()
    out.close()
    out.close()
    assert path.read_bytes() == b"oldnew"
    with pytest.raises(OSError):
        os.fstat(fd)  # the descriptor was released


def test_tcp_output_reads_writes_and_sees_the_peer_leave():
    server = socket.create_server(("127.0.0.1", 0))
    out = TcpOutput("127.0.0.1", server.getsockname()[1])
    try:
        out.open()
        peer, _addr = server.accept()
        assert out.identity() is None  # a new connection may reach the same device
        assert out.write_some(b"to the receiver") == 15
        assert peer.recv(100) == b"to the receiver"
        assert out.read() == b""  # nothing yet: waits ~0.2 s
        peer.sendall(b"$GNGGA")
        assert out.read() == b"$GNGGA"
        peer.close()
        with pytest.raises(OSError, match="connection closed by peer"):
            out.read()
    finally:
        out.close()
        server.close()


class TcpReceiver:
    """A TCP server standing in for ser2net: keeps what each accepted connection sent, one buffer per connection."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sessions: list[bytearray] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            buf = bytearray()
            with self._lock:
                self.sessions.append(buf)
                self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                buf.extend(data)

    def drop(self) -> None:
        """Close every open connection, as ser2net does when its serial port goes away."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def frames(self, session: int = -1) -> tuple[list[F.Frame], int]:
        with self._lock:
            data = bytes(self.sessions[session]) if self.sessions else b""
        return F.split_frames(data)

    def close(self) -> None:
        self.drop()
        self.server.close()


def _spartn(frames: list[F.Frame]) -> list[bytes]:
    return [f.raw for f in frames if f.kind == "spartn"]


def _config(tmp_path, broker, output: dict):
    creds = credentials(tmp_path, broker=broker, keys=None)
    # no receiver answers CFG-VALSET on these outputs
    return forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), output=output, receiver={"configure": False})


@pytest.mark.timeout(90)
def test_tcp_output_keys_first_and_reconnect_after_the_server_drops(tmp_path, broker, daemons):
    rx = TcpReceiver()
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(lab_keys())
        fwd = daemons(_config(tmp_path, broker, {"type": "tcp", "host": "127.0.0.1", "port": rx.port}))
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["output"]["state"] == "open")
        first = F.synthetic_spartn(40)
        for frame in first:
            replayer.publish("corrections", frame)
        assert wait_until(lambda: _spartn(rx.frames(0)[0]) == first)
        frames, garbage = rx.frames(0)
        assert garbage == 0 and frames[0].raw == key_frame  # the keys come before any correction

        rx.drop()
        assert wait_until(lambda: len(rx.sessions) == 2)  # the writer reopens the connection
        second = F.synthetic_spartn(40, size=120)

        def delivered() -> bool:
            got = _spartn(rx.frames(1)[0])
            if got and got[-1] == second[-1]:
                return True
            for frame in second:  # until the new connection is up, publish again (frames written to the
                replayer.publish("corrections", frame)  # dropped link are lost with it, as on a real port)
            return False

        assert wait_until(delivered, timeout=30)
        frames, garbage = rx.frames(1)
        assert garbage == 0 and frames[0].raw == key_frame  # keys again, first, on the new connection
        got = _spartn(frames)
        assert got[-len(second) :] == second
        st = fwd.wait_status(lambda s: s["output"]["state"] == "open")
        assert st["output"]["type"] == "tcp" and st["output"]["target"] == f"127.0.0.1:{rx.port}"
        assert fwd.proc.poll() is None
    finally:
        replayer.stop()
        rx.close()


@pytest.mark.timeout(90)
def test_file_output_appends_whole_frames_keys_first(tmp_path, broker, daemons):
    path = tmp_path / "corrections.bin"
    path.write_bytes(b"")  # an existing file is appended to, never truncated
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(lab_keys())
        fwd = daemons(_config(tmp_path, broker, {"type": "file", "path": str(path)}))
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["output"]["state"] == "open")
        sent = F.synthetic_spartn(50, size=200)
        for i in range(0, len(sent), 5):
            replayer.publish("corrections", b"".join(sent[i : i + 5]))
        assert wait_until(lambda: _spartn(F.split_frames(path.read_bytes())[0]) == sent)
        frames, garbage = F.split_frames(path.read_bytes())
        assert garbage == 0 and frames[0].raw == key_frame
        st = fwd.wait_status(lambda s: s["streams"]["spartn"]["frames"] == len(sent))
        assert st["output"]["type"] == "file" and st["healthy"] is True
        assert fwd.stop() == 0
        before = path.read_bytes()
        fwd2 = daemons(_config(tmp_path, broker, {"type": "file", "path": str(path)}))
        fwd2.wait_status(lambda s: s["input"]["state"] == "connected")
        assert wait_until(lambda: path.stat().st_size > len(before))  # the restarted daemon appends (the keys again)
        assert path.read_bytes().startswith(before)
    finally:
        replayer.stop()


def test_serial_output_keeps_its_descriptor_while_open(tmp_path):
    master, slave = os.openpty()
    try:
        out = SerialOutput(os.ttyname(slave), 38400)
        out.open()
        fd = out.fileno()
        assert fd == out._handle.fileno()
        assert out.write_some(b"abc") == 3
        assert os.read(master, 10) == b"abc"
        out.close()
        with pytest.raises(OSError, match="serial port closed"):
            out.fileno()
        with pytest.raises(OSError, match="serial port closed"):
            out.write_some(b"x")
    finally:
        os.close(master)
        os.close(slave)
