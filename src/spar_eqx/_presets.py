"""The paper's per-task settings (Table 8), as overrides of the default configs."""

from typing import Any

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


def preset_overrides(name: str, q_target: str = "value") -> dict[str, Any]:
    """Table 8's settings for `name` (e.g. `"hopper-medium-replay"`), as field overrides.

    Every preset also fixes Stage III's `eta_rel = 0.01` and `lambda_u = 0.5` unless
    listed otherwise (Hopper medium-expert uses `lambda_u = 2`). Stage I's tau (0.9 on
    AntMaze) is V's expectile under `q_target="value"`; under `"policy"` (Algorithm 1)
    V is unused, so the same tau goes on the critics' expectile instead.

    **Arguments:** `name`, a preset; `q_target`, the critic bootstrap it will be used with.

    **Returns:** `{path: value}` overrides of `RunConfig` fields and SPAR's hyperparameters.
    """
    if name not in _TABLE_8:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    overrides = {k: v for k, v in _TABLE_8[name].items() if k != "env_hint"}
    if q_target == "policy" and "anchor.expectile" in overrides:
        overrides["anchor.critic_expectile"] = overrides.pop("anchor.expectile")
    overrides.setdefault("residual.lambda_u", 0.5)
    overrides.setdefault("gate.lambda_u", overrides["residual.lambda_u"])
    overrides.setdefault("gate.eta_rel", 0.01)
    return overrides
