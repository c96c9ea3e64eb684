"""Section 4.3's gradient-conflict metrics (DD, VSD): closed forms on quadratics, the guidance
step's optimiser arithmetic, and the `conflict_dd`/`conflict_vsd` logs of every Stage II variant.

The Stage II problems are test_rectify's: a hand-built anchor whose critics are linear in the
action, so the guide critics' `Q_rob` rises towards the corner (1, 1) of the action box.
"""

import argparse

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from spar_eqx import ResidualConfig
from spar_eqx._cli_train import add_train_arguments, config_from_args
from spar_eqx._conflict import gradient_conflict, guidance_update
from spar_eqx._hyper import hyperparameters
from spar_eqx._optim import init_opt

from .test_rectify import (
    _anchor,
    _batch,
    _checks_mlp,
    _checks_plas,
    _checks_proj,
    _chunk,
    _config,
    _identity_decoder,
    _learner,
)

# --- gradient_conflict on quadratics ------------------------------------------------------------


def _split(x):
    """A flat vector as a two-leaf PyTree, so that DD must sum over leaves."""
    return {"u": x[:2], "v": x[2:]}


def _quadratic(a, b):
    """`L(theta) = 1/2 x^T A x + b^T x` of the flattened leaves `x` of `theta`: gradient
    `A x + b`, Hessian `(A + A^T) / 2`."""

    def loss(params):
        x = jnp.concatenate([params["u"], params["v"]])
        return 0.5 * x @ a @ x + b @ x

    return loss


@jax.jit
def _quadratic_conflict(a, b, x, delta):
    """`gradient_conflict` of `_quadratic(a, b)` at `x` (one compile per size)."""
    return gradient_conflict(_quadratic(a, b), _split(x), _split(delta))


def _problem(n, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(rng.uniform(0.5, 2.0, size=n)) @ q.T  # positive definite, eigenvalues <= 2
    a = (a + a.T) / 2
    x, b = rng.normal(size=n), rng.normal(size=n)
    return a.astype(dtype), b.astype(dtype), x.astype(dtype), rng


@pytest.mark.parametrize("direction", ["descent", "ascent", "orthogonal"])
def test_gradient_conflict_on_a_quadratic(direction):
    a, b, x, rng = _problem(5, 0)
    a64, x64 = a.astype(np.float64), x.astype(np.float64)
    g = a64 @ x64 + b
    eta = 0.1
    if direction == "descent":  # along -grad L_fit: the update helps the fit
        delta = -eta * g
    elif direction == "ascent":  # along +grad L_fit: the update damages it
        delta = eta * g
    else:  # orthogonal: no first-order effect, only the curvature term
        r = rng.normal(size=5)
        delta = 0.3 * (r - (r @ g) / (g @ g) * g)
    quad = 0.5 * delta @ a64 @ delta
    dd, vsd = gradient_conflict(
        _quadratic(jnp.asarray(a), jnp.asarray(b)),
        _split(jnp.asarray(x)),
        _split(jnp.asarray(delta, jnp.float32)),
    )
    assert dd.shape == () and vsd.shape == ()
    np.testing.assert_allclose(dd, g @ delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vsd, g @ delta + quad, rtol=1e-4, atol=1e-5)
    if direction == "descent":
        assert dd < 0 and vsd < 0
    elif direction == "ascent":
        assert dd > 0 and vsd > 0
    else:
        assert abs(float(dd)) < 1e-6 and vsd > 0
        np.testing.assert_allclose(vsd, quad, rtol=1e-4)


@hypothesis.given(
    n=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 10.0),
    definite=st.booleans(),
)
def test_vsd_is_dd_plus_the_curvature_term_for_any_quadratic(n, seed, scale, definite):
    # For a quadratic, L(theta + delta) - L(theta) = <grad, delta> + 1/2 delta^T H delta exactly
    # (in float64, to rounding), whether or not H is definite.
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(n, n))
        if definite:
            a = a @ a.T
        b, x = rng.normal(size=n), rng.normal(size=n)
        delta = scale * rng.normal(size=n)
        dd, vsd = _quadratic_conflict(*(jnp.asarray(v) for v in (a, b, x, delta)))
        hessian = (a + a.T) / 2
        curvature = 0.5 * delta @ hessian @ delta
        np.testing.assert_allclose(dd, (hessian @ x + b) @ delta, rtol=1e-9, atol=1e-9)
        size = 1.0 + abs(0.5 * x @ a @ x + b @ x) + abs(curvature) + abs(float(dd))
        np.testing.assert_allclose(vsd, dd + curvature, rtol=0, atol=1e-11 * size)


