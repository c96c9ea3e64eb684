"""Online SAC training and episode recording (Minari's `DataCollector`) for `collect`."""

import gymnasium as gym
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from tqdm.auto import tqdm

from ._errors import CollectError
from ._replay import SACBatch, buffer_add, buffer_init
from ._sac import SACConfig, _act_step, act, sac_init, sac_update_chunk


def make_gym_env(env_id: str, max_episode_steps: int | None) -> gym.Env:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        raise CollectError(
            f"unknown or unavailable gymnasium environment {env_id!r} ({error}); pass a registered "
            "id such as 'Hopper-v5' (`gymnasium.pprint_registry()` lists them)."
        ) from error
    box = gym.spaces.Box
    if not isinstance(env.action_space, box) or not isinstance(env.observation_space, box):
        env.close()
        raise CollectError(
            f"{env_id!r} has action space {env.action_space} and observation space "
            f"{env.observation_space}; collect supports continuous control only (both Box)."
        )
    if not (
        np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))
    ):
        env.close()
        raise CollectError(
            f"{env_id!r} has an unbounded action space {env.action_space}; SAC's tanh policy "
            "needs finite bounds."
        )
    return env


class ActionScale:
    """Maps the policy's `[-1, 1]` actions to the env's `[low, high]` (rounding clipped)."""

    def __init__(self, space: gym.spaces.Box):
        self.low = space.low.astype(np.float32)
        self.high = space.high.astype(np.float32)

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        env_action = self.low + (unit.astype(np.float32) + 1.0) * 0.5 * (self.high - self.low)
        return np.clip(env_action, self.low, self.high).astype(np.float32)


def close_collector(collector) -> None:
    """Close a `DataCollector` and its temporary folder without a ResourceWarning later.

    Minari 0.5.4's `close` removes the folder by hand, leaving the `TemporaryDirectory` object to
    warn when it is collected; `cleanup` (which tolerates the missing folder) detaches it.
    """
    collector.close()
    tmp_dir = getattr(collector, "_tmp_dir", None)
    if tmp_dir is not None:
        tmp_dir.cleanup()


class Recorder:
    """Steps a `DataCollector`-wrapped env for a number of steps with a given policy."""

    def __init__(self, collector, progress: bool):
        self.collector, self.progress = collector, progress
        self.episodes = 0

    def record(self, policy, steps: int, desc: str, rng: np.random.Generator) -> dict:
        """Record `steps` transitions of `policy(obs, t)`, resetting with seeds from `rng`."""
        self.rng = rng
        first = self.episodes
        obs, _ = self.collector.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.episodes += 1
        bar = tqdm(total=steps, desc=desc, unit="step", disable=not self.progress, leave=False)
        for t in range(steps):
            obs, _, terminated, truncated, _ = self.collector.step(policy(obs, t))
            if (terminated or truncated) and t + 1 < steps:
                obs, _ = self.collector.reset(seed=int(self.rng.integers(2**31 - 1)))
                self.episodes += 1
            if (t + 1) % 1000 == 0 or t + 1 == steps:
                bar.update((t + 1) - bar.n)
        bar.close()
        return {"first_episode": first, "episodes": self.episodes - first, "steps": steps}


