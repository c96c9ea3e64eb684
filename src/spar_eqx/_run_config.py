"""`RunConfig`: everything one `spar-eqx train` run needs, frozen and JSON-serialisable."""

import dataclasses
from typing import Any

from ._config import AnchorConfig, GateConfig, ResidualConfig
from ._presets import preset_overrides


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A full training run: data, schedule, seeds and the three stages' configs.

    `seeds` runs seeds `0..seeds-1` together (stacked on a leading axis).
    `log_every` is the number of updates per compiled call; `eval_every` and
    `checkpoint_every` must be multiples of it (0 turns periodic evaluation off;
    every stage still ends with a checkpoint and an evaluation).
    """

    dataset: str = "default"
    env_id: str | None = None
    seeds: int = 3
    stage1_steps: int = 1_000_000
    stage2_steps: int = 1_000_000
    batch_size: int = 256
    eval_episodes: int = 10
    eval_every: int = 0
    log_every: int = 1000
    checkpoint_every: int = 5000
    eval_max_episode_steps: int | None = None
    reward_transform: str | None = None
    acceptance_states: int = 10_000
    anchor: AnchorConfig = AnchorConfig()
    residual: ResidualConfig = ResidualConfig()
    gate: GateConfig = GateConfig()

    def __post_init__(self):
        for name in ("seeds", "batch_size", "eval_episodes", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("stage1_steps", "stage2_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) % self.log_every:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of "
                    f"log_every={self.log_every} "
                    "(updates run in compiled chunks of log_every steps)."
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        data = dict(data)
        data["anchor"] = AnchorConfig(**data["anchor"])
        data["residual"] = ResidualConfig(**data["residual"])
        data["gate"] = GateConfig(**data["gate"])
        return cls(**data)

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """A copy with `overrides` applied; keys are fields or `"anchor.x"`-style paths."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {"anchor": {}, "residual": {}, "gate": {}}
        for key, value in overrides.items():
            if "." in key:
                section, field = key.split(".", 1)
                if section not in nested:
                    raise ValueError(f"unknown config section {section!r} in {key!r}.")
                nested[section][field] = value
            else:
                top[key] = value
        for section, fields in nested.items():
            if fields:
                top[section] = dataclasses.replace(getattr(self, section), **fields)
        return dataclasses.replace(self, **top)

    def with_preset(self, name: str) -> "RunConfig":
        """A copy with Table 8's settings for task `name`."""
        return self.with_overrides(preset_overrides(name))
