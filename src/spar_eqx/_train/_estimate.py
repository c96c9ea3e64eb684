"""How long a run will take, from its own speed: said once, early, when a run on a CPU is long
(the paper's budget is 2M updates for SPAR: days on a laptop), with how to choose a shorter
one."""

import time

# A run expected to train longer than this on a CPU says so after its first timed chunk.
LONG_RUN_SECONDS = 30 * 60.0


def duration(seconds: float) -> str:
    """`seconds` in words a person reads at a glance: `"40 min"`, `"3.2 h"`, `"2.5 days"`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def long_run_message(
    remaining: int, total: int, rate: float, backend: str, threshold: float = LONG_RUN_SECONDS
) -> str | None:
    """What to tell the user about a run with `remaining` of its `total` updates to go at
    `rate` updates per second on `backend` (None: nothing, it is short or not on a CPU)."""
    if backend != "cpu" or rate <= 0:
        return None
    seconds = remaining / rate
    if seconds < threshold:
        return None
    return (
        f"spar-eqx: this run's {total:,} updates take about {duration(seconds)} on this CPU "
        f"({rate:,.0f} updates/s over its first chunk after compiling). For a run of minutes, "
        "train with --budget quick (20,000 updates per stage and smaller networks; `spar-eqx "
        "train --help` lists what it sets; RunConfig.with_budget('quick') in Python), or give "
        "fewer updates per stage (--steps, or --stage1-steps and --stage2-steps)."
    )


class FirstChunkEstimate:
    """Times the first chunk after the compiling one, then says once how long the run takes
    (`long_run_message`). Call `tick(size, remaining)` after every chunk; it returns the
    message at most once, else None."""

    def __init__(self, total: int, backend: str, threshold: float = LONG_RUN_SECONDS):
        self.total, self.backend, self.threshold = total, backend, threshold
        self._started: float | None = None
        self._done = False

    def tick(self, size: int, remaining: int) -> str | None:
        """**Arguments:** `size`, the updates of the chunk that just ended; `remaining`, the
        run's updates still to train. **Returns:** the message, once, or None."""
        now = time.perf_counter()
        if self._done:
            return None
        if self._started is None:  # the first chunk compiles: time the next one
            self._started = now
            return None
        self._done = True
        rate = size / max(now - self._started, 1e-9)
        return long_run_message(remaining, self.total, rate, self.backend, self.threshold)
