"""What the run loop needs from the terminal: a Ctrl-C or SIGTERM that waits for the chunk
boundary, and the progress bar."""

import contextlib
import signal
import sys
import threading
from collections.abc import Callable

from .._errors import Interrupted


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextlib.contextmanager
def stop_at_chunk_boundary(checkpoint: Callable[[], str | None] = lambda: None):
    """Turn a first Ctrl-C or SIGTERM into a request to stop after the current chunk (with
    a checkpoint): the function yielded returns the signal's number once one came, else 0.

    A second signal stops at once, with `Interrupted` naming `checkpoint()`, the last
    checkpoint written (None if none). Outside the main thread, nothing changes.
    """
    requested = {"signum": 0}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return

    def handler(signum, frame):
        if requested["signum"]:
            raise Interrupted(signum, checkpoint())
        requested["signum"] = signum
        print(
            f"\nspar-eqx: {signal_name(signum)}: stopping after this chunk and saving a "
            "checkpoint (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: requested["signum"]
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises `Interrupted(SIGTERM)` where Ctrl-C raises `KeyboardInterrupt` (around
    a whole command: start-up, data loading, evaluation). Outside the main thread, nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.1)