def test_guidance_update_cancels_the_optimiser_history():
    # Heavy-ball SGD from a state with momentum: U(g; s) - U(g'; s) = -lr (g - g'), whatever s
    # holds. The guidance step is what the guidance gradient adds, not the momentum.
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
    opt = optax.sgd(0.1, momentum=0.9)
    state = init_opt(opt, params)
    _, state = opt.update({"w": jnp.array([5.0, 5.0, 5.0]), "b": jnp.array(-4.0)}, state, params)
    fit = {"w": jnp.array([0.2, -0.1, 0.4]), "b": jnp.array(0.5)}
    guide = {"w": jnp.array([-1.0, 0.5, 0.0]), "b": jnp.array(2.0)}
    total = jax.tree_util.tree_map(lambda f, g: f + g, fit, guide)
    delta = guidance_update(opt, state, params, total, fit)
    np.testing.assert_allclose(delta["w"], -0.1 * guide["w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(delta["b"], -0.1 * guide["b"], rtol=1e-6)
    # Without guidance there is no guidance step, momentum or not.
    zero = guidance_update(opt, state, params, fit, fit)
    assert all(not np.any(np.asarray(v)) for v in jax.tree_util.tree_leaves(zero))


# --- the Stage II logs ------------------------------------------------------------------------

STEPS = 12
# Stage II's metrics before the conflict logs existed, per variant (and update of the probe).
BEFORE = {
    "mlp": {"loss", "fit_loss", "guide_q", "weight_mean", "positive_advantage", "capped_weights",
            "residual_norm"},
    "proj": {"loss", "recon_loss", "kl", "self_imitation_loss", "projected",
             "states_with_targets", "candidate_advantage", "weight_mean", "positive_advantage",
             "capped_weights"},
    "plas": {"loss", "guide_q", "residual_norm"},
}  # fmt: skip
CHECKS = {"mlp": _checks_mlp, "proj": _checks_proj, "plas": _checks_plas}
CONFLICT = {"conflict_dd", "conflict_vsd"}


def _run(variant, **overrides):
    """`STEPS` updates of Stage II's guided update: SPAR-MLP and SPAR-PLAS on one data action
    that lies away from the guidance (soft filtering keeps its weight), SPAR-PROJ on a mixed
    batch. SPAR-PLAS's decoder is the identity, so its latent actor's Q-ascent moves the
    action straight towards the corner (1, 1)."""
    filtering = "hard" if variant == "proj" else "soft"
    learner = _learner(_config(variant, lambda_g=1.0, filtering=filtering, **overrides))
    state = learner.init(jr.key(0), _anchor())
    if variant == "plas":
        state = eqx.tree_at(lambda s: s.generator, state, _identity_decoder(state.generator))
        batch = _batch(np.array([[-0.3, -0.2]]))
    elif variant == "mlp":
        batch = _batch(np.array([[-0.3, -0.2]]))
    else:
        batch = _batch(np.array([[0.3, 0.1], [0.1, 0.3], [-0.2, 0.1], [0.2, -0.3]]))
    method = "update_latent" if variant == "plas" else "update"
    run = _chunk(learner, method, STEPS, CHECKS[variant])
    return state, *run(state, batch, jr.key(1))


@pytest.mark.parametrize("variant", ["mlp", "proj", "plas"])
def test_log_conflict_adds_the_metrics_and_changes_nothing_else(variant):
    start, off_state, off = _run(variant)  # the field left out: its default, off
    _, on_state, on = _run(variant, log_conflict=True)
    checks = set(CHECKS[variant](start, start))
    assert set(off) == BEFORE[variant] | checks
    assert set(on) == set(off) | CONFLICT
    # Measuring is all it does: the training itself is the same.
    assert eqx.tree_equal(on_state, off_state, rtol=1e-6, atol=1e-7)
    for name in off:
        np.testing.assert_allclose(on[name], off[name], rtol=1e-6, atol=1e-7)
    dd, vsd = np.asarray(on["conflict_dd"]), np.asarray(on["conflict_vsd"])
    assert dd.shape == vsd.shape == (STEPS,)
    assert np.all(np.isfinite(dd)) and np.all(np.isfinite(vsd))
    if variant == "proj":
        # Eq. 10 as written pulls each latent onto the EMA target decoder's output at the same
        # latent; at step 0 target and online decoders agree, so there is (to rounding) no
        # guidance step. Once they drift apart the step is real, and it is measured on every
        # step, projection step (0 and 10 here) or not.
        assert abs(dd[0]) < 1e-8 and abs(vsd[0]) < 1e-8
        assert np.all(np.abs(dd[1:]) > 1e-6)
        assert np.asarray(on["projected"]).tolist() == [float(i % 10 == 0) for i in range(STEPS)]
    else:
        # The guidance pulls the action away from the only (weighted) data action: every
        # guidance step opposes the fit, to first order and in fact.
        moving = slice(0, 4)  # (SPAR-PLAS reaches the corner later, where its ascent stops)
        assert np.all(dd[moving] > 0) and np.all(vsd[moving] > 0)
        np.testing.assert_allclose(vsd[moving], dd[moving], rtol=0.5)  # second order is smaller


# --- the flag -------------------------------------------------------------------------------


def test_log_conflict_is_a_static_boolean_flag():
    (field,) = [h for h in hyperparameters(ResidualConfig) if h.path == "log_conflict"]
    assert field.flag == "--log-conflict" and field.static and field.kind is bool
    assert field.default is False and ResidualConfig().log_conflict is False
    config = ResidualConfig()
    object.__setattr__(config, "log_conflict", 1)  # bypass the runtime type checker
    with pytest.raises(ValueError, match="log_conflict"):
        config.__check_init__()


@pytest.mark.parametrize("value, expected", [(None, False), ("true", True), ("off", False)])
def test_log_conflict_on_the_command_line(value, expected):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    flag = [] if value is None else ["--log-conflict", value]
    config = config_from_args(parser.parse_args(["--out", "unused", *flag]))
    assert config.hyperparameters.residual.log_conflict is expected
