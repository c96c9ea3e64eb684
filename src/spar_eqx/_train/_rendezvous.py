"""The processes of a multi-process run meet here before `jax.distributed` starts.

XLA's distributed client aborts the whole process (a C++ stack trace, exit 134) when a
peer does not arrive in time, which no Python code can catch. So the processes first meet
in a small lobby that process 0 holds on the coordinator's own port: each other process
says who it is, process 0 waits until every one has come (or refuses the run with a message
naming the missing ones), closes the lobby and tells them to go on; only then does
`jax.distributed.initialize` run, with every process known to be alive.

The lobby listens on the coordinator's own address only (a coordinator on 127.0.0.1 is not
reachable from other machines), admits a peer only if its hello carries the run's token
(`run_token`: a digest of what every process agrees on, so a stranger cannot take a
process's place), and holds every read to the overall deadline (a client that trickles one
byte at a time cannot keep process 0 waiting past `--coordinator-timeout`).
"""

import hashlib
import json
import socket
import time
from typing import Any

_HELLO = "spar-eqx-lobby"


def split_address(address: str) -> tuple[str, int]:
    """`"host:port"` as `(host, port)`; a `ValueError` for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator must be HOST:PORT, got {address!r}.")
    return host, int(port)


def run_token(agreed: Any) -> str:
    """A short digest of `agreed` (JSON-serialisable: the run's configuration and the
    coordinator's address), the same in every process started with the same options."""
    text = json.dumps(agreed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read_line(conn: socket.socket, limit: int, until: float) -> str | None:
    """One line (without its newline) read from `conn` by the monotonic time `until`, at most
    `limit` bytes; None when the time runs out, the peer hangs up first, or it is not text.
    Every `recv` waits only for what is left of the time, so a trickle of bytes cannot
    stretch it."""
    data = b""
    while b"\n" not in data and len(data) < limit:
        left = until - time.monotonic()
        if left <= 0:
            return None
        conn.settimeout(left)
        try:
            chunk = conn.recv(limit - len(data))
        except OSError:
            return None
        if not chunk:
            break
        data += chunk
    if b"\n" not in data:
        return None
    try:
        return data.split(b"\n", 1)[0].decode()
    except UnicodeDecodeError:
        return None


def _advice() -> str:
    return (
        "start every process with the same --coordinator and --num-processes, each with its "
        "own --process-id, or raise --coordinator-timeout"
    )


def host_lobby(address: str, count: int, timeout: float, token: str) -> None:
    """Process 0: wait on `address` until processes `1..count-1` have all said hello.

    **Arguments:** `address`, the run's `HOST:PORT` (the lobby binds that host's address);
    `count`, the number of processes; `timeout`, seconds to wait for all of them; `token`,
    the run's `run_token`, which a hello must carry to be admitted.

    **Returns:** None once every peer has arrived and been told to go on (the port is free
    again for `jax.distributed`). A `ValueError` names the missing processes after `timeout`,
    a peer that gave another `--num-processes`, or two peers with the same `--process-id`;
    every peer that had arrived is told why.
    """
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    arrived: dict[int, socket.socket] = {}
    try:
        with socket.create_server((host.strip("[]"), port), reuse_port=False) as lobby:
            while len(arrived) < count - 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(1, count)) - set(arrived))
                    raise ValueError(
                        f"process 0 of {count} waited {timeout:g} s at {address} but process(es) "
                        f"{', '.join(map(str, missing))} never joined; {_advice()}."
                    )
                lobby.settimeout(min(left, 1.0))
                try:
                    conn, _ = lobby.accept()
                except TimeoutError:
                    continue
                problem, peer = _read_hello(conn, count, arrived, deadline, token)
                if problem:
                    _say(conn, f"refused {problem}")
                    conn.close()
                    if peer is not None:  # a real peer that does not fit: the run cannot start
                        raise ValueError(f"{problem}; {_advice()}.")
                    continue
                arrived[peer] = conn
        # The lobby is closed before anyone is told to go on, so the next connection a peer
        # makes to this port reaches jax.distributed's coordinator, not the lobby.
        for conn in arrived.values():
            _say(conn, "go")
        for conn in arrived.values():  # wait for each peer to hang up first (no TIME_WAIT here)
            conn.settimeout(5.0)
            try:
                conn.recv(1)
            except OSError:
                pass
    except OSError as error:
        raise ValueError(
            f"process 0 could not open the coordinator address {address} "
            f"({error.strerror or error}); give --coordinator a free port on an address of "
            "this machine."
        ) from None
    except ValueError as error:
        for conn in arrived.values():
            _say(conn, f"refused {error}")
        raise
    finally:
        for conn in arrived.values():
            conn.close()


