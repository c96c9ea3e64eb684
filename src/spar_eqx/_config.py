"""SPAR's configurations, with the paper's defaults (Tables 7 and 8).

Each is an `eqx.Module` built from `hyper(...)` fields: float hyperparameters are
leaves (a sweep vmaps them like seeds), while sizes, counts and modes are static.
Invariants are checked in `__check_init__` on the Python values a user gives.
"""

from typing import Literal

import equinox as eqx

from ._components import ANCHOR_POLICIES, GENERATORS
from ._hyper import (
    Scalar,
    check_choice,
    check_count,
    check_non_negative,
    check_open_unit,
    check_positive,
    check_unit,
    hyper,
)
from ._weighting import FILTERINGS, SENSITIVITIES

Variant = Literal["mlp", "proj", "plas", "auto"]
VARIANTS = ("mlp", "proj", "plas", "auto")
SELF_IMITATION = ("literal", "convex")
PLAS_OBJECTIVES = ("literal", "fit")
# `--base-policy` and `--generator` take the names of the tables of parts: a new anchor or
# generator is one module and one line of `_components`.
BASE_POLICIES = tuple(ANCHOR_POLICIES)
GENERATOR_KINDS = tuple(GENERATORS)


def _one_of(names: tuple[str, ...]) -> str:
    """`'a', 'b' or 'c'`, for a flag's help."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# One flag, one field in each of two stages: declared once so the twins cannot drift apart.
def _grad_clip():
    return hyper(
        1.0, "--grad-clip", "global-norm gradient clip, both stages",
        paper="Table 7, *Gradient clipping* (global norm)", paper_value=1.0,
    )  # fmt: skip


def _flow_steps():
    return hyper(
        10, "--flow-steps", "Euler steps of every flow (a flow anchor, a flow generator)",
        static=True,
        paper="not in the paper (C.2.4 gives no integrator); FQL's `flow_steps` (Park et al. "
              "2025)", paper_value=10,
    )  # fmt: skip


def _lambda_u():
    return hyper(
        0.5, "--lambda-u", "uncertainty weight in Q_rob, Stages II and III",
        paper=r"Table 8, $\lambda_u$: 0.5, 2 on Hopper medium-expert (Table 7: task-dependent)",
        paper_value=0.5,
    )  # fmt: skip


class AnchorConfig(eqx.Module):
    """Stage I: the BC anchor and the critic ensemble (Section 3.1, Table 7, C.1.2).

    `expectile` is the paper's tau (0.5, or 0.9 on AntMaze) for `V`;
    `critic_expectile` is the expectile of the critics' own loss (Alg. 1 line 7;
    0.5 is the squared error, which in-sample IQL uses). `q_target` picks the bootstrap
    of the critics: `"value"` is in-sample IQL, `y = r + gamma V(s')` (the text of
    Section 3.1); `"policy"` is Algorithm 1 line 6,
    `y = r + gamma mean_i Q'_i(s', pi_base(s'))`. With `"policy"` the value network
    is not used, so `expectile` must stay 0.5: Stage I's tau then belongs on
    `critic_expectile`.

    **Fields** (flag, default, source):

    - `base_policy` (`--base-policy`, `"deterministic"`; `"gaussian"` for Adroit and AntMaze,
      Table 8; `"flow"`, a flow-matching anchor, Appendix C.2.4 and `spar_eqx.FlowPolicy`)
    - `flow_steps` (`--flow-steps`, 10): Euler steps of a flow anchor (FQL's `flow_steps`)
    - `num_critics` (`--critics`, 10, Table 7)
    - `width`, `depth` (`--hidden` 256, `--layers` 2, Table 7)
    - `learning_rate` (`--lr`, 3e-4), `grad_clip` (`--grad-clip`, 1.0), `gamma` (`--gamma`,
      0.99): Table 7
    - `expectile` (`--expectile`, 0.5; 0.9 on AntMaze), `critic_expectile`
      (`--critic-expectile`, 0.5)
    - `q_target` (`--q-target`, `"value"`), `polyak` (`--polyak`, 0.005)
    """

    base_policy: str = hyper(  # a name of `_components.ANCHOR_POLICIES`
        "deterministic", "--base-policy", f"BC anchor: {_one_of(BASE_POLICIES)}",
        static=True, choices=BASE_POLICIES,
        paper="C.1.2, *Policy type*: deterministic on MuJoCo, Gaussian on Adroit and AntMaze "
              "(`--preset`); a flow-matching base in Appendix C.2.4 (Tables 12, 13)",
    )  # fmt: skip
    flow_steps: int = _flow_steps()
    num_critics: int = hyper(
        10, "--critics", "critic ensemble size M", static=True,
        paper="Table 7, *Total critics*", paper_value=10,
    )  # fmt: skip
    width: int = hyper(
        256, "--hidden", "hidden width of policy, critics and V", static=True,
        paper="Table 7, *Hidden dimension (MLP/CVAE)*", paper_value=256,
    )  # fmt: skip
    depth: int = hyper(
        2, "--layers", "hidden layers of policy, critics and V", static=True,
        paper="not given for the anchor and critics (Table 7 gives two hidden layers for the MLP "
              "residual and the latent policy)",
    )  # fmt: skip
    learning_rate: Scalar = hyper(
        3e-4, "--lr", "Stage I Adam learning rate",
        paper="C.1.2, *Learning rates*: all networks", paper_value=3e-4,
    )  # fmt: skip
    grad_clip: Scalar = _grad_clip()
    gamma: Scalar = hyper(
        0.99, "--gamma", "discount",
        paper=r"Table 7, *Discount factor* $\gamma$", paper_value=0.99,
    )  # fmt: skip
    expectile: Scalar = hyper(
        0.5, "--expectile", "expectile tau of V (0.9 on AntMaze)",
        paper=r"Table 8, Stage I $\tau$; Section 3.1, C.1.2 (0.9 on AntMaze, `--preset`)",
        paper_value=0.5,
    )  # fmt: skip
    critic_expectile: Scalar = hyper(
        0.5, "--critic-expectile", "expectile of the critic loss",
        paper=r"Algorithm 1 line 7, $\rho_\tau$ with $\tau = 0.5$", paper_value=0.5,
    )  # fmt: skip
    q_target: Literal["value", "policy"] = hyper(
        "value", "--q-target", "critic bootstrap: 'value' (IQL) or 'policy' (Alg. 1)",
        static=True, choices=("value", "policy"),
        paper="Section 3.1 (in-sample, `value`) or Algorithm 1 line 6 (`policy`): "
              "the paper gives both",
    )  # fmt: skip
    polyak: Scalar = hyper(
        0.005, "--polyak", "target-critic Polyak rate",
        paper=r"C.1.2, $\tau_\text{polyak}$", paper_value=0.005,
    )  # fmt: skip

    def __check_init__(self):
        check_choice("base_policy", self.base_policy, BASE_POLICIES)
        check_choice("q_target", self.q_target, ("value", "policy"))
        check_count(
            num_critics=self.num_critics,
            width=self.width,
            depth=self.depth,
            flow_steps=self.flow_steps,
        )
        check_positive(learning_rate=self.learning_rate, grad_clip=self.grad_clip)
        check_unit(gamma=self.gamma, polyak=self.polyak)
        check_open_unit(expectile=self.expectile, critic_expectile=self.critic_expectile)
        if self.q_target == "policy" and isinstance(self.expectile, float | int):
            if self.expectile != 0.5:
                raise ValueError(
                    f"expectile={self.expectile} sets V's expectile, but q_target='policy' "
                    "bootstraps from the critics and never uses V; put Stage I's tau on "
                    "critic_expectile (--critic-expectile) instead."
                )


class ResidualConfig(eqx.Module):
    """Stage II: residual learning (Sections 3.2.2-3.2.4, Tables 7 and 8, C.1.3).

    Critic subsets: the data weights use members `[0, data_critics)`, the
    guidance the next `guide_critics` members (wrapping around), and the gate
    (see `GateConfig`) the last `gate_critics`. The paper uses 4 of 10 for each
    but does not say which.

    **Fields** (flag, default, source; the API reference's table of this class is generated from
    the fields themselves):

    - `variant` (`--variant`, `"mlp"`): Stage II residual, Table 8; `"auto"` lets the trainer
      diagnose Stage I's anchors and choose `"mlp"` or `"proj"` (`spar_eqx.diagnostics`)
    - `generator` (`--generator`, `"cvae"`): the residual generator of SPAR-PROJ and SPAR-PLAS,
      the CVAE of eq. 8 or `"flow"`, a flow-matching generator (Appendix C.2.4,
      `spar_eqx.ResidualFlow`); SPAR-MLP has none. `flow_steps` (`--flow-steps`, 10): its
      Euler steps
    - `lambda_u` (`--lambda-u`, 0.5), `lambda_g` (`--lambda-g`, 0.5), `temperature`
      (`--temperature`, 1.0), `sensitivity` (`--weighting`, `"exp"`), `filtering`
      (`--filter`, `"hard"`): Table 8
    - `max_weight` (`--max-weight`, 100): the cap on exponential weights (as in IQL)
    - `data_critics`, `guide_critics` (`--data-critics`, `--guide-critics`, 4 each), Table 7
    - `learning_rate` (`--residual-lr`, 3e-4), `grad_clip` (1.0, set by `--grad-clip`), Table 7
    - `width` (`--residual-hidden`, 256), `mlp_depth` (`--residual-layers`, 2),
      `cvae_depth` (`--cvae-layers`, 3), `latent_dim` (`--latent-dim`, 16), Table 7
    - `kl_weight` (`--kl-weight`, 0.5), `recon_weight` (`--recon-weight`, 1.0), eq. 8
    - `num_candidates` (`--candidates`, 64), `projection_period` (`--projection-period`, 10),
      `target_tau` (`--target-tau`, 0.005): Alg. 4
    - `self_imitation` (`--self-imitation`, `"literal"`): eq. 10 as written, each decoded latent
      regressed onto the target decoder's output at the same latent (its gradient is zero while
      online and target decoders agree); `"convex"` regresses every latent onto the
      omega-weighted combination `sum_k omega_k delta_k`, the minimiser Proposition 3.3(i)
      describes
    - `latent_policy_depth` (`--latent-layers`, 2), `max_latent` (`--max-latent`, 2.0),
      `plas_vae_fraction` (`--plas-vae-fraction`, 0.5): SPAR-PLAS, Alg. 3
    - `plas_objective` (`--plas-objective`, `"literal"`): SPAR-PLAS's latent loss, Algorithm 3's
      `-lambda_g E[Q_rob]` alone (under Adam `lambda_g` then cancels, and 0 trains nothing), or
      `"fit"`, `recon_weight E[w ||G(s, a_base, pi_z) - delta||^2] - lambda_g E[Q_rob]`, the
      reading under which Table 4's three SPAR-PLAS rows differ
    - `log_conflict` (`--log-conflict`, False): also measure the gradient-conflict metrics of
      Section 4.3 (Table 3) on every Stage II guidance update and log them as `conflict_dd`
      and `conflict_vsd` (see `gradient_conflict`); off, the update is unchanged
    """

    variant: Variant = hyper(
        "mlp",
        "--variant",
        "Stage II residual: mlp, proj, plas, or auto (chosen by diagnosing the anchor)",
        static=True,
        choices=VARIANTS,
        paper="Table 8, *Arch*: MLP on MuJoCo medium-replay, PROJ elsewhere (`--preset`)",
    )
    generator: str = hyper(  # a name of `_components.GENERATORS`
        "cvae", "--generator", f"residual generator of proj and plas: {_one_of(GENERATOR_KINDS)}",
        static=True, choices=GENERATOR_KINDS,
        paper="Section 3.2.3 (a CVAE); flow-based generators in Appendix C.2.4 (Tables 12, 13)",
        paper_value="cvae",
    )  # fmt: skip
    flow_steps: int = _flow_steps()
    lambda_u: Scalar = _lambda_u()
    lambda_g: Scalar = hyper(
        0.5, "--lambda-g", "guidance weight lambda_g",
        paper=r"Table 8, $\lambda_g$: 0.5 or 2.0 by task (`--preset`)",
    )  # fmt: skip
    temperature: Scalar = hyper(
        1.0, "--temperature", "weight temperature T",
        paper="Table 8, *T*: 1.0 on MuJoCo medium-replay, 0.3 elsewhere (`--preset`)",
    )  # fmt: skip
    sensitivity: Literal["exp", "uniform"] = hyper(
        "exp", "--weighting", "'exp' or 'uniform' weights", static=True, choices=SENSITIVITIES,
        paper="Section 3.2.2, *Sensitivity*; Algorithm 2 line 6 (exponential)", paper_value="exp",
    )  # fmt: skip
    filtering: Literal["hard", "soft"] = hyper(
        "hard", "--filter", "'hard' or 'soft' filtering", static=True, choices=FILTERINGS,
        paper="Table 8, *Filter*: hard on MuJoCo, soft on Adroit and AntMaze (`--preset`)",
    )  # fmt: skip
    max_weight: Scalar = hyper(
        100.0, "--max-weight", "cap on exp weights",
        paper="not in the paper (the cap of IQL and AWR)",
    )  # fmt: skip
    data_critics: int = hyper(
        4, "--data-critics", "critics for the data weights", static=True,
        paper=r"Table 7, *Data critics subset* $M_\text{data}$", paper_value=4,
    )  # fmt: skip
    guide_critics: int = hyper(
        4, "--guide-critics", "critics for the guidance", static=True,
        paper=r"Table 7, *Guide critics subset* $M_\text{guide}$", paper_value=4,
    )  # fmt: skip
    learning_rate: Scalar = hyper(
        3e-4, "--residual-lr", "Stage II Adam learning rate",
        paper="C.1.2, *Learning rates*: all networks", paper_value=3e-4,
    )  # fmt: skip
    grad_clip: Scalar = _grad_clip()
    width: int = hyper(
        256, "--residual-hidden", "hidden width of residual models", static=True,
        paper="Table 7, *Hidden dimension (MLP/CVAE)*", paper_value=256,
    )  # fmt: skip
    mlp_depth: int = hyper(
        2, "--residual-layers", "hidden layers of SPAR-MLP's residual", static=True,
        paper="Table 7, *MLP residual hidden dims* (256, 256)", paper_value=2,
    )  # fmt: skip
    cvae_depth: int = hyper(
        3, "--cvae-layers", "hidden layers of encoder and decoder", static=True,
        paper="Table 7, *Number of hidden layers* (encoder/decoder)", paper_value=3,
    )  # fmt: skip
    latent_dim: int = hyper(
        16, "--latent-dim", "CVAE latent dimension", static=True,
        paper="Table 7, *CVAE latent dimension* $d_z$", paper_value=16,
    )  # fmt: skip
    kl_weight: Scalar = hyper(
        0.5, "--kl-weight", "CVAE KL weight beta",
        paper=r"Table 7, *CVAE KL weight* $\beta_\text{KL}$; eq. (8)", paper_value=0.5,
    )  # fmt: skip
    recon_weight: Scalar = hyper(
        1.0, "--recon-weight", "CVAE reconstruction weight",
        paper="Table 7, *CVAE reconstruction weight*", paper_value=1.0,
    )  # fmt: skip
    num_candidates: int = hyper(
        64, "--candidates", "SPAR-PROJ latent candidates K", static=True,
        paper="C.1.3, *Candidate samples* $K$; Algorithm 4", paper_value=64,
    )  # fmt: skip
    projection_period: int = hyper(
        10, "--projection-period", "steps between projections", static=True,
        paper="C.1.3, *Projection period*", paper_value=10,
    )  # fmt: skip
    target_tau: Scalar = hyper(
        0.005, "--target-tau", "EMA rate of the target CVAE",
        paper=r"C.1.3, *Target network EMA* $\tau_\text{target}$", paper_value=0.005,
    )  # fmt: skip
    self_imitation: Literal["literal", "convex"] = hyper(
        "literal", "--self-imitation",
        "latent self-imitation target: 'literal' (eq. 10, per latent) or 'convex' (Prop. 3.3(i))",
        static=True, choices=SELF_IMITATION,
        paper="eq. (10) read literally (`literal`) or Proposition 3.3(i) (`convex`); the paper "
              "does not say which its code does",
    )  # fmt: skip
    latent_policy_depth: int = hyper(
        2, "--latent-layers", "SPAR-PLAS latent policy layers", static=True,
        paper="Table 7, *Latent policy hidden dims* (256, 256)", paper_value=2,
    )  # fmt: skip
    max_latent: float = hyper(
        2.0, "--max-latent", "SPAR-PLAS latent bound", static=True,
        paper="not in the paper (Algorithm 3 leaves the bound open)",
    )  # fmt: skip
    plas_objective: Literal["literal", "fit"] = hyper(
        "literal", "--plas-objective",
        "SPAR-PLAS latent loss: 'literal' (-lambda_g Q_rob, Alg. 3) or 'fit' (weighted fit "
        "+ lambda_g guidance, as eq. 7)",
        static=True, choices=PLAS_OBJECTIVES,
        paper="Algorithm 3 read literally (`literal`), or the reading under which Table 4's "
              "SPAR-PLAS rows and Table 3's PLAS conflict exist (`fit`)",
    )  # fmt: skip
    plas_vae_fraction: float = hyper(
        0.5, "--plas-vae-fraction", "SPAR-PLAS share of Stage II for the CVAE", static=True,
        paper="not in the paper (Algorithm 3 does not split Stage II's budget)",
    )  # fmt: skip
    log_conflict: bool = hyper(
        False, "--log-conflict",
        "log the gradient-conflict metrics DD and VSD of each guidance step (Section 4.3)",
        static=True,
        paper="Section 4.3 (Table 3): a measurement, off by default; "
              "not a hyperparameter of the paper",
    )  # fmt: skip

    def __check_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_choice("sensitivity", self.sensitivity, SENSITIVITIES)
        check_choice("filtering", self.filtering, FILTERINGS)
        check_choice("self_imitation", self.self_imitation, SELF_IMITATION)
        check_choice("generator", self.generator, GENERATOR_KINDS)
        check_choice("plas_objective", self.plas_objective, PLAS_OBJECTIVES)
        if self.variant == "mlp" and self.generator != "cvae":
            raise ValueError(
                f"generator={self.generator!r} (--generator) is the residual generator of "
                "SPAR-PROJ and SPAR-PLAS, but variant='mlp' has a deterministic residual and "
                "no generator; choose --variant proj or plas, or drop --generator."
            )
        check_positive(
            temperature=self.temperature,
            max_weight=self.max_weight,
            learning_rate=self.learning_rate,
            grad_clip=self.grad_clip,
            max_latent=self.max_latent,
        )
        check_count(
            data_critics=self.data_critics,
            guide_critics=self.guide_critics,
            width=self.width,
            mlp_depth=self.mlp_depth,
            cvae_depth=self.cvae_depth,
            latent_dim=self.latent_dim,
            num_candidates=self.num_candidates,
            projection_period=self.projection_period,
            latent_policy_depth=self.latent_policy_depth,
            flow_steps=self.flow_steps,
        )
        check_non_negative(
            lambda_u=self.lambda_u,
            lambda_g=self.lambda_g,
            kl_weight=self.kl_weight,
            recon_weight=self.recon_weight,
        )
        check_unit(target_tau=self.target_tau)
        check_open_unit(plas_vae_fraction=self.plas_vae_fraction)
        if not isinstance(self.log_conflict, bool):
            raise ValueError(f"log_conflict must be True or False, got {self.log_conflict!r}.")


class GateConfig(eqx.Module):
    """Stage III: the value gate (eq. 12, Algorithm 5, C.1.4).

    **Fields** (flag, default, source):

    - `num_candidates` (`--gate-candidates`, 10): candidates K, C.1.4
    - `eta_abs` (`--eta-abs`, 1e-4), `eta_rel` (`--eta-rel`, 0.01), `eps` (`--gate-eps`, 1e-6):
      eq. 12
    - `gate_critics` (`--gate-critics`, 4): the last members of the ensemble, Table 7
    - `lambda_u` (0.5, set by `--lambda-u` together with Stage II's): Table 8
    """

    num_candidates: int = hyper(
        10, "--gate-candidates", "Stage III candidates K", static=True,
        paper="C.1.4, *Candidate sampling* $K$", paper_value=10,
    )  # fmt: skip
    eta_abs: Scalar = hyper(
        1e-4, "--eta-abs", "gate absolute threshold",
        paper=r"C.1.4, $\eta_\text{abs}$; eq. (12), Algorithm 5", paper_value=1e-4,
    )  # fmt: skip
    eta_rel: Scalar = hyper(
        0.01, "--eta-rel", "gate relative threshold",
        paper=r"Table 8, $\eta$ (every task); C.1.4, $\eta_\text{rel}$", paper_value=0.01,
    )  # fmt: skip
    eps: Scalar = hyper(
        1e-6, "--gate-eps", "epsilon of the relative threshold",
        paper=r"eq. (12), $\epsilon$ (its value is not given)",
    )  # fmt: skip
    gate_critics: int = hyper(
        4, "--gate-critics", "critics for the gate", static=True,
        paper=r"Table 7, *Rectification critics* $M_\text{rect}$", paper_value=4,
    )  # fmt: skip
    lambda_u: Scalar = _lambda_u()

    def __check_init__(self):
        check_count(num_candidates=self.num_candidates, gate_critics=self.gate_critics)
        check_positive(eps=self.eps)
        check_non_negative(lambda_u=self.lambda_u)


def critic_subsets(
    num_critics: int, data: int, guide: int, gate: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Member indices for the data weights, the guidance and the gate.

    Data: `[0, data)`; guidance: the next `guide` members, wrapping around;
    gate: the last `gate` members. Each subset must fit in the ensemble.

    **Returns:** `(data, guide, gate)` index tuples.
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


class SPARConfig(eqx.Module):
    """SPAR's whole configuration: the three stages and the batch size (Table 7).

    **Fields:** `anchor` (`AnchorConfig`), `residual` (`ResidualConfig`), `gate`
    (`GateConfig`), `batch_size` (`--batch-size`, 256, Table 7).
    """

    anchor: AnchorConfig = AnchorConfig()
    residual: ResidualConfig = ResidualConfig()
    gate: GateConfig = GateConfig()
    batch_size: int = hyper(
        256, "--batch-size", "transitions per update", static=True,
        paper="Table 7, *Batch size*", paper_value=256,
    )  # fmt: skip

    def __check_init__(self):
        check_count(batch_size=self.batch_size)
        critic_subsets(
            self.anchor.num_critics,
            self.residual.data_critics,
            self.residual.guide_critics,
            self.gate.gate_critics,
        )
