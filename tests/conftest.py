"""Shared test configuration.

- rank promotion raises (catches the `(B,)` vs `(B, 1)` TD-target bug);
- dtype promotion is strict (no silent float64 / int upcasts);
- hypothesis has a `ci` profile (default) and a `thorough` one
  (`HYPOTHESIS_PROFILE=thorough pytest`);
- one XLA compilation cache per session (`COMPILE_CACHE`), shared with the processes the
  tests start.
"""

import os
import shutil
import tempfile

import hypothesis
import jax
import jax.random as jr
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# The tiny end-to-end runs compile the same programs again and again (a run, its resume, the
# same run in a subprocess), and compiling is most of their time. JAX's persistent cache keeps
# every compiled program of this session (whatever its size or compile time) in a fresh folder
# that goes when the session ends, so nothing carries over from one session to the next. The
# variables reach the subprocesses the tests start; a process that may be killed while it
# writes an entry is started without them (`helpers.without_compile_cache`). A cache folder
# given in JAX_COMPILATION_CACHE_DIR is used as it is, and kept.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
COMPILE_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR")
    or tempfile.mkdtemp(prefix="spar-eqx-tests-xla-"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
os.environ.update(COMPILE_CACHE)
jax.config.update("jax_compilation_cache_dir", COMPILE_CACHE["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE:
        shutil.rmtree(COMPILE_CACHE["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


hypothesis.settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
hypothesis.settings.register_profile("thorough", max_examples=1000, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key on every call: `getkey()`."""
    state = {"key": jr.key(0)}

    def _getkey():
        state["key"], sub = jr.split(state["key"])
        return sub

    return _getkey


@pytest.fixture(scope="session")
def hopper_file(tmp_path_factory):
    """A small D4RL-format Hopper file (`helpers.write_hopper_hdf5`), written once, read-only."""
    from .helpers import write_hopper_hdf5

    return write_hopper_hdf5(tmp_path_factory.mktemp("data") / "hopper.hdf5")
