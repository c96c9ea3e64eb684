"""The multi-process lobby, on 127.0.0.1 only, every test bounded in time: it listens on the
coordinator's address, admits only a hello with the run's token, and holds every read to the
overall deadline."""

import socket
import threading
import time

import pytest

from spar_eqx._train import _rendezvous
from spar_eqx._train._rendezvous import host_lobby, join_lobby, run_token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_thread(target, *args):
    """Run `target(*args)` in a thread; returns the thread and a dict its outcome lands in."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = target(*args)
        except Exception as error:  # noqa: BLE001 (handed to the test)
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _connect(port: int, deadline: float = 5.0) -> socket.socket:
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_the_token_is_what_the_processes_agree_on():
    assert run_token({"config": {"a": 1, "b": 2}}) == run_token({"config": {"b": 2, "a": 1}})
    assert run_token({"config": {"a": 1}}) != run_token({"config": {"a": 2}})


def test_the_lobby_binds_the_coordinators_address(monkeypatch):
    bound = []
    real = socket.create_server

    def create_server(address, *args, **kwargs):
        bound.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(_rendezvous.socket, "create_server", create_server)
    port = _free_port()
    with pytest.raises(ValueError, match="never joined"):
        host_lobby(f"127.0.0.1:{port}", 2, 0.5, "token")
    assert bound == [("127.0.0.1", port)]


def test_a_stranger_saying_hello_as_process_1_is_not_admitted():
    """A hello with process 1's id but another token is refused; the real process 1, coming
    after it, is admitted and the run goes on."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    host, hosted = _in_thread(host_lobby, address, 2, 20.0, "the-token")
    with _connect(port) as stranger:
        stranger.sendall(b"spar-eqx-lobby 1 2 guessed\n")
        stranger.settimeout(5)
        reply = stranger.makefile("r").readline()
    assert reply.startswith("refused") and "other options" in reply
    assert host.is_alive()  # still waiting for the real process 1
    # (process 1 then waits for jax.distributed's service, which this test does not start)
    _in_thread(join_lobby, address, 1, 2, 5.0, "the-token")
    host.join(10)
    assert not host.is_alive() and "error" not in hosted, hosted


def test_a_peer_with_other_options_is_told_so():
    port = _free_port()
    address = f"127.0.0.1:{port}"
    host, hosted = _in_thread(host_lobby, address, 2, 3.0, "token-a")
    started = time.monotonic()
    with pytest.raises(ValueError, match="other options than process 0"):
        join_lobby(address, 1, 2, 10.0, "token-b")
    assert time.monotonic() - started < 5
    host.join(10)
    assert "never joined" in str(hosted.get("error"))


def test_a_trickling_client_cannot_hold_process_0_past_its_timeout():
    """One byte every 0.3 s never completes a hello line: process 0 still refuses the run
    at its deadline (it waited up to 5 s per read before, reset by every byte)."""
    port = _free_port()
    timeout = 2.0
    host, hosted = _in_thread(host_lobby, f"127.0.0.1:{port}", 2, timeout, "token")
    started = time.monotonic()
    stop = threading.Event()

    def trickle():
        with _connect(port) as conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"s")
                except OSError:
                    return
                time.sleep(0.3)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    host.join(timeout + 3)
    elapsed = time.monotonic() - started
    stop.set()
    assert not host.is_alive(), "process 0 was held past its timeout"
    assert "never joined" in str(hosted.get("error"))
    assert elapsed < timeout + 1.5