def _read_hello(conn: socket.socket, count: int, arrived: dict, deadline: float, token: str):
    """`(problem, process_id)` from a peer's hello line; `(problem, None)` for a stranger
    (no hello within 5 s or by the deadline, not our hello, or another run's token)."""
    text = _read_line(conn, 200, min(deadline, time.monotonic() + 5.0))
    if text is None:
        return "no hello", None
    line = text.split()
    if len(line) != 4 or line[0] != _HELLO or not (line[1].isdigit() and line[2].isdigit()):
        return "not a spar-eqx process", None
    if line[3] != token:
        return (
            "this process was started with other options than process 0 (its run token "
            "differs); start every process with the same options",
            None,
        )
    peer, theirs = int(line[1]), int(line[2])
    if theirs != count:
        return (
            f"process {peer} was started with --num-processes {theirs}, process 0 with {count}",
            peer,
        )
    if not 0 < peer < count:
        return f"a process said --process-id {peer}, outside [1, {count})", peer
    if peer in arrived:
        return f"two processes were started with --process-id {peer}", peer
    return None, peer


def _say(conn: socket.socket, message: str) -> None:
    try:
        conn.sendall((message.replace("\n", " ") + "\n").encode())
    except OSError:
        pass


def join_lobby(address: str, process_id: int, count: int, timeout: float, token: str) -> None:
    """A process other than 0: say hello at process 0's lobby, wait to be told to go on,
    then wait until `jax.distributed`'s coordinator accepts connections on the same port.

    **Arguments:** `address`, the run's `HOST:PORT`; `process_id`, this process (>= 1);
    `count`, the number of processes; `timeout`, seconds for all of it; `token`, the run's
    `run_token` (process 0 admits only a hello that carries its own).

    **Returns:** None when `jax.distributed.initialize` can be called; a `ValueError` when no
    lobby answered within `timeout`, or process 0 refused the run (its reason is given).
    """
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    while True:
        reply = _hello(host, port, process_id, count, deadline, token)
        if reply == "go":
            break
        if reply is not None and reply.startswith("refused"):
            raise ValueError(f"process 0 refused the run: {reply.removeprefix('refused ')}")
        if time.monotonic() > deadline:
            raise ValueError(
                f"process {process_id} of {count} found no coordinator at {address} within "
                f"{timeout:g} s; start process 0 with the same --coordinator (it hosts it), "
                "or raise --coordinator-timeout."
            )
        time.sleep(0.5)
    while time.monotonic() < deadline:  # jax.distributed's service replaces the lobby
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise ValueError(
        f"process {process_id} of {count}: process 0 did not start the coordinator at "
        f"{address} within {timeout:g} s; {_advice()}."
    )


def _hello(
    host: str, port: int, process_id: int, count: int, deadline: float, token: str
) -> str | None:
    """One try at the lobby: its one-line answer, or None if nothing lobby-like answered
    by the deadline."""
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(f"{_HELLO} {process_id} {count} {token}\n".encode())
            reply = _read_line(conn, 1000, max(deadline, time.monotonic() + 0.1))
            return (reply.strip() or None) if reply is not None else None
    except OSError:
        return None
