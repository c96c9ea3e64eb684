"""Stage I: probe problems with known answers, Polyak targets, determinism, one compile.

Every run is a chunk of STEPS updates inside one `eqx.filter_jit` + `lax.scan`. A chunk is
built once per (learner, steps) and asserted to trace once, so the probes, the determinism
runs and the key-independence runs below share two compiles.
"""

import functools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from spar_eqx import Anchor, AnchorConfig, AnchorState, TrainingBatch, polyak
from spar_eqx._learner import hyperparameter_arrays
from spar_eqx._optim import ordered_after
from spar_eqx._train._chunk import init_states, run_chunk, stack
from spar_eqx.data._transitions import Transitions

from .helpers import tree_equal_bits

# Sizes shared with the other test files (random init compiles once per parameter shape).
OBS, ACT, WIDTH, DEPTH, M, BATCH = 3, 2, 16, 1, 4, 8
STEPS = 300
POLYAK = 0.1
GAMMA = 0.5
STATE = np.array([0.5, -0.3, 1.0], np.float32)
ACTION = np.array([0.3, -0.6], np.float32)


def _anchor(**overrides) -> Anchor:
    # Tiny networks, a large learning rate and fast targets, so probes converge in STEPS.
    # gamma = 0.5 keeps r / (1 - gamma) = 2 close; expectile 0.9 is AntMaze's value expectile.
    base = dict(
        num_critics=M,
        width=WIDTH,
        depth=DEPTH,
        learning_rate=1e-2,
        polyak=POLYAK,
        gamma=GAMMA,
        expectile=0.9,
    )
    return Anchor(AnchorConfig(**(base | overrides)), OBS, ACT)


def _one_state_dataset(actions, rewards, terminal: bool) -> Transitions:
    """BATCH rows at one state, cycling through `actions`/`rewards`; s' = s."""
    actions = np.asarray(actions, np.float32)
    idx = np.arange(BATCH) % len(actions)
    obs = np.tile(STATE, (BATCH, 1))
    return Transitions(
        observations=obs,
        actions=actions[idx],
        rewards=np.asarray(rewards, np.float32)[idx],
        next_observations=obs,
        terminals=np.full(BATCH, terminal),
        timeouts=np.full(BATCH, not terminal),
    )


def _changed(a, b) -> jax.Array:
    leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return jnp.any(jnp.stack([jnp.any(x != y) for x, y in leaves if eqx.is_array(x)]))


def _checks(old: AnchorState, new: AnchorState) -> dict:
    """Per-step facts, computed inside the scan: the targets move only by Polyak averaging,
    and each of pi_base, the critics and V takes its own step."""
    expected = polyak(old.target_critic, new.critic, POLYAK)
    errors = [
        jnp.max(jnp.abs(x - y))
        for x, y in zip(
            jax.tree_util.tree_leaves(eqx.filter(new.target_critic, eqx.is_inexact_array)),
            jax.tree_util.tree_leaves(eqx.filter(expected, eqx.is_inexact_array)),
            strict=True,
        )
    ]
    return {
        "target_polyak_error": jnp.max(jnp.stack(errors)),
        "policy_moved": _changed(old.policy, new.policy),
        "critic_moved": _changed(old.critic, new.critic),
        "value_moved": _changed(old.value, new.value),
        "step_increment": new.step - old.step,
    }


@functools.cache
def _chunk(anchor: Anchor, steps: int):
    """`steps` updates in one compiled `lax.scan`, asserted to trace only once."""

    def run(state, batch, key):
        params, static = eqx.partition(state, eqx.is_array)

        def body(p, k):
            old = eqx.combine(p, static)
            new, metrics = anchor.update(old, batch, k)
            return eqx.filter(new, eqx.is_array), metrics | _checks(old, new)

        params, metrics = jax.lax.scan(body, params, jr.split(key, steps))
        return eqx.combine(params, static), metrics

    return eqx.filter_jit(eqx.debug.assert_max_traces(run, max_traces=1))


def _run(anchor, batch, seed=0, key=None):
    state = anchor.init(jr.key(seed))
    return _chunk(anchor, STEPS)(state, batch, jr.key(seed + 1) if key is None else key)


