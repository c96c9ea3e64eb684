"""AntMaze and Adroit from dataset to score: tiny datasets recorded in the real gymnasium-robotics
environments (Minari's `DataCollector`, and D4RL-layout HDF5 files), loaded through the paths a
user's files take, trained tiny and evaluated.

Every test that needs gymnasium-robotics is skipped without it (`pip install -e ".[robotics]"`);
the one-line refusal a user without it sees is tested here regardless.
"""

import importlib.util
import json
import re

import gymnasium as gym
import h5py
import jax.numpy as jnp
import minari
import numpy as np
import pytest

import spar_eqx
from spar_eqx import Domain, environment, evaluate
from spar_eqx._cli import main
from spar_eqx.data import DatasetError, load_dataset

from .helpers import save_minari, write_d4rl_hdf5

robotics = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium_robotics") is None,
    reason="gymnasium-robotics is not installed (pip install -e '.[robotics]')",
)

ANTMAZE_ID = "D4RL/antmaze/umaze-diverse-v1"
PEN_ID = "D4RL/pen/cloned-v2"
# D4RL's evaluation maze for umaze (U_MAZE_TEST's start and goal cells), as an eval spec records it.
EVAL_UMAZE = [
    [1, 1, 1, 1, 1],
    [1, "r", 0, 0, 1],
    [1, 1, 1, 0, 1],
    [1, "g", 0, 0, 1],
    [1, 1, 1, 1, 1],
]
TINY = [
    "--seeds", "1", "--batch-size", "16", "--hidden", "16", "--eval-episodes", "2",
    "--eval-max-episode-steps", "20", "--log-every", "10", "--checkpoint-every", "20", "--quiet",
]  # fmt: skip
SPAR_TINY = [
    "--stage1-steps", "20", "--stage2-steps", "20", "--critics", "3", "--data-critics", "2",
    "--guide-critics", "2", "--gate-critics", "2", "--residual-hidden", "16",
    "--cvae-layers", "1", "--latent-dim", "2", "--candidates", "4", "--gate-candidates", "3",
]  # fmt: skip


def _record(dataset_id, env, eval_env, episodes: int, steps: int, seed: int = 0) -> None:
    """`episodes` episodes of `steps` uniform-random actions in `env`, saved by Minari's
    `DataCollector` under MINARI_DATASETS_PATH with `eval_env` as the evaluation spec."""
    collector = minari.DataCollector(env, record_infos=False)
    rng = np.random.default_rng(seed)
    dim = env.action_space.shape[0]
    for episode in range(episodes):
        collector.reset(seed=seed + episode)
        for _ in range(steps):
            action = rng.uniform(-1, 1, dim).astype(np.float32)
            _, _, terminated, truncated, _ = collector.step(action)
            if terminated or truncated:
                break
    save_minari(collector, dataset_id, eval_env, "tiny test dataset", "tests/test_domains.py")


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    """Minari's D4RL AntMaze and Pen datasets as their authors record them, in miniature."""
    if importlib.util.find_spec("gymnasium_robotics") is None:
        pytest.skip("gymnasium-robotics is not installed (pip install -e '.[robotics]')")
    import gymnasium_robotics  # noqa: F401  (registers the environments)

    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        # AntMaze: a continuing task whose goal never moves (Minari's D4RL recipe); the
        # evaluation spec is the same environment in D4RL's evaluation maze.
        ant = gym.make("AntMaze_UMaze-v4", continuing_task=True, reset_target=False)
        eval_spec = gym.envs.registration.EnvSpec(
            id=ant.spec.id,
            entry_point=ant.spec.entry_point,
            max_episode_steps=ant.spec.max_episode_steps,
            kwargs={**ant.spec.kwargs, "maze_map": EVAL_UMAZE},
        )
        _record(ANTMAZE_ID, ant, eval_spec, episodes=2, steps=40)
        pen = gym.make("AdroitHandPen-v1", max_episode_steps=100)
        _record(PEN_ID, pen, "AdroitHandPen-v1", episodes=3, steps=30)
    return root


