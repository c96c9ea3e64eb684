"""The tables of SPAR's interchangeable parts: anchors (Stage I) and residual generators
(Stage II). A new anchor or generator is one module implementing `AbstractAnchorPolicy` or
`AbstractResidualGenerator` and one line here: `--base-policy` and `--generator` (`_config`'s
`BASE_POLICIES` and `GENERATOR_KINDS`) take these tables' names."""

from collections.abc import Callable
from typing import Any

from jaxtyping import PRNGKeyArray

from ._flow import FlowPolicy, ResidualFlow
from ._generator import AbstractResidualGenerator
from ._networks import AbstractAnchorPolicy, DeterministicPolicy, TanhGaussianPolicy
from ._residual import ResidualCVAE

# `(AnchorConfig, obs_dim, act_dim, key) -> anchor`, by `--base-policy`.
ANCHOR_POLICIES: dict[str, Callable[[Any, int, int, PRNGKeyArray], AbstractAnchorPolicy]] = {
    "deterministic": lambda c, o, a, key: DeterministicPolicy(o, a, c.width, c.depth, key=key),
    "gaussian": lambda c, o, a, key: TanhGaussianPolicy(o, a, c.width, c.depth, key=key),
    "flow": lambda c, o, a, key: FlowPolicy(o, a, c.width, c.depth, steps=c.flow_steps, key=key),
}

# `(ResidualConfig, obs_dim, act_dim, key) -> generator`, by `--generator`.
GENERATORS: dict[str, Callable[[Any, int, int, PRNGKeyArray], AbstractResidualGenerator]] = {
    "cvae": lambda c, o, a, key: ResidualCVAE(o, a, c.latent_dim, c.width, c.cvae_depth, key=key),
    "flow": lambda c, o, a, key: ResidualFlow(o, a, c.width, c.cvae_depth, c.flow_steps, key=key),
}
