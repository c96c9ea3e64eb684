"""Per-task settings as overrides of the default configs: the SPAR paper's Table 8, and the
baselines' own published values for the same tasks where their papers give them."""

from typing import Any

from ._environments import Domain, domain_of

# name -> overrides: keys are `RunConfig` fields or "anchor.x" / "residual.x" / "gate.x".
_TABLE_8: dict[str, dict[str, Any]] = {}


def _add(names, task_env, **overrides):
    for name in names:
        _TABLE_8[name] = {"env_hint": task_env, **overrides}


_MR = {"residual.variant": "mlp", "residual.filtering": "hard", "residual.temperature": 1.0}
_ME = {"residual.variant": "proj", "residual.filtering": "hard", "residual.temperature": 0.3}
_PEN = {
    "residual.variant": "proj",
    "residual.filtering": "soft",
    "residual.temperature": 0.3,
    "anchor.base_policy": "gaussian",
}
_ANTMAZE = {
    "residual.variant": "proj",
    "residual.filtering": "soft",
    "residual.temperature": 0.3,
    "anchor.base_policy": "gaussian",
    "anchor.expectile": 0.9,
    "reward_transform": "antmaze",
}

_add(["halfcheetah-medium-replay"], "HalfCheetah", **_MR, **{"residual.lambda_g": 0.5})
_add(["hopper-medium-replay"], "Hopper", **_MR, **{"residual.lambda_g": 0.5})
_add(["walker2d-medium-replay"], "Walker2d", **_MR, **{"residual.lambda_g": 2.0})
_add(["halfcheetah-medium-expert"], "HalfCheetah", **_ME, **{"residual.lambda_g": 0.5})
_add(
    ["hopper-medium-expert"],
    "Hopper",
    **_ME,
    **{"residual.lambda_g": 0.5, "residual.lambda_u": 2.0, "gate.lambda_u": 2.0},
)
_add(["walker2d-medium-expert"], "Walker2d", **_ME, **{"residual.lambda_g": 2.0})
_add(["pen-cloned"], "Pen", **_PEN, **{"residual.lambda_g": 0.5})
_add(["pen-human"], "Pen", **_PEN, **{"residual.lambda_g": 0.5})
_add(["antmaze-umaze-diverse"], "AntMaze_UMaze", **_ANTMAZE, **{"residual.lambda_g": 2.0})
_add(["antmaze-large-diverse"], "AntMaze_Large", **_ANTMAZE, **{"residual.lambda_g": 0.5})

PRESETS: tuple[str, ...] = tuple(sorted(_TABLE_8))
_DOMAIN_NAMES = frozenset(domain_of(name).name for name in PRESETS)

