"""OGBench from files to success rates: small datasets recorded in OGBench's real cube
environment in OGBench's file layout, read through the same path a user's files take
(`ogbench:<single-task dataset>`), trained tiny and evaluated.

Skipped without `ogbench` (`pip install -e ".[ogbench]"`), except what a user without it sees.
"""

import importlib.metadata
import importlib.util
import json

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import pytest

import spar_eqx
from spar_eqx import evaluate
from spar_eqx._cli import _build_parser, main
from spar_eqx._cli_train import config_from_args
from spar_eqx._presets import OGBENCH_PRESETS, preset_domain, preset_of_dataset
from spar_eqx.data import DatasetError, load_dataset

needs_ogbench = pytest.mark.skipif(
    importlib.util.find_spec("ogbench") is None,
    reason="ogbench is not installed (pip install -e '.[ogbench]')",
)
NAME = "cube-single-play-singletask-task2-v0"
ENV_ID = "cube-single-singletask-task2-v0"
CUBE = slice(14, 17)  # the cube's position in the arm-and-cube qpos (OGBench's relabel_utils)


def _record(path, episodes: int, steps: int, seed: int, solve_last: int) -> None:
    """`episodes` trajectories of uniform-random arm actions in OGBench's file layout (each
    `steps + 1` observations, `terminals` 1 on a trajectory's last), with `qpos` and `qvel`
    as OGBench stores them; in the last trajectory, the final `solve_last` rows record the cube
    at task 2's target, so relabelling finds the task solved there."""
    import ogbench  # noqa: F401  (registers the environments)

    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        target = env.unwrapped._data.mocap_pos[0].copy()
        for t in range(steps + 1):
            action = rng.uniform(-1, 1, 5).astype(np.float32)
            qpos = env.unwrapped._data.qpos.copy()
            if episode == episodes - 1 and t > steps - solve_last:
                qpos[CUBE] = target
            for key, value in zip(
                rows,
                (obs, action, float(t == steps), qpos, env.unwrapped._data.qvel.copy()),
                strict=True,
            ):
                rows[key].append(value)
            if t < steps:
                obs = env.step(action)[0]
    env.close()
    np.savez(path, **{key: np.asarray(values) for key, values in rows.items()})


@pytest.fixture(scope="module")
def ogbench_dir(tmp_path_factory):
    if importlib.util.find_spec("ogbench") is None:
        pytest.skip("ogbench is not installed (pip install -e '.[ogbench]')")
    folder = tmp_path_factory.mktemp("ogbench")
    _record(folder / "cube-single-play-v0.npz", episodes=3, steps=20, seed=0, solve_last=3)
    _record(folder / "cube-single-play-v0-val.npz", episodes=1, steps=10, seed=9, solve_last=0)
    return folder


@pytest.fixture
def ogbench_env(ogbench_dir, monkeypatch):
    monkeypatch.setenv("OGBENCH_DATA_DIR", str(ogbench_dir))
    return ogbench_dir


def _still(act_dim):
    return lambda obs, key: jnp.zeros((obs.shape[0], act_dim), jnp.float32)


