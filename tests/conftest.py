"""Shared test configuration.

- rank promotion raises (catches the `(B,)` vs `(B, 1)` TD-target bug);
- dtype promotion is strict (no silent float64 / int upcasts);
- hypothesis has a `ci` profile (default) and a `thorough` one
  (`HYPOTHESIS_PROFILE=thorough pytest`).
"""

import os

import hypothesis
import jax
import jax.random as jr
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

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
