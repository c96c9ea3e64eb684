"""Frozen configurations for the three stages, with the paper's defaults (Tables 7 and 8)."""

import dataclasses
from typing import Literal

from ._weighting import FILTERINGS, SENSITIVITIES

Variant = Literal["mlp", "proj", "plas"]
VARIANTS = ("mlp", "proj", "plas")


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")


def _unit(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}.")


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """Stage I: the BC anchor and the critic ensemble (Section 3.1, Table 7, C.1.2).

    `expectile` is the paper's tau (0.5, or 0.9 on AntMaze) for `V`;
    `critic_expectile` is the expectile of the critics' own loss (Alg. 1 line 7;
    0.5 is the squared error, which in-sample IQL uses). `q_target`
    picks the bootstrap of the critics: `"value"` is in-sample IQL,
    `y = r + gamma V(s')` (the text of Section 3.1); `"policy"` is Algorithm 1
    line 6, `y = r + gamma mean_i Q'_i(s', pi_base(s'))`.
    """

    base_policy: Literal["deterministic", "gaussian"] = "deterministic"
    num_critics: int = 10
    width: int = 256
    depth: int = 2
    learning_rate: float = 3e-4
    grad_clip: float = 1.0
    gamma: float = 0.99
    expectile: float = 0.5
    critic_expectile: float = 0.5
    q_target: Literal["value", "policy"] = "value"
    polyak: float = 0.005

    def __post_init__(self):
        if self.base_policy not in ("deterministic", "gaussian"):
            raise ValueError(
                f"base_policy must be 'deterministic' or 'gaussian', got {self.base_policy!r}."
            )
        if self.q_target not in ("value", "policy"):
            raise ValueError(f"q_target must be 'value' or 'policy', got {self.q_target!r}.")
        if self.num_critics < 1 or self.width < 1 or self.depth < 1:
            raise ValueError(
                f"num_critics, width and depth must be positive, got {self.num_critics}, "
                f"{self.width}, {self.depth}."
            )
        _positive(learning_rate=self.learning_rate, grad_clip=self.grad_clip)
        _unit(gamma=self.gamma, polyak=self.polyak)
        for name in ("expectile", "critic_expectile"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}.")


@dataclasses.dataclass(frozen=True)
class ResidualConfig:
    """Stage II: residual learning (Sections 3.2.2-3.2.4, Tables 7 and 8, C.1.3).

    Critic subsets: the data weights use members `[0, data_critics)`, the
    guidance the next `guide_critics` members (wrapping around), and the gate
    (see `GateConfig`) the last `gate_critics`. The paper uses 4 of 10 for each
    but does not say which.
    """

    variant: Variant = "mlp"
    lambda_u: float = 0.5
    lambda_g: float = 0.5
    temperature: float = 1.0
    sensitivity: Literal["exp", "uniform"] = "exp"
    filtering: Literal["hard", "soft"] = "hard"
    max_weight: float = 100.0
    data_critics: int = 4
    guide_critics: int = 4
    learning_rate: float = 3e-4
    grad_clip: float = 1.0
    width: int = 256
    mlp_depth: int = 2
    cvae_depth: int = 3
    latent_dim: int = 16
    kl_weight: float = 0.5
    recon_weight: float = 1.0
    num_candidates: int = 64
    projection_period: int = 10
    target_tau: float = 0.005
    latent_policy_depth: int = 2
    max_latent: float = 2.0
    plas_vae_fraction: float = 0.5

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        if self.sensitivity not in SENSITIVITIES:
            raise ValueError(
                f"sensitivity must be one of {SENSITIVITIES}, got {self.sensitivity!r}."
            )
        if self.filtering not in FILTERINGS:
            raise ValueError(f"filtering must be one of {FILTERINGS}, got {self.filtering!r}.")
        _positive(
            temperature=self.temperature,
            max_weight=self.max_weight,
            learning_rate=self.learning_rate,
            grad_clip=self.grad_clip,
            max_latent=self.max_latent,
        )
        for name in (
            "data_critics",
            "guide_critics",
            "width",
            "mlp_depth",
            "cvae_depth",
            "latent_dim",
            "num_candidates",
            "projection_period",
            "latent_policy_depth",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.lambda_u < 0 or self.lambda_g < 0 or self.kl_weight < 0 or self.recon_weight < 0:
            raise ValueError(
                "lambda_u, lambda_g, kl_weight and recon_weight must be non-negative, got "
                f"{self.lambda_u}, {self.lambda_g}, {self.kl_weight}, {self.recon_weight}."
            )
        _unit(target_tau=self.target_tau)
        if not 0.0 < self.plas_vae_fraction < 1.0:
            raise ValueError(f"plas_vae_fraction must lie in (0, 1), got {self.plas_vae_fraction}.")


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Stage III: the value gate (eq. 12, Algorithm 5, C.1.4)."""

    enabled: bool = True
    num_candidates: int = 10
    eta_abs: float = 1e-4
    eta_rel: float = 0.01
    eps: float = 1e-6
    gate_critics: int = 4
    lambda_u: float = 0.5

    def __post_init__(self):
        if self.num_candidates < 1 or self.gate_critics < 1:
            raise ValueError(
                f"num_candidates and gate_critics must be positive, got {self.num_candidates} "
                f"and {self.gate_critics}."
            )
        _positive(eps=self.eps)
        if self.lambda_u < 0:
            raise ValueError(f"lambda_u must be non-negative, got {self.lambda_u}.")


def critic_subsets(
    num_critics: int, data: int, guide: int, gate: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Member indices for the data weights, the guidance and the gate.

    Data: `[0, data)`; guidance: the next `guide` members, wrapping around;
    gate: the last `gate` members. Each subset must fit in the ensemble.
    """
    for name, size in (("data", data), ("guide", guide), ("gate", gate)):
        if not 1 <= size <= num_critics:
            raise ValueError(
                f"the {name} critic subset needs between 1 and {num_critics} members "
                f"(the ensemble size), got {size}; lower it or raise --critics."
            )
    data_idx = tuple(range(data))
    guide_idx = tuple((data + i) % num_critics for i in range(guide))
    gate_idx = tuple(range(num_critics - gate, num_critics))
    return data_idx, guide_idx, gate_idx