@pytest.mark.parametrize(
    "base_policy, q_target, terminal",
    [
        ("deterministic", "value", True),
        ("deterministic", "value", False),
        ("gaussian", "policy", False),
    ],
)
def test_one_state_one_action_probe(base_policy, q_target, terminal):
    # Reward 1 at one state with one action. Terminal: Q = V = 1. Not terminal (the episode
    # times out, which must not stop bootstrapping) with s' = s: Q = V = r / (1 - gamma) = 2,
    # bootstrapping from V(s') ("value") or from the critics at pi_base(s') ("policy").
    # With q_target="policy" V is unused, so its expectile must stay at the default.
    unused_v = {"expectile": 0.5} if q_target == "policy" else {}
    anchor = _anchor(base_policy=base_policy, q_target=q_target, **unused_v)
    state, metrics = _run(anchor, _one_state_dataset([ACTION], [1.0], terminal))
    expected = 1.0 if terminal else 1.0 / (1.0 - GAMMA)
    s, a = jnp.asarray(STATE), jnp.asarray(ACTION)
    np.testing.assert_allclose(state.critic(s, a), expected, atol=2e-2)
    np.testing.assert_allclose(state.target_critic(s, a), expected, atol=2e-2)
    np.testing.assert_allclose(state.value(s), expected, atol=2e-2)
    np.testing.assert_allclose(state.policy(s), ACTION, atol=2e-2)  # BC -> the data action
    assert int(state.step) == STEPS
    assert metrics["q_loss"].shape == (STEPS,)
    assert float(metrics["q_loss"][-1]) < 1e-2 * float(metrics["q_loss"][0]) + 1e-4
    # Every step: the target critics are exactly polyak(old target, new critics, tau) ...
    assert np.max(np.asarray(metrics["target_polyak_error"])) <= 1e-6
    # ... and the first steps move every network (later ones may converge and stop).
    for name in ("policy_moved", "critic_moved", "value_moved"):
        assert np.all(np.asarray(metrics[name][:10])), name
    assert np.all(np.asarray(metrics["step_increment"]) == 1)


def test_value_is_the_expectile_of_q_over_data_actions():
    # Two actions at one state, terminal rewards 0 and 1: Q(s, a0) = 0, Q(s, a1) = 1, and V(s)
    # is the tau-expectile of {0, 1} with equal mass, which is tau. BC learns the mean action.
    actions = [[0.5, 0.5], [-0.5, 0.1]]
    batch = _one_state_dataset(actions, [0.0, 1.0], terminal=True)
    anchor = _anchor()
    state, _ = _run(anchor, batch)
    s = jnp.asarray(STATE)
    q = jax.vmap(state.critic, in_axes=(None, 0))(s, jnp.asarray(actions))
    np.testing.assert_allclose(q, [[0.0] * M, [1.0] * M], atol=3e-2)
    np.testing.assert_allclose(state.value(s), anchor.config.expectile, atol=3e-2)
    np.testing.assert_allclose(state.policy(s), np.mean(actions, axis=0), atol=3e-2)


@pytest.mark.parametrize("critic_expectile", [0.2, 0.8])
def test_critic_expectile_sets_the_critics_fixed_point(critic_expectile):
    # One state, one action, terminal rewards 0 and 1 with equal mass: the critics' fixed
    # point is the critic_expectile-expectile of {0, 1}, which is critic_expectile itself.
    batch = _one_state_dataset([ACTION, ACTION], [0.0, 1.0], terminal=True)
    state, _ = _run(_anchor(critic_expectile=critic_expectile), batch)
    q = state.critic(jnp.asarray(STATE), jnp.asarray(ACTION))
    np.testing.assert_allclose(q, [critic_expectile] * M, atol=3e-2)


def test_training_is_deterministic_and_draws_no_randomness():
    anchor = _anchor()
    batch = _one_state_dataset([ACTION, -ACTION], [1.0, 0.0], terminal=False)
    first = _run(anchor, batch, seed=3)
    assert tree_equal_bits(first, _run(anchor, batch, seed=3))
    # Another initialisation gives other critics ...
    assert not tree_equal_bits(first[0].critic, _run(anchor, batch, seed=4)[0].critic)
    # ... but Stage I uses no randomness in its updates: the key passed to them is irrelevant.
    assert tree_equal_bits(first, _run(anchor, batch, seed=3, key=jr.key(1234)))


