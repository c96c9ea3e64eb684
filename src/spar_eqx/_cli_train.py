"""`spar-eqx train` and `spar-eqx evaluate`."""

import argparse
import json
from pathlib import Path

from ._config import VARIANTS
from ._presets import PRESETS
from ._run_config import RunConfig

# (flag, config path, type, help): every hyperparameter of Tables 7 and 8.
_HYPERPARAMETERS = [
    ("--critics", "anchor.num_critics", int, "critic ensemble size M (10)"),
    ("--hidden", "anchor.width", int, "hidden width of policy, critics and V (256)"),
    ("--layers", "anchor.depth", int, "hidden layers of policy, critics and V (2)"),
    ("--lr", "anchor.learning_rate", float, "Stage I Adam learning rate (3e-4)"),
    ("--grad-clip", "anchor.grad_clip", float, "global-norm gradient clip, both stages (1.0)"),
    ("--gamma", "anchor.gamma", float, "discount (0.99)"),
    ("--expectile", "anchor.expectile", float, "Stage I expectile tau for V (0.5; 0.9 AntMaze)"),
    ("--critic-expectile", "anchor.critic_expectile", float, "expectile of the critic loss (0.5)"),
    ("--q-target", "anchor.q_target", str, "critic bootstrap: 'value' (IQL) or 'policy' (Alg. 1)"),
    ("--base-policy", "anchor.base_policy", str, "'deterministic' or 'gaussian' BC anchor"),
    ("--polyak", "anchor.polyak", float, "target-critic Polyak rate (0.005)"),
    ("--lambda-u", "residual.lambda_u", float, "uncertainty weight in Q_rob, Stages II and III"),
    ("--lambda-g", "residual.lambda_g", float, "guidance weight lambda_g (0.5)"),
    ("--temperature", "residual.temperature", float, "weight temperature T (1.0)"),
    ("--weighting", "residual.sensitivity", str, "'exp' or 'uniform' weights"),
    ("--filter", "residual.filtering", str, "'hard' or 'soft' filtering"),
    ("--max-weight", "residual.max_weight", float, "cap on exp weights (100)"),
    ("--data-critics", "residual.data_critics", int, "critics for the data weights (4)"),
    ("--guide-critics", "residual.guide_critics", int, "critics for the guidance (4)"),
    ("--residual-lr", "residual.learning_rate", float, "Stage II Adam learning rate (3e-4)"),
    ("--residual-hidden", "residual.width", int, "hidden width of residual models (256)"),
    ("--residual-layers", "residual.mlp_depth", int, "hidden layers of SPAR-MLP's residual (2)"),
    ("--cvae-layers", "residual.cvae_depth", int, "hidden layers of encoder and decoder (3)"),
    ("--latent-dim", "residual.latent_dim", int, "CVAE latent dimension (16)"),
    ("--kl-weight", "residual.kl_weight", float, "CVAE KL weight beta (0.5)"),
    ("--recon-weight", "residual.recon_weight", float, "CVAE reconstruction weight (1.0)"),
    ("--candidates", "residual.num_candidates", int, "SPAR-PROJ latent candidates K (64)"),
    ("--projection-period", "residual.projection_period", int, "steps between projections (10)"),
    ("--target-tau", "residual.target_tau", float, "EMA rate of the target CVAE (0.005)"),
    ("--latent-layers", "residual.latent_policy_depth", int, "SPAR-PLAS latent policy layers (2)"),
    ("--max-latent", "residual.max_latent", float, "SPAR-PLAS latent bound (2.0)"),
    ("--plas-vae-fraction", "residual.plas_vae_fraction", float, "SPAR-PLAS CVAE share (0.5)"),
    ("--gate-candidates", "gate.num_candidates", int, "Stage III candidates K (10)"),
    ("--gate-critics", "gate.gate_critics", int, "critics for the gate (4)"),
    ("--eta-abs", "gate.eta_abs", float, "gate absolute threshold (1e-4)"),
    ("--eta-rel", "gate.eta_rel", float, "gate relative threshold (0.01)"),
    ("--gate-eps", "gate.eps", float, "epsilon of the relative threshold (1e-6)"),
    ("--reward-transform", "reward_transform", str, "'none', 'locomotion' or 'antmaze'"),
    ("--eval-max-episode-steps", "eval_max_episode_steps", int, "cap on evaluation episodes"),
    ("--log-every", "log_every", int, "updates per compiled call and log row (1000)"),
    ("--checkpoint-every", "checkpoint_every", int, "updates between checkpoints (5000)"),
]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", default="default", help="Minari id, folder, D4RL HDF5 file, or 'default'"
    )
    parser.add_argument("--env", dest="env_id", help="environment id (default: the dataset's)")
    parser.add_argument("--variant", choices=VARIANTS, help="Stage II residual (default: mlp)")
    parser.add_argument("--preset", choices=PRESETS, help="the paper's per-task settings (Table 8)")
    parser.add_argument(
        "--out", required=True, type=Path, help="output folder (empty, or --resume)"
    )
    parser.add_argument("--stage1-steps", type=int, default=1_000_000)
    parser.add_argument("--stage2-steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3, help="run seeds 0..K-1 together")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per seed")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="updates between evaluations (0: stage ends)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dist = parser.add_argument_group("several processes (jax.distributed; seeds split evenly)")
    dist.add_argument("--coordinator", help="HOST:PORT of process 0, the same for every process")
    dist.add_argument("--num-processes", type=int, default=1, help="processes in the run (1)")
    dist.add_argument("--process-id", type=int, default=0, help="this process's index (0)")
    group = parser.add_argument_group("hyperparameters (Tables 7 and 8)")
    for flag, path, kind, text in _HYPERPARAMETERS:
        group.add_argument(
            flag,
            type=kind,
            default=None,
            help=text,
            dest=path.replace(".", "__"),
            metavar=kind.__name__.upper(),
        )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the preset, then every flag given explicitly."""
    config = RunConfig(
        dataset=args.dataset,
        env_id=args.env_id,
        seeds=args.seeds,
        stage1_steps=args.stage1_steps,
        stage2_steps=args.stage2_steps,
        batch_size=args.batch_size,
        eval_episodes=args.eval_episodes,
        eval_every=args.eval_every,
    )
    if args.preset:
        config = config.with_preset(args.preset)
    overrides = {}
    for _, path, _, _ in _HYPERPARAMETERS:
        value = getattr(args, path.replace(".", "__"))
        if value is not None:
            overrides[path] = value
    if args.variant:
        overrides["residual.variant"] = args.variant
    if "residual.lambda_u" in overrides:  # one uncertainty weight for Stages II and III
        overrides["gate.lambda_u"] = overrides["residual.lambda_u"]
    if "anchor.grad_clip" in overrides:  # one gradient clip for both stages (Table 7)
        overrides["residual.grad_clip"] = overrides["anchor.grad_clip"]
    return config.with_overrides(overrides)


def run_train(args: argparse.Namespace) -> int:
    from ._cli import UserError
    from ._train import train

    try:
        config = config_from_args(args)
        results = train(
            config,
            args.out,
            resume=args.resume,
            progress=not args.quiet,
            coordinator=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    except ValueError as error:  # bad options, datasets and folders: DatasetError included
        raise UserError(str(error)) from error
    _print_summary(results)
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN", type=Path, help="folder of a finished `spar-eqx train` run"
    )
    parser.add_argument("--episodes", type=int, default=None, help="episodes per seed")
    parser.add_argument("--seed", type=int, default=10_000, help="first evaluation env seed")


def run_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from ._cli import UserError
    from ._train import load_trained

    try:
        trainer, states = load_trained(args.run_dir)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from error
    if args.episodes is not None:
        if args.episodes < 1:
            raise UserError(f"--episodes must be at least 1, got {args.episodes}")
        trainer.config = dataclasses.replace(trainer.config, eval_episodes=args.episodes)
    policies = trainer._policies(states)
    evaluated = trainer.evaluate_policies(policies, seed=args.seed)
    results = {
        "run": str(args.run_dir),
        "seed": args.seed,
        "episodes_per_seed": trainer.config.eval_episodes,
        "scores": {
            k: None if s is None else [float(x) for x in s] for k, (_, s) in evaluated.items()
        },
        "returns": {k: [float(x) for x in r] for k, (r, _) in evaluated.items()},
        "gate_acceptance": trainer.gate_acceptance(policies["spar"]),
    }
    (args.run_dir / "evaluation.json").write_text(json.dumps(results, indent=2))
    _print_summary(results)
    return 0


def _print_summary(results: dict) -> None:
    import numpy as np

    kind = "scores" if all(v is not None for v in results["scores"].values()) else "returns"
    print(f"{'policy':<14}{'mean':>10}{'std':>10}   per seed ({kind})")
    for name, values in results[kind].items():
        values = np.asarray(values)
        per_seed = " ".join(f"{v:.1f}" for v in values)
        print(f"{name:<14}{values.mean():>10.1f}{values.std():>10.1f}   {per_seed}")
    acceptance = np.asarray(results["gate_acceptance"])
    print(f"gate acceptance: {acceptance.mean():.3f}")
