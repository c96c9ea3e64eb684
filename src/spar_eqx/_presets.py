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

# The baselines' published values by domain (`{algo: {domain: overrides}}`); a domain missing
# here has no published settings for that algorithm, and its presets are refused for it.
_BASELINES: dict[str, dict[str, dict[str, Any]]] = {
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
    # TD3+BC (Fujimoto and Gu 2021) publishes locomotion settings only.
    "td3bc": {"mujoco": {}},
    # ReBRAC's defaults here are its hopper-medium-replay values (Tarasov et al. 2023,
    # Table 7); its AntMaze and Adroit values are not transcribed yet.
    "rebrac": {"mujoco": {}},
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
    Adroit: beta 0.5); BC's change nothing; TD3+BC and ReBRAC have presets for the MuJoCo
    tasks only (their defaults), and a `KeyError` says so for the others.

    **Arguments:** `name`, a preset; `q_target`, the critic bootstrap it will be used with
    (SPAR); `algo`, a registered algorithm.

    **Returns:** `{path: value}` overrides of `RunConfig` fields and SPAR's hyperparameters.
    """
    domain = preset_domain(name)
    if algo != "spar":
        published = _BASELINES.get(algo, {})
        if domain.name not in published:
            raise KeyError(
                f"{algo} publishes no settings for {domain.name} tasks such as {name!r}, so "
                "there is no preset for it; train without --preset (its defaults, from "
                "locomotion) and give any setting you choose as a flag."
            )
        return dict(published[domain.name])
    overrides = {k: v for k, v in _TABLE_8[name].items() if k != "env_hint"}
    if q_target == "policy" and "anchor.expectile" in overrides:
        overrides["anchor.critic_expectile"] = overrides.pop("anchor.expectile")
    overrides.setdefault("residual.lambda_u", 0.5)
    overrides.setdefault("gate.lambda_u", overrides["residual.lambda_u"])
    overrides.setdefault("gate.eta_rel", 0.01)
    return overrides
