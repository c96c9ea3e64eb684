"""Small helpers shared by the tests."""

import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import gymnasium as gym
import h5py
import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8) -> bool:
    """True when two PyTrees have the same structure and all array leaves are close."""
    if jax.tree_util.tree_structure(x) != jax.tree_util.tree_structure(y):
        return False
    xs, ys = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)
    for a, b in zip(xs, ys, strict=True):
        if eqx.is_array(a):
            if a.shape != b.shape:
                return False
            if not np.allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol):
                return False
        elif a != b:
            return False
    return True


def tree_equal_bits(x, y) -> bool:
    """True when every array leaf is bit-for-bit equal."""
    return bool(eqx.tree_equal(x, y)) and all(
        bool(jnp.array_equal(a, b))
        for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y), strict=True)
        if eqx.is_array(a)
    )


def resign_header(path: Path, **changes) -> None:
    """Change a checkpoint's header fields and sign the whole file again, as another
    version of spar_eqx (or a buggy writer) would have written it."""
    import json

    from spar_eqx._train._checkpoint import _digest

    first, payload = Path(path).read_bytes().split(b"\n", 1)
    header = json.loads(first) | changes
    header.pop("digest", None)
    header["digest"] = _digest(header, payload)
    Path(path).write_bytes(json.dumps(header).encode() + b"\n" + payload)


_KILL_AT_REPLACE = """
import os, signal, sys
from pathlib import Path
from spar_eqx._cli import main
target, argv = sys.argv[1], sys.argv[2:]
real = os.replace
def replace(src, dst, *args, **kwargs):
    if Path(dst).name == target:  # the new file is complete but not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.exit(main(argv))
"""


def without_compile_cache() -> dict[str, str]:
    """The environment of a test process, without the session's XLA compilation cache
    (`conftest.COMPILE_CACHE`), for a process a signal may stop at any instruction: JAX writes
    a cache entry in place, so one stopped mid-write would leave a torn entry for the next
    process to read (and warn about)."""
    return {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}


def killed_at_replace(target: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI in a process that SIGKILLs itself when it is about to rename a file
    onto `target` (a file name)."""
    return subprocess.run(
        [sys.executable, "-c", _KILL_AT_REPLACE, target, *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_d4rl_hdf5(
    path: Path,
    env_id: str,
    steps: int,
    *,
    time_limit: int = 40,
    reward_scale: float = 1.0,
    attrs: dict | None = None,
) -> Path:
    """A D4RL-format file (with `next_observations`) from uniform-random play in `env_id`,
    episodes cut at `time_limit` steps; `attrs` become the file's attributes."""
    env = gym.make(env_id, max_episode_steps=time_limit)
    act_dim = env.action_space.shape[0]
    rng = np.random.default_rng(0)
    rows = {k: [] for k in ("observations", "actions", "rewards", "next_observations")}
    terminals, timeouts = [], []
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)
        nxt, reward, term, trunc, _ = env.step(action)
        for key, value in zip(rows, (obs, action, reward * reward_scale, nxt), strict=True):
            rows[key].append(value)
        terminals.append(term)
        timeouts.append(trunc and not term)
        obs = env.reset()[0] if term or trunc else nxt
    env.close()
    with h5py.File(path, "w") as f:
        for key, values in rows.items():
            f[key] = np.asarray(values, np.float32 if key != "rewards" else np.float64)
        f["terminals"], f["timeouts"] = np.asarray(terminals), np.asarray(timeouts)
        f.attrs.update(attrs or {})
    return path


def write_hopper_hdf5(path: Path, steps: int = 600, reward_scale: float = 1.0) -> Path:
    """A D4RL-format file from uniform-random Hopper-v5 play (time limit 40 steps)."""
    return write_d4rl_hdf5(
        path, "Hopper-v5", steps, reward_scale=reward_scale, attrs={"env_id": "Hopper-v5"}
    )


def save_minari(collector, dataset_id: str, eval_env, description: str, source: str) -> None:
    """Save what Minari's `DataCollector` recorded as `dataset_id` (under
    MINARI_DATASETS_PATH), with `eval_env` as its evaluation environment, and close it."""
    first_tmp_dir = collector._tmp_dir
    collector.create_dataset(
        dataset_id=dataset_id,
        eval_env=eval_env,
        algorithm_name="scripted",
        author="spar_eqx tests",
        author_email="tests@example.invalid",
        code_permalink=source,
        description=description,
    )
    # Minari 0.5.4's DataCollector replaces its TemporaryDirectory after saving without
    # cleaning up the old one, and its close() removes the folder without detaching the
    # finaliser: both finalisers would warn (ResourceWarning) when garbage-collected.
    first_tmp_dir.cleanup()
    collector._tmp_dir.cleanup()
    collector.env.close()