def test_ogbench_names_are_parsed_and_missing_files_named(tmp_path, monkeypatch):
    monkeypatch.setenv("OGBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="not an OGBench single-task dataset name"):
        load_dataset("ogbench:cube-single-play-v0")
    if importlib.util.find_spec("ogbench") is not None:
        with pytest.raises(DatasetError, match="cube-single-play-v0.npz.*never downloads"):
            load_dataset(f"ogbench:{NAME}")
    assert spar_eqx.domain_of(ENV_ID).name == "ogbench"
    assert spar_eqx.domain_of("antmaze-large-singletask-v0").name == "ogbench"
    assert spar_eqx.environment(ENV_ID).reference == spar_eqx.ReferenceScores(0.0, 1.0)


@needs_ogbench
def test_rewards_masks_and_terminals_are_ogbench_own(ogbench_env):
    import ogbench

    dataset = load_dataset(f"ogbench:{NAME}")
    _, ours, _ = ogbench.make_env_and_datasets(
        NAME, dataset_path=str(ogbench_env / "cube-single-play-v0.npz"), compact_dataset=False
    )
    t = dataset.transitions
    assert (t.obs_dim, t.act_dim) == (28, 5) and t.num_transitions == 3 * 20
    np.testing.assert_array_equal(np.asarray(t.rewards), ours["rewards"])
    np.testing.assert_array_equal(np.asarray(t.observations), ours["observations"])
    np.testing.assert_array_equal(np.asarray(t.next_observations), ours["next_observations"])
    solved = ours["masks"] == 0
    # The rows recorded with the cube on the target, less a trajectory's last observation
    # (it has no action, so no transition).
    assert solved.sum() == 2
    np.testing.assert_array_equal(np.asarray(t.terminals), solved)
    np.testing.assert_array_equal(np.asarray(t.timeouts), (ours["terminals"] == 1) & ~solved)
    np.testing.assert_array_equal(np.asarray(t.rewards)[solved], 0.0)
    assert dataset.environment.env_id == ENV_ID and dataset.reward_transform == "none"
    assert dataset.metadata["ogbench_version"] == importlib.metadata.version("ogbench")


def _cube_on_target(**kwargs):
    """OGBench's cube environment whose cube starts on its target (a solved task)."""
    import mujoco
    from ogbench.manipspace.envs.cube_env import CubeEnv

    class CubeOnTarget(CubeEnv):
        def reset(self, options=None, *args, **kw):
            super().reset(options, *args, **kw)
            self._data.joint("object_joint_0").qpos[:3] = self._data.mocap_pos[0]
            mujoco.mj_forward(self._model, self._data)
            self.post_step()
            return self.compute_observation(), self.get_reset_info()

    return CubeOnTarget(**kwargs)


@needs_ogbench
def test_a_solved_task_scores_100_and_an_idle_arm_0():
    import ogbench  # noqa: F401

    idle = evaluate(_still(5), ENV_ID, 2, seed=0, max_episode_steps=15)
    np.testing.assert_array_equal(idle.successes, [False, False])
    np.testing.assert_array_equal(idle.scores, [0.0, 0.0])
    np.testing.assert_array_equal(idle.lengths, [15, 15])
    if "cube-ontarget-singletask-task2-v0" not in gym.registry:
        gym.register(
            "cube-ontarget-singletask-task2-v0", entry_point=_cube_on_target,
            max_episode_steps=200,
            kwargs={"env_type": "single", "reward_task_id": 2, "permute_blocks": False},
        )  # fmt: skip
    solved = evaluate(_still(5), "cube-ontarget-singletask-task2-v0", 2, seed=0)
    np.testing.assert_array_equal(solved.successes, [True, True])
    np.testing.assert_array_equal(solved.scores, [100.0, 100.0])
    assert solved.lengths.max() <= 2


@needs_ogbench
def test_iql_trains_and_evaluates_on_ogbench_from_the_command_line(ogbench_env, tmp_path):
    out = tmp_path / "iql"
    argv = ["train", "--algo", "iql", "--dataset", f"ogbench:{NAME}", "--out", str(out)]
    tiny = [
        "--steps", "20", "--seeds", "1", "--batch-size", "16", "--hidden", "16",
        "--eval-episodes", "2", "--eval-max-episode-steps", "10", "--log-every", "10",
        "--checkpoint-every", "20", "--quiet",
    ]  # fmt: skip
    assert main([*argv, *tiny]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["env_id"] == ENV_ID and results["environment"]["domain"] == "ogbench"
    assert results["reward_transform"] == "none"
    assert results["environment"]["package_version"] == importlib.metadata.version("ogbench")
    rate = np.asarray(results["success_rate"]["iql"])
    np.testing.assert_allclose(results["scores"]["iql"], 100 * rate)
    assert main(["evaluate", str(out), "--episodes", "1"]) == 0
    report = tmp_path / "diagnose.json"
    diagnose = ["diagnose", "--dataset", f"ogbench:{NAME}", "--steps", "20", "--hidden", "16"]
    assert main([*diagnose, "--states", "100", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["env_id"] == ENV_ID


# Presets: resolved from the dataset's name alone, so none of these needs `ogbench`.
LONG_HORIZON = ("antmaze-giant-navigate", "humanoidmaze-medium-navigate",
                "humanoidmaze-large-navigate", "antsoccer-arena-navigate")  # fmt: skip


@pytest.mark.parametrize(
    "dataset, preset",
    [
        ("ogbench:cube-double-play-singletask-task2-v0", "cube-double-play"),
        ("ogbench:antmaze-large-navigate-singletask-v0", "antmaze-large-navigate"),
        ("ogbench:puzzle-4x4-play-singletask-task5-v1", "puzzle-4x4-play"),
        ("ogbench:antmaze-medium-navigate-singletask-v0", None),  # not in FQL's benchmark
        ("ogbench:cube-double-noisy-singletask-v0", None),  # another dataset type
        ("D4RL/antmaze/large-diverse-v1", "antmaze-large-diverse"),
        ("D4RL/pen/cloned-v2", "pen-cloned"),
        ("/data/hopper-medium-replay-v2.hdf5", "hopper-medium-replay"),
        ("default", None),
    ],
)
def test_a_preset_is_named_after_the_dataset_task(dataset, preset):
    assert preset_of_dataset(dataset) == preset


@pytest.mark.parametrize("env", OGBENCH_PRESETS)
def test_spar_ogbench_presets_are_antmazes_reasoning_with_fqls_discounts(env):
    source = f"ogbench:{env}-singletask-task3-v0"
    config = spar_eqx.RunConfig(dataset=source).with_preset("auto")
    h = config.hyperparameters
    assert config.preset == env and preset_domain(env).name == "ogbench"
    assert h.anchor.gamma == (0.995 if env in LONG_HORIZON else 0.99)
    assert (h.anchor.expectile, h.anchor.base_policy) == (0.9, "gaussian")
    r = h.residual
    assert (r.variant, r.filtering, r.temperature, r.lambda_g) == ("proj", "soft", 0.3, 0.5)
    assert (r.lambda_u, h.gate.lambda_u, h.gate.eta_rel) == (0.5, 0.5, 0.01)
    policy = spar_eqx.RunConfig(dataset=source)
    policy = policy.with_overrides({"anchor.q_target": "policy"}).with_preset("auto")
    assert policy.hyperparameters.anchor.critic_expectile == 0.9


def test_iql_and_rebrac_take_the_fql_authors_values_where_published():
    source = "ogbench:humanoidmaze-medium-navigate-singletask-v0"
    iql = spar_eqx.RunConfig(algo="iql", dataset=source).with_preset("auto").hyperparameters
    assert (iql.expectile, iql.temperature, iql.gamma) == (0.9, 10.0, 0.995)
    assert (iql.actor_lr_schedule, iql.learning_rate, iql.batch_size) == ("constant", 3e-4, 256)
    rebrac = spar_eqx.RunConfig(algo="rebrac", dataset=source).with_preset("auto")
    h = rebrac.hyperparameters
    assert (h.actor_bc_coef, h.critic_bc_coef, h.gamma) == (0.01, 0.01, 0.995)
    assert (h.actor_learning_rate, h.critic_learning_rate, h.batch_size) == (3e-4, 3e-4, 256)
    assert spar_eqx.RunConfig(algo="bc").with_preset("scene-play").hyperparameters == (
        spar_eqx.RunConfig(algo="bc").hyperparameters
    )


@pytest.mark.parametrize("algo", ["iql", "rebrac", "td3bc"])
def test_ogbench_presets_without_a_published_value_are_refused(algo):
    for env in OGBENCH_PRESETS:
        if algo != "td3bc" and env == "humanoidmaze-medium-navigate":
            continue
        with pytest.raises(ValueError) as refused:
            spar_eqx.RunConfig(algo=algo).with_preset(env)
        said = str(refused.value)
        if algo == "td3bc":
            assert "td3bc publishes no settings for ogbench" in said
        else:
            assert f"holds no published {algo}" in said and f"OGBench's {env}" in said
            assert "FQL's paper" in said and "--gamma" in said


def test_preset_auto_on_the_command_line(tmp_path, capsys):
    parser = _build_parser("rebrac")
    source = "ogbench:humanoidmaze-medium-navigate-singletask-task2-v0"
    flags = ["--preset", "auto", "--dataset", source, "--critic-bc-coef", "0.1", "--out", "x"]
    config = config_from_args(parser.parse_args(["train", "--algo", "rebrac", *flags]))
    assert config.preset == "humanoidmaze-medium-navigate"
    assert (config.hyperparameters.actor_bc_coef, config.hyperparameters.critic_bc_coef) == (
        0.01, 0.1,  # a flag given explicitly overrides the preset
    )  # fmt: skip
    out = tmp_path / "run"
    argv = ["train", "--algo", "iql", "--preset", "auto", "--dataset", f"ogbench:{NAME}"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "holds no published iql" in capsys.readouterr().err
    assert main(["train", "--preset", "auto", "--out", str(out)]) == 2
    assert "no preset is named after the task of dataset 'default'" in capsys.readouterr().err
    assert not out.exists()


@needs_ogbench
def test_an_ogbench_preset_of_another_environment_is_refused(ogbench_env, tmp_path, capsys):
    out = tmp_path / "wrong"
    argv = ["train", "--preset", "cube-double-play", "--dataset", f"ogbench:{NAME}"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "OGBench's cube-double-play datasets" in said and "--preset auto" in said
    assert not out.exists()
