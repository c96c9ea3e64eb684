"""The processes of a multi-process run meet here before `jax.distributed` starts.

XLA's distributed client aborts the whole process (a C++ stack trace, exit 134) when a
peer does not arrive in time, which no Python code can catch. So the processes first meet
in a small lobby that process 0 holds on the coordinator's own port: each other process
says who it is, process 0 waits until every one has come (or refuses the run with a message
naming the missing ones), closes the lobby and tells them to go on; only then does
`jax.distributed.initialize` run, with every process known to be alive.
"""

import socket
import time

_HELLO = "spar-eqx-lobby"


def split_address(address: str) -> tuple[str, int]:
    """`"host:port"` as `(host, port)`; a `ValueError` for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator must be HOST:PORT, got {address!r}.")
    return host, int(port)


def _advice() -> str:
    return (
        "start every process with the same --coordinator and --num-processes, each with its "
        "own --process-id, or raise --coordinator-timeout"
    )


def host_lobby(address: str, count: int, timeout: float) -> None:
    """Process 0: wait on `address`'s port until processes `1..count-1` have all said hello.

    **Arguments:** `address`, the run's `HOST:PORT`; `count`, the number of processes;
    `timeout`, seconds to wait for all of them.

    **Returns:** None once every peer has arrived and been told to go on (the port is free
    again for `jax.distributed`). A `ValueError` names the missing processes after `timeout`,
    a peer that gave another `--num-processes`, or two peers with the same `--process-id`;
    every peer that had arrived is told why.
    """
    _, port = split_address(address)
    deadline = time.monotonic() + timeout
    arrived: dict[int, socket.socket] = {}
    try:
        with socket.create_server(("", port), reuse_port=False) as lobby:
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
                problem, peer = _read_hello(conn, count, arrived, deadline)
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
            f"process 0 could not open the coordinator port {port} ({error.strerror or error}); "
            "choose a free port for --coordinator."
        ) from None
    except ValueError as error:
        for conn in arrived.values():
            _say(conn, f"refused {error}")
        raise
    finally:
        for conn in arrived.values():
            conn.close()


def _read_hello(conn: socket.socket, count: int, arrived: dict, deadline: float):
    """`(problem, process_id)` from a peer's hello line; `(problem, None)` for a stranger."""
    conn.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
    try:
        line = conn.makefile("r").readline(200).split()
    except (OSError, UnicodeDecodeError):
        return "no hello", None
    if len(line) != 3 or line[0] != _HELLO or not (line[1].isdigit() and line[2].isdigit()):
        return "not a spar-eqx process", None
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


def join_lobby(address: str, process_id: int, count: int, timeout: float) -> None:
    """A process other than 0: say hello at process 0's lobby, wait to be told to go on,
    then wait until `jax.distributed`'s coordinator accepts connections on the same port.

    **Arguments:** `address`, the run's `HOST:PORT`; `process_id`, this process (>= 1);
    `count`, the number of processes; `timeout`, seconds for all of it.

    **Returns:** None when `jax.distributed.initialize` can be called; a `ValueError` when no
    lobby answered within `timeout`, or process 0 refused the run (its reason is given).
    """
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    while True:
        reply = _hello(host, port, process_id, count, deadline)
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


def _hello(host: str, port: int, process_id: int, count: int, deadline: float) -> str | None:
    """One try at the lobby: its one-line answer, or None if nothing lobby-like answered."""
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(f"{_HELLO} {process_id} {count}\n".encode())
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            reply = conn.makefile("r").readline(1000).strip()
            return reply or None
    except (OSError, UnicodeDecodeError):
        return None
