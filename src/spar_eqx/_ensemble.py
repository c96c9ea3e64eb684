"""A critic ensemble held as one module with stacked parameters."""

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._networks import Activation, QNetwork


class QStats(NamedTuple):
    """Ensemble statistics at one state-action pair (eq. 1).

    **Fields:**

    - `mean`: `mu_Q(s, a)`, the members' mean.
    - `std`: `sigma_Q(s, a)`, their population standard deviation (ddof=0; 0 for one member).
    - `lcb`: `Q_rob(s, a) = mu_Q - lambda_u * sigma_Q`, the lower confidence bound of eq. (1).
    """

    mean: Float[Array, ""]
    std: Float[Array, ""]
    lcb: Float[Array, ""]


class CriticEnsemble(eqx.Module):
    """`M` Q-networks with stacked parameters (leading axis `M` on every array leaf).

    Built with `eqx.filter_vmap` over `M` keys and applied with
    `eqx.filter_vmap(in_axes=(eqx.if_array(0), None, None))`: there is no Python
    loop over members, so an ensemble of 10 costs one batched matmul per layer.
    `layer_norm=True` gives every member LayerNorm hidden layers (see `QNetwork`; ReBRAC's
    critics); the default is the plain MLP.

    SPAR's Stage I trains `M = 10` members (Table 7) and scores actions with
    `Q_rob = mean - lambda_u * std` over a subset of them (eq. 1; `select`, `lcb`).
    """

    members: QNetwork

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_members: int = 10,
        width: int = 256,
        depth: int = 2,
        *,
        key: PRNGKeyArray,
        layer_norm: bool = False,
        activation: Activation = "relu",
    ):
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a`.
        - `num_members`: `M >= 1` (10 in SPAR, Table 7; 2 for the baselines' clipped double Q).
        - `width`, `depth`: every member's hidden width and number of hidden layers.
        - `key`: split into `M` keys, one per member (keyword-only); members differ only by it.
        - `layer_norm`: LayerNorm after every hidden activation (ReBRAC's and FQL's critics).
        - `activation`: `"relu"` (default) or `"gelu"` (FQL's critics).
        """
        if num_members < 1:
            raise ValueError(f"num_members must be at least 1, got {num_members}.")
        make = lambda k: QNetwork(
            obs_dim, act_dim, width, depth, key=k, layer_norm=layer_norm, activation=activation
        )
        self.members = eqx.filter_vmap(make)(jr.split(key, num_members))

    def __check_init__(self):
        sizes = {x.shape[0] for x in jax.tree_util.tree_leaves(self.members) if eqx.is_array(x)}
        if len(sizes) != 1:
            raise ValueError(
                "every array leaf of `members` must share one leading (member) axis, "
                f"found leading sizes {sorted(sizes)}."
            )

    @property
    def num_members(self) -> int:
        """`M`, read off the stacked parameters."""
        leaves = [x for x in jax.tree_util.tree_leaves(self.members) if eqx.is_array(x)]
        return leaves[0].shape[0]

    @property
    def obs_dim(self) -> int:
        return self.members.obs_dim

    @property
    def act_dim(self) -> int:
        return self.members.act_dim

    @property
    def layer_norm(self) -> bool:
        """Whether the members normalise their hidden layers (a static field of `QNetwork`)."""
        return self.members.layer_norm

    def __call__(
        self, obs: Float[Array, " obs_dim"], action: Float[Array, " act_dim"]
    ) -> Float[Array, " members"]:
        """Every member's `Q(s, a)`, in one vmapped call.

        **Arguments:** `obs` and `action`, one state-action pair.

        **Returns:** `(Q_1(s, a), ..., Q_M(s, a))`, shape `(M,)`.
        """
        apply = lambda member, o, a: member(o, a)
        return eqx.filter_vmap(apply, in_axes=(eqx.if_array(0), None, None))(
            self.members, obs, action
        )

    def batch(
        self, obs: Float[Array, "n obs_dim"], action: Float[Array, "n act_dim"]
    ) -> Float[Array, "n members"]:
        """Every member's `Q` on a batch of pairs: the values of `jax.vmap(self)(obs, action)`.

        Computed member by member over the whole batch (the members' axis outermost, one
        transpose at the end), which XLA runs as plain batched matrix products; vmapping the
        per-pair call instead puts the batch outermost and costs a transpose per layer (about
        8% of a Stage I update on a CPU).

        **Arguments:** `obs` and `action`, `n` state-action pairs.

        **Returns:** `Q_i(s_j, a_j)` at `[j, i]`, shape `(n, M)`.
        """
        apply = lambda member: jax.vmap(member)(obs, action)
        return eqx.filter_vmap(apply)(self.members).T

    def select(self, indices: Sequence[int]) -> "CriticEnsemble":
        """The sub-ensemble of the members at `indices` (static Python ints, unique).

        SPAR scores its data weights, its guidance and its gate with subsets of the Stage I
        ensemble (`M_data`, `M_guide`, `M_rect`, Table 7; see `spar_eqx.critic_subsets`).

        **Arguments:** `indices`, a non-empty sequence of distinct member indices in `[0, M)`.

        **Returns:** a `CriticEnsemble` of `len(indices)` members sharing those members'
        parameters, in the order given. Raises `ValueError` for an empty, repeated or
        out-of-range index list.
        """
        idx = tuple(int(i) for i in indices)
        if not idx:
            raise ValueError("a critic subset needs at least one member index, got none.")
        if len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= self.num_members:
            raise ValueError(
                f"critic subset {idx} must hold unique indices in [0, {self.num_members}); "
                f"this ensemble has {self.num_members} members."
            )
        take = np.asarray(idx)
        members = jax.tree_util.tree_map(lambda x: x[take] if eqx.is_array(x) else x, self.members)
        return eqx.tree_at(lambda e: e.members, self, members)

    def stats(
        self,
        obs: Float[Array, " obs_dim"],
        action: Float[Array, " act_dim"],
        lambda_u: float | Float[Array, ""],
    ) -> QStats:
        """Mean, standard deviation (over members, ddof=0) and `mean - lambda_u * std` (eq. 1).

        **Arguments:** `obs` and `action`, one state-action pair; `lambda_u`, the uncertainty
        weight (Table 8; a float or a traced scalar, so it can be swept).

        **Returns:** a `QStats` of three scalars.
        """
        q = self(obs, action)
        mean, std = jnp.mean(q), jnp.std(q)
        return QStats(mean, std, mean - lambda_u * std)

    def lcb(
        self,
        obs: Float[Array, " obs_dim"],
        action: Float[Array, " act_dim"],
        lambda_u: float | Float[Array, ""],
    ) -> Float[Array, ""]:
        """The robust score `Q_rob(s, a) = mean - lambda_u * std` (eq. 1).

        **Arguments:** as `stats`.

        **Returns:** `Q_rob(s, a)`, a scalar; `stats(...).lcb` exactly.
        """
        return self.stats(obs, action, lambda_u).lcb
