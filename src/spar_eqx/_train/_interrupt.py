"""What the run loop needs from the terminal: a Ctrl-C that waits for the chunk boundary,
and the progress bar."""

import contextlib
import signal
import sys
import threading


@contextlib.contextmanager
def stop_at_chunk_boundary():
    """Turn a first Ctrl-C into a request to stop after the current chunk (with a checkpoint).

    A second Ctrl-C interrupts at once. Outside the main thread, nothing changes.
    """
    requested = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if requested["stop"]:
            raise KeyboardInterrupt
        requested["stop"] = True
        print(
            "\nspar-eqx: stopping after this chunk and saving a checkpoint "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.1)