class SACTrainer:
    """Online SAC on one environment: chunks of env steps, then a compiled chunk of updates."""

    def __init__(self, env, make_env, config: SACConfig, seed: int, capacity: int, progress: bool):
        self.env, self.config, self.progress = env, config, progress
        self.scale = ActionScale(env.action_space)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        init_key, self.update_key, self.policy_key = jr.split(jr.key(seed), 3)
        train_seq, eval_seq = np.random.SeedSequence(seed).spawn(2)
        self.rng, self.eval_rng = np.random.default_rng(train_seq), np.random.default_rng(eval_seq)
        self.state = sac_init(self.obs_dim, self.act_dim, config, init_key)
        self.buffer = buffer_init(capacity, self.obs_dim, self.act_dim)
        self.eval_envs = [make_env() for _ in range(config.eval_episodes)]
        self.steps = self.chunks = self.episodes = 0
        self.last_eval: float | None = None
        self.obs = self._reset()

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.episodes += 1
        return obs

    def _collect_chunk(self) -> None:
        n, c = self.config.chunk_size, self.config
        obs = np.zeros((n, self.obs_dim), np.float32)
        next_obs = np.zeros((n, self.obs_dim), np.float32)
        actions = np.zeros((n, self.act_dim), np.float32)
        rewards, dones = np.zeros(n, np.float32), np.zeros(n, np.float32)
        key = jr.fold_in(self.policy_key, self.chunks)
        for t in range(n):
            if self.steps < c.start_steps:
                unit = self.rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
            else:
                x = jnp.asarray(self.obs, jnp.float32).reshape(-1)
                unit = np.asarray(_act_step(self.state.actor, x, key, np.asarray(t, np.int32)))
            new_obs, reward, terminated, truncated, _ = self.env.step(self.scale(unit))
            obs[t], actions[t], rewards[t] = np.ravel(self.obs), unit, reward
            next_obs[t], dones[t] = np.ravel(new_obs), float(terminated)
            self.steps += 1
            self.obs = self._reset() if (terminated or truncated) else new_obs
        batch = SACBatch(*(jnp.asarray(x) for x in (obs, actions, rewards, next_obs, dones)))
        self.buffer = buffer_add(self.buffer, batch)
        self.chunks += 1

    def evaluate(self) -> float:
        """Mean return of `eval_episodes` deterministic episodes (one batched call a step)."""
        envs = self.eval_envs
        obs = [e.reset(seed=int(self.eval_rng.integers(2**31 - 1)))[0] for e in envs]
        returns, alive = np.zeros(len(envs)), np.ones(len(envs), bool)
        while alive.any():
            batch = jnp.asarray(np.stack([np.ravel(o) for o in obs]), jnp.float32)
            units = np.asarray(act(self.state.actor, batch))
            for i in np.flatnonzero(alive):
                obs[i], reward, terminated, truncated, _ = envs[i].step(self.scale(units[i]))
                returns[i] += float(reward)
                alive[i] = not (terminated or truncated)
        return float(np.mean(returns))

    def train_until(self, name: str, target: float, max_steps: int) -> dict:
        """Train until the evaluation return first reaches `target`; the part's summary."""
        c = self.config
        bar = tqdm(
            total=max_steps,
            initial=self.steps,
            desc=f"SAC to {name}",
            unit="step",
            disable=not self.progress,
        )
        try:
            while self.last_eval is None or self.last_eval < target:
                if self.steps >= max_steps:
                    last = "none yet" if self.last_eval is None else f"{self.last_eval:.1f}"
                    raise CollectError(
                        f"the SAC did not reach the {name} target return {target:.1f} within "
                        f"--max-train-steps {max_steps} environment steps (last evaluation "
                        f"return: {last}, evaluations every {c.eval_interval} steps after "
                        f"{c.start_steps} random steps); raise --max-train-steps or lower "
                        "--target-return."
                    )
                self._collect_chunk()
                if self.steps >= c.start_steps:
                    key = jr.fold_in(self.update_key, self.chunks)
                    updates = c.chunk_size * c.updates_per_step
                    self.state, _ = sac_update_chunk(self.state, self.buffer, key, updates)
                    if self.steps % c.eval_interval == 0:
                        self.last_eval = self.evaluate()
                bar.update(self.steps - bar.n)
                shown = "-" if self.last_eval is None else f"{self.last_eval:.1f}"
                bar.set_postfix(eval_return=shown, target=f"{target:.1f}", refresh=False)
        finally:
            bar.close()
        return {"level": name, "target_return": target, "eval_return": self.last_eval}

    def sampling_policy(self, key):
        actor = self.state.actor

        def policy(obs, t):
            x = jnp.asarray(obs, jnp.float32).reshape(-1)
            return self.scale(np.asarray(_act_step(actor, x, key, np.asarray(t, np.int32))))

        return policy

    def close(self) -> None:
        for env in self.eval_envs:
            env.close()