@pytest.fixture
def minari_env(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


def _still(act_dim):
    return lambda obs, key: jnp.zeros((obs.shape[0], act_dim), jnp.float32)


def test_a_missing_package_is_named_with_its_extra():
    domain = Domain("made-up", (), package="spar_eqx_no_such_package", extra="robotics")
    with pytest.raises(ValueError, match=r"pip install 'spar_eqx\[robotics\]'"):
        domain.require()


@pytest.mark.parametrize(
    "name, env_id, steps, domain",
    [
        ("antmaze-umaze-diverse-v2", "AntMaze_UMaze-v4", 700, "antmaze"),
        ("antmaze-large-diverse-v2", "AntMaze_Large-v4", 1000, "antmaze"),
        ("antmaze-medium-play-v0", "AntMaze_Medium-v4", 1000, "antmaze"),
        ("pen-cloned-v1", "AdroitHandPen-v1", 100, "adroit"),
        ("pen-human-v1", "AdroitHandPen-v1", 100, "adroit"),
        ("door-expert-v1", "AdroitHandDoor-v1", 200, "adroit"),
        ("relocate-human-v1", "AdroitHandRelocate-v1", 200, "adroit"),
        ("AdroitHandHammer-v1", "AdroitHandHammer-v1", 200, "adroit"),
    ],
)
def test_d4rl_names_and_adroit_ids_name_one_environment(name, env_id, steps, domain):
    env = environment(name)
    assert (env.env_id, env.max_episode_steps, env.domain.name) == (env_id, steps, domain)


@robotics
def test_d4rl_antmaze_names_carry_d4rl_evaluation_maze():
    kwargs = environment("antmaze-umaze-diverse-v2").kwargs
    assert kwargs["maze_map"] == EVAL_UMAZE
    assert kwargs["continuing_task"] is True and kwargs["reset_target"] is False
    large = environment("antmaze-large-diverse-v2").kwargs["maze_map"]
    assert large[1][1] == "r" and large[7][9] == "g"


@robotics
def test_antmaze_loads_in_the_order_evaluation_flattens(minari_env):
    dataset = load_dataset(ANTMAZE_ID)
    t = dataset.transitions
    assert (t.obs_dim, t.act_dim) == (31, 8) and t.num_transitions == 80
    # The first observation is the collecting environment's reset, flattened by gymnasium.
    env = gym.wrappers.FlattenObservation(
        gym.make("AntMaze_UMaze-v4", continuing_task=True, reset_target=False)
    )
    first, _ = env.reset(seed=0)
    np.testing.assert_allclose(np.asarray(t.observations[0]), first, rtol=0, atol=1e-6)
    # Evaluation runs in the dataset's evaluation spec, kwargs and step limit included.
    recorded = dataset.environment
    assert recorded.source == "the dataset's eval_env_spec"
    assert recorded.kwargs["maze_map"] == EVAL_UMAZE and recorded.max_episode_steps == 700
    made = recorded.make()
    obs, _ = made.reset(seed=0)
    assert made.observation_space.shape == (31,) and obs.shape == (31,)
    made.close()
    assert dataset.reference == spar_eqx.ReferenceScores(0.0, 1.0)


@robotics
def test_a_motionless_ant_scores_zero(minari_env):
    env = load_dataset(ANTMAZE_ID).environment
    result = evaluate(_still(8), env, 2, seed=0, max_episode_steps=25)
    np.testing.assert_array_equal(result.lengths, [25, 25])
    np.testing.assert_array_equal(result.successes, [False, False])
    np.testing.assert_array_equal(result.scores, [0.0, 0.0])


def _ant_on_goal(**kwargs):
    """gymnasium-robotics' AntMaze whose ant starts on the goal (a scripted ant that has
    reached it)."""
    from gymnasium_robotics.envs.maze.ant_maze_v4 import AntMazeEnv

    class AntOnGoal(AntMazeEnv):
        def reset(self, *, seed=None, **options):
            super().reset(seed=seed, **options)
            self.ant_env.init_qpos[:2] = self.goal
            ant_obs, info = self.ant_env.reset(seed=seed)
            return self._get_obs(ant_obs), info

    return AntOnGoal(**kwargs)


@robotics
def test_an_ant_at_the_goal_scores_100_and_its_episode_ends():
    """On the continuing task the data records, such an ant earned 1 per step (70,000 for a
    700-step episode); scored as D4RL scores it, it succeeds once and the episode ends."""
    if "AntMaze_OnGoal-v0" not in gym.registry:
        gym.register("AntMaze_OnGoal-v0", entry_point=_ant_on_goal, max_episode_steps=700)
    env = spar_eqx.Environment(
        "AntMaze_OnGoal-v0",
        kwargs={"maze_map": EVAL_UMAZE, "continuing_task": True, "reset_target": False},
    )
    result = evaluate(_still(8), env, 3, seed=0)
    np.testing.assert_array_equal(result.successes, [True, True, True])
    np.testing.assert_array_equal(result.lengths, [1, 1, 1])
    np.testing.assert_array_equal(result.scores, [100.0, 100.0, 100.0])
    # Without the domain's scoring, the same ant collects the continuing task's reward.
    raw = gym.make("AntMaze_OnGoal-v0", **env.kwargs, max_episode_steps=50)
    raw.reset(seed=0)
    total = sum(raw.step(np.zeros(8))[1] for _ in range(50))
    raw.close()
    assert total == 50.0


@robotics
def test_pen_episodes_are_100_steps_and_use_d4rl_references(minari_env):
    dataset = load_dataset(PEN_ID)
    assert (dataset.obs_dim, dataset.act_dim) == (45, 24)
    assert dataset.environment.max_episode_steps == 100
    assert dataset.reference == spar_eqx.reference_scores("pen")
    result = evaluate(_still(24), dataset.environment, 2, seed=0)
    np.testing.assert_array_equal(result.lengths, [100, 100])
    assert result.successes is None
    low, high = spar_eqx.reference_scores("pen")
    np.testing.assert_allclose(result.scores, 100 * (result.returns - low) / (high - low))


@robotics
def test_a_d4rl_pen_file_is_evaluated_in_adroit_pen(tmp_path):
    # As D4RL ships them: no environment attribute, the file's name says which dataset it is.
    path = write_d4rl_hdf5(tmp_path / "pen-cloned-v1.hdf5", "AdroitHandPen-v1", 60, time_limit=30)
    dataset = load_dataset(path)
    assert dataset.env_id == "AdroitHandPen-v1" and dataset.environment.max_episode_steps == 100
    assert dataset.obs_dim == spar_eqx.env_spaces(dataset.environment)[0] == 45


def test_d4rl_antmaze_files_are_refused_with_what_to_use(tmp_path):
    path = tmp_path / "antmaze-large-diverse-v2.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(20, 29)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, (20, 8)).astype(np.float32)
        f["rewards"] = np.zeros(20, np.float32)
        f["terminals"] = np.zeros(20, bool)
        f["timeouts"] = np.zeros(20, bool)
        f.create_group("infos")["goal"] = np.zeros((20, 2), np.float32)
    with pytest.raises(DatasetError, match=re.escape("D4RL/antmaze/large-diverse-v1")):
        load_dataset(path)
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


@robotics
def test_antmaze_preset_trains_and_scores_success_from_the_command_line(minari_env, tmp_path):
    out = tmp_path / "ant"
    argv = ["train", "--preset", "antmaze-umaze-diverse", "--dataset", ANTMAZE_ID]
    assert main([*argv, "--out", str(out), *TINY, *SPAR_TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["env_id"] == "AntMaze_UMaze-v4" and results["variant"] == "proj"
    assert results["reward_transform"] == "antmaze"
    assert results["environment"]["scoring"] == "success"
    assert results["environment"]["kwargs"]["maze_map"] == EVAL_UMAZE
    assert results["config"]["preset"] == "antmaze-umaze-diverse"
    for name in ("base", "spar", "spar_no_gate"):
        rate = np.asarray(results["success_rate"][name])
        np.testing.assert_allclose(results["scores"][name], 100 * rate)
    # evaluate and diagnose work on the run and on the dataset.
    assert main(["evaluate", str(out), "--episodes", "1"]) == 0
    assert "success_rate" in json.loads((out / "evaluation.json").read_text())
    # An exported policy carries its evaluation maze, and plays there without the dataset.
    policy_file = tmp_path / "ant.eqx"
    assert main(["export", str(out), "--out", str(policy_file)]) == 0
    described = spar_eqx.policy_header(policy_file)["environment"]
    assert described["kwargs"]["maze_map"] == EVAL_UMAZE and described["max_episode_steps"] == 700
    assert main(["evaluate", str(policy_file), "--episodes", "1"]) == 0
    report = tmp_path / "diagnose.json"
    diagnose = ["diagnose", "--dataset", ANTMAZE_ID, "--steps", "20", "--hidden", "16"]
    assert main([*diagnose, "--states", "100", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["env_id"] == "AntMaze_UMaze-v4"


@robotics
def test_pen_preset_trains_iql_with_its_adroit_values(minari_env, tmp_path):
    out = tmp_path / "pen"
    argv = ["train", "--algo", "iql", "--preset", "pen-cloned", "--dataset", PEN_ID]
    assert main([*argv, "--out", str(out), "--steps", "20", *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    hyper = results["config"]["hyperparameters"]
    assert (hyper["expectile"], hyper["temperature"]) == (0.7, 0.5)
    assert results["env_id"] == "AdroitHandPen-v1" and "success_rate" not in results
    assert results["environment"]["max_episode_steps"] == 100


@robotics
def test_a_preset_of_another_domain_is_refused(minari_env, tmp_path, capsys):
    out = tmp_path / "wrong"
    argv = ["train", "--preset", "hopper-medium-replay", "--dataset", PEN_ID, "--out", str(out)]
    assert main([*argv, *TINY, *SPAR_TINY]) == 2
    assert "holds settings for mujoco tasks" in capsys.readouterr().err
    assert not out.exists()


def test_baselines_without_published_settings_refuse_a_preset(tmp_path, capsys):
    argv = ["train", "--algo", "td3bc", "--preset", "antmaze-umaze-diverse"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert "td3bc publishes no settings for antmaze" in capsys.readouterr().err


@pytest.mark.parametrize(
    "task, expected",
    [
        ("antmaze-umaze-diverse", (0.003, 0.001, 0.999, 256, 3e-4, 5e-5)),
        ("antmaze-large-diverse", (0.002, 0.002, 0.999, 256, 3e-4, 5e-5)),
        ("pen-cloned", (0.05, 0.5, 0.99, 256, 3e-4, 3e-4)),
        ("pen-human", (0.1, 0.5, 0.99, 256, 3e-4, 3e-4)),
        ("halfcheetah-medium-expert", (0.01, 0.1, 0.99, 1024, 1e-3, 1e-3)),
    ],
)
def test_rebrac_presets_are_the_authors_per_dataset_values(task, expected):
    h = spar_eqx.RunConfig(algo="rebrac").with_preset(task).hyperparameters
    got = (h.actor_bc_coef, h.critic_bc_coef, h.gamma, h.batch_size)
    assert got + (h.actor_learning_rate, h.critic_learning_rate) == expected


def test_iql_presets_follow_its_domain_values():
    config = spar_eqx.RunConfig(algo="iql")
    ant = config.with_preset("antmaze-large-diverse").hyperparameters
    pen = config.with_preset("pen-human").hyperparameters
    hop = config.with_preset("hopper-medium-replay").hyperparameters
    assert (ant.expectile, ant.temperature) == (0.9, 10.0)
    assert (pen.expectile, pen.temperature) == (0.7, 0.5)
    assert (hop.expectile, hop.temperature) == (0.7, 3.0)