# The baselines' published values (`{algo: {task or domain: overrides}}`): a task's own entry
# wins over its domain's; an algorithm with neither has no published settings for the task,
# and its preset is refused.
_REBRAC_ANTMAZE = {
    "actor_learning_rate": 3e-4, "critic_learning_rate": 5e-5, "gamma": 0.999, "batch_size": 256,
}  # fmt: skip
_REBRAC_ADROIT = {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4, "batch_size": 256}
# FQL (Park et al. 2025) tunes alpha per task; the authors' README's D4RL commands (Adroit
# with q_agg=min). It publishes no D4RL locomotion settings, so those presets are refused.
_FQL = {
    "pen-human": {"alpha": 10000.0, "q_agg": "min"},
    "pen-cloned": {"alpha": 10000.0, "q_agg": "min"},
    "antmaze-umaze-diverse": {"alpha": 10.0},
    "antmaze-large-diverse": {"alpha": 3.0},
}
_BASELINES: dict[str, dict[str, dict[str, Any]]] = {
    "fql": _FQL,
    # IQL (Kostrikov et al. 2022), App. B: locomotion tau 0.7, beta 3 (the defaults); AntMaze
    # tau 0.9, beta 10 (rewards r - 1: the "antmaze" transform, IQL's reward convention);
    # Kitchen and Adroit tau 0.7, beta 0.5 (IQL also uses actor dropout 0.1 there, which this
    # IQL does not have).
    "iql": {
        "mujoco": {},
        "antmaze": {"expectile": 0.9, "temperature": 10.0},
        "adroit": {"temperature": 0.5},
    },
    # Behaviour cloning has no task-specific settings.
    "bc": {"mujoco": {}, "antmaze": {}, "adroit": {}},
    # TD3+BC (Fujimoto and Gu 2021) publishes locomotion settings only (its defaults).
    "td3bc": {"mujoco": {}},
    # ReBRAC (Tarasov et al. 2023) tunes its two penalties per dataset; the values are the
    # authors' per-dataset configs as released in CORL (`configs/offline/rebrac/<task>/`):
    # locomotion at the defaults' rates and batch, AntMaze with gamma 0.999, actor / critic
    # rates 3e-4 / 5e-5 and batch 256 (rewards r - 1), Adroit with rates 3e-4 and batch 256.
    "rebrac": {
        "hopper-medium-replay": {"actor_bc_coef": 0.05, "critic_bc_coef": 0.5},
        "halfcheetah-medium-replay": {"actor_bc_coef": 0.01, "critic_bc_coef": 0.001},
        "walker2d-medium-replay": {"actor_bc_coef": 0.05, "critic_bc_coef": 0.01},
        "hopper-medium-expert": {"actor_bc_coef": 0.1, "critic_bc_coef": 0.01},
        "halfcheetah-medium-expert": {"actor_bc_coef": 0.01, "critic_bc_coef": 0.1},
        "walker2d-medium-expert": {"actor_bc_coef": 0.01, "critic_bc_coef": 0.01},
        "pen-cloned": {"actor_bc_coef": 0.05, "critic_bc_coef": 0.5, **_REBRAC_ADROIT},
        "pen-human": {"actor_bc_coef": 0.1, "critic_bc_coef": 0.5, **_REBRAC_ADROIT},
        "antmaze-umaze-diverse": {
            "actor_bc_coef": 0.003, "critic_bc_coef": 0.001, **_REBRAC_ANTMAZE,
        },
        "antmaze-large-diverse": {
            "actor_bc_coef": 0.002, "critic_bc_coef": 0.002, **_REBRAC_ANTMAZE,
        },
    },  # fmt: skip
}


def preset_domain(name: str) -> Domain:
    """The domain of preset `name`'s task (`"antmaze-umaze-diverse"` -> AntMaze)."""
    if name not in _TABLE_8:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return domain_of(name)


def preset_overrides(name: str, q_target: str = "value", algo: str = "spar") -> dict[str, Any]:
    """The settings of `algo` for task `name` (e.g. `"hopper-medium-replay"`), as field
    overrides: SPAR's Table 8, or a baseline's published values for the task's domain.

    Every preset also fixes Stage III's `eta_rel = 0.01` and `lambda_u = 0.5` unless
    listed otherwise (Hopper medium-expert uses `lambda_u = 2`). Stage I's tau (0.9 on
    AntMaze) is V's expectile under `q_target="value"`; under `"policy"` (Algorithm 1)
    V is unused, so the same tau goes on the critics' expectile instead.

    IQL's presets are IQL's App. B values for the task's domain (AntMaze: tau 0.9, beta 10;
    Adroit: beta 0.5); ReBRAC's are the authors' per-dataset values (its two penalties
    everywhere, and AntMaze's and Adroit's rates, batch and discount); BC's change nothing;
    TD3+BC has presets for the MuJoCo tasks only (its defaults), and a `KeyError` says so
    for the others.

    **Arguments:** `name`, a preset; `q_target`, the critic bootstrap it will be used with
    (SPAR); `algo`, a registered algorithm.

    **Returns:** `{path: value}` overrides of `RunConfig` fields and SPAR's hyperparameters.
    """
    domain = preset_domain(name)
    if algo != "spar":
        published = _BASELINES.get(algo, {})
        found = published.get(name, published.get(domain.name))
        if found is None:
            covered = sorted({key if key in _DOMAIN_NAMES else domain_of(key).name
                              for key in published})  # fmt: skip
            raise KeyError(
                f"{algo} publishes no settings for {domain.name} tasks such as {name!r} (only "
                f"for {' and '.join(covered) or 'no'} tasks), so there is no preset for it; "
                "train without --preset (its defaults) and give any setting you choose as a "
                "flag."
            )
        return dict(found)
    overrides = {k: v for k, v in _TABLE_8[name].items() if k != "env_hint"}
    if q_target == "policy" and "anchor.expectile" in overrides:
        overrides["anchor.critic_expectile"] = overrides.pop("anchor.expectile")
    overrides.setdefault("residual.lambda_u", 0.5)
    overrides.setdefault("gate.lambda_u", overrides["residual.lambda_u"])
    overrides.setdefault("gate.eta_rel", 0.01)
    return overrides