def test_init():
    anchor = _anchor(base_policy="gaussian")
    state = anchor.init(jr.key(0))
    assert isinstance(state, AnchorState) and int(state.step) == 0
    assert tree_equal_bits(state.critic, state.target_critic)
    assert state.critic.num_members == M
    obs = jnp.zeros((5, OBS))
    assert jax.vmap(state.policy)(obs).shape == (5, ACT)
    assert jax.vmap(state.value)(obs).shape == (5,)
    assert jax.vmap(state.critic)(obs, jnp.zeros((5, ACT))).shape == (5, M)
    # Same key, same bits.
    assert tree_equal_bits(state, anchor.init(jr.key(0)))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(base_policy="diffusion"), "base_policy"),
        (dict(q_target="max"), "q_target"),
        (dict(num_critics=0), "num_critics"),
        (dict(width=0), "width"),
        (dict(gamma=1.5), "gamma"),
        (dict(polyak=-0.1), "polyak"),
        (dict(expectile=1.0), "expectile"),
        (dict(expectile=0.0), "expectile"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(grad_clip=-1.0), "grad_clip"),
    ],
)
def test_config_validation(overrides, match):
    # A bad Literal is refused by the runtime type checker these tests run with before
    # `__post_init__` sees it ...
    literal = set(overrides) & {"base_policy", "q_target"}
    errors = (ValueError, jaxtyping.TypeCheckError) if literal else ValueError
    with pytest.raises(errors, match=match):
        AnchorConfig(**overrides)
    # ... so run the validation itself too, as it runs without the checker: a clear ValueError.
    config = AnchorConfig()
    for name, value in overrides.items():
        object.__setattr__(config, name, value)  # bypass the frozen dataclass
    with pytest.raises(ValueError, match=match):
        config.__check_init__()


def test_value_expectile_without_a_value_network_is_refused():
    # q_target="policy" bootstraps from the critics: a V expectile would silently do nothing.
    with pytest.raises(ValueError, match="critic_expectile"):
        AnchorConfig(q_target="policy", expectile=0.9)
    AnchorConfig(q_target="policy", critic_expectile=0.9)  # Stage I's tau on the critics


def test_antmaze_preset_puts_its_tau_where_the_bootstrap_uses_it():
    from spar_eqx import RunConfig

    value = RunConfig().with_preset("antmaze-umaze-diverse").hyperparameters.anchor
    assert (value.expectile, value.critic_expectile) == (0.9, 0.5)
    policy_run = RunConfig().with_overrides({"anchor.q_target": "policy"})
    policy = policy_run.with_preset("antmaze-umaze-diverse").hyperparameters.anchor
    assert (policy.expectile, policy.critic_expectile) == (0.5, 0.9)


# --- no parameter copied per update ---


@settings(max_examples=50, deadline=None)
@given(
    leaf=hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=4),
                    elements=st.floats(width=32, allow_nan=False, allow_infinity=False)),
    value=hnp.arrays(np.float32, hnp.array_shapes(max_dims=1, max_side=4),
                     elements=st.floats(-1e6, 1e6, width=32)),
)  # fmt: skip
def test_ordered_after_keeps_every_bit_for_finite_values(leaf, value):
    # Signed zeros included: x - (+0.0) is x for every finite x.
    tree = {"w": jnp.asarray(leaf), "n": jnp.arange(3), "name": "static"}
    out = ordered_after(tree, jnp.asarray(value))
    assert np.asarray(out["w"]).tobytes() == leaf.tobytes()
    assert out["n"] is tree["n"] and out["name"] == "static"


def _loop_body_copies(hlo: str) -> list[str]:
    """The shapes of the `copy` instructions inside the while loops' bodies of an HLO module."""
    bodies = set(re.findall(r"while\([^\n]*body=%?([\w.\-]+)", hlo))
    shapes = []
    for match in re.finditer(r"^%?([\w.\-]+) [^\n]*\{\n(.*?)^\}", hlo, re.S | re.M):
        if match.group(1) in bodies:
            shapes += re.findall(r"= (f32\[[\d,]*\])\S* copy\(", match.group(2))
    return shapes


def test_a_scanned_stage1_update_copies_no_parameter():
    # The target critics are read (V's regression target) and then Polyak-averaged; V is read
    # (the critics' bootstrap) and then stepped. Unordered, XLA copies each of them every
    # step to be safe; `ordered_after` orders the reads first, and the copies go.
    runs, width = 2, 24
    learners = stack([hyperparameter_arrays(_anchor(width=width))] * runs)
    keys = jax.vmap(jr.key)(jnp.arange(runs))
    states = init_states(learners, keys)
    data = TrainingBatch.from_transitions(_one_state_dataset([ACTION], [1.0], False))
    static = dict(stage_steps=4, phase=0, num_steps=4, batch_size=BATCH)
    hlo = run_chunk.lower(learners, states, data, keys, **static).compile().compiled.as_text()
    params = {
        f"f32[{','.join(map(str, x.shape))}]"
        for x in jax.tree_util.tree_leaves(eqx.filter(states, eqx.is_inexact_array))
        if x.size > runs * width
    }
    copied = [shape for shape in _loop_body_copies(hlo) if shape in params]
    assert not copied, copied
