"""The compiled part of training: the run axis (seeds x grid points) and the chunk runner.

Every state, and every learner, carries a leading *run* axis: run `r` is grid point
`r // seeds` trained with local seed `r % seeds`. A learner's array leaves are its float
hyperparameters, so vmapping over learners and states together trains a whole grid of
hyperparameters with every seed in one compiled program. A state's integer `step`
counter is shared by all runs instead (a `lax.cond` on it stays a branch).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._learner import Learner, TrainingBatch
from .._sampling import sample_indices


def is_step(path, leaf) -> bool:
    """Whether `leaf` is a state's `step` counter, which all runs share."""
    return eqx.is_array(leaf) and getattr(path[-1], "name", None) == "step"


def run_axes(tree):
    """vmap axes for a stacked state: 0 on arrays, None on the shared step counter."""

    def axis(path, leaf):
        return 0 if eqx.is_array(leaf) and not is_step(path, leaf) else None

    return jax.tree_util.tree_map_with_path(axis, tree)


def unshared_step(states):
    """Runs share one step counter: drop its run axis."""

    def fix(path, leaf):
        return leaf.reshape(-1)[0] if is_step(path, leaf) else leaf

    return jax.tree_util.tree_map_with_path(fix, states)


def stack(trees):
    """Stack PyTrees of one structure along a new leading axis (their array leaves)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def take_runs(tree, start: int, stop: int):
    """Runs `[start, stop)` of a tree whose array leaves all carry the run axis."""
    return jax.tree_util.tree_map(lambda x: x[start:stop] if eqx.is_array(x) else x, tree)


def gather_runs(tree, index):
    """The runs `index` (an integer, or an integer array) of stacked states; the shared step
    counter as is."""
    return jax.tree_util.tree_map(
        lambda axis, x: x if axis is None else x[index],
        run_axes(tree),
        tree,
        is_leaf=lambda x: x is None,
    )


def init_states(learners: Learner, keys, previous=None):
    """`learner.init(key, previous)` for every run (one vmapped call)."""
    if previous is None:
        init = eqx.filter_vmap(lambda learner, key: learner.init(key))
        return unshared_step(init(learners, keys))
    init = eqx.filter_vmap(
        lambda learner, key, prev: learner.init(key, prev),
        in_axes=(eqx.if_array(0), 0, run_axes(previous)),
    )
    return unshared_step(init(learners, keys, previous))


@eqx.filter_jit
def run_chunk(
    learners: Learner,
    states,
    data: TrainingBatch,
    keys,
    *,
    stage_steps: int,
    phase: int,
    num_steps: int,
    batch_size: int,
):
    """`num_steps` updates of phase `phase` for every run; `keys` is `(runs,)`.

    Each step, each run draws `batch_size` row indices uniformly on the device and
    calls its learner's update. Returns the new states and per-step metrics of shape
    `(num_steps, runs)`.

    Every step's key is split, and its batch's row indices drawn, for the whole chunk before
    the `lax.scan` (one vectorised draw instead of a small one per step: about 3% of a Stage I
    update on a CPU). The values are those a per-step draw gives, bit for bit; the cost is
    `num_steps * runs * batch_size` int32 indices held for the chunk.
    """
    axes = run_axes(states)
    n = data.observations.shape[0]

    def draw(key):
        index_key, update_key = jr.split(key)
        return sample_indices(index_key, n, batch_size), update_key

    def per_run(learner, state, index, update_key):
        update = learner.phases(stage_steps)[phase].update
        batch = jax.tree_util.tree_map(lambda x: x[index], data)
        return update(state, batch, update_key)

    step_keys = jax.vmap(lambda k: jr.split(k, num_steps))(keys).swapaxes(0, 1)
    draws = jax.vmap(jax.vmap(draw))(step_keys)  # (num_steps, runs, batch), (num_steps, runs)
    if keys.shape[0] == 1:
        # One run: the update runs unbatched, its run axis taken off before the scan and put
        # back after it. vmapped over one run, every array would carry a leading axis of
        # size 1, and XLA's CPU backend reduces such arrays over an inner axis up to 70x
        # slower (a LayerNorm's gradient: ReBRAC ran at 14 updates/s with one seed, 24 with
        # two). Same keys, same batches.
        learner_axes = jax.tree_util.tree_map(lambda x: 0 if eqx.is_array(x) else None, learners)
        learner, state = _squeeze(learners, learner_axes), _squeeze(states, axes)
        params, static = eqx.partition(state, eqx.is_array)

        def single(carry, step):
            index, update_key = step
            new_state, metrics = per_run(learner, eqx.combine(carry, static), index, update_key)
            return eqx.filter(new_state, eqx.is_array), metrics

        params, metrics = jax.lax.scan(single, params, jax.tree_util.tree_map(_first, draws))
        out = _unsqueeze(eqx.combine(params, static), axes)
        return out, jax.tree_util.tree_map(lambda m: m[:, None], metrics)

    params, static = eqx.partition(states, eqx.is_array)
    vmapped = eqx.filter_vmap(per_run, in_axes=(eqx.if_array(0), axes, 0, 0), out_axes=(axes, 0))

    def body(carry, step):
        index, update_keys = step
        new_states, metrics = vmapped(learners, eqx.combine(carry, static), index, update_keys)
        return eqx.filter(new_states, eqx.is_array), metrics

    params, metrics = jax.lax.scan(body, params, draws)
    return eqx.combine(params, static), metrics


def _first(x):
    """Step-major draws `(num_steps, 1, ...)` of the one run: `(num_steps, ...)`."""
    return x[:, 0]


def _squeeze(tree, axes):
    """The one run of `tree`: its run axis taken off the leaves where `axes` (a tree of 0 and
    None, as `run_axes` gives) has 0."""
    return jax.tree_util.tree_map(
        lambda a, x: x if a is None else x[0], axes, tree, is_leaf=lambda x: x is None
    )


def _unsqueeze(tree, axes):
    """`_squeeze` undone: a run axis of size 1 put back where `axes` has 0."""
    return jax.tree_util.tree_map(
        lambda a, x: x if a is None else x[None], axes, tree, is_leaf=lambda x: x is None
    )


def run_devices(num_runs: int) -> int:
    """How many local devices the run axis is split over (1: no sharding)."""
    count = len(jax.local_devices())
    return count if count > 1 and num_runs % count == 0 else 1


def shard_runs(tree, num_runs: int, axes=None):
    """Place the run axis across local devices when there are several and they divide it."""
    devices = jax.local_devices()
    if run_devices(num_runs) == 1:
        return tree
    mesh = Mesh(np.asarray(devices), ("runs",))
    split = NamedSharding(mesh, PartitionSpec("runs"))
    replicated = NamedSharding(mesh, PartitionSpec())
    axes = run_axes(tree) if axes is None else axes
    return jax.tree_util.tree_map(
        lambda x, a: jax.device_put(x, split if a == 0 else replicated) if eqx.is_array(x) else x,
        tree,
        axes,
        is_leaf=lambda x: x is None,
    )
