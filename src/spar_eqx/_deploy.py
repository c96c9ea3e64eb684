"""One trained policy, out of its run: `load_policy` (from a run folder or a policy file) and
`export_policy` (a single self-contained file).

A policy file is a checkpoint (`_train._checkpoint`: a JSON header line, then
`eqx.tree_serialise_leaves`, written atomically, checksummed): its header holds the run's
configuration, the observation and action sizes and what the first stage decided
(`resolution`), which rebuild the policy's structure through the same learners that trained it;
its payload holds the policy's arrays (weights, observation normaliser, gate settings) for one
seed. Reading it needs neither the dataset nor the run folder.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._acting import ActingPolicy
from ._errors import CheckpointError, PolicyFileError
from ._run_config import RunConfig
from ._train._checkpoint import layout, load_checkpoint, read_header, save_checkpoint
from .data._normalize import ObservationNormalizer

FORMAT = "spar_eqx policy"
FORMAT_VERSION = 1

_HOW_TO_EXPORT = "write one with `spar-eqx export RUN_FOLDER --out FILE`"


def _slice(tree, index: int):
    """`tree` with every array's leading (run) axis indexed at `index`."""
    return jax.tree_util.tree_map(lambda x: x[index] if eqx.is_array(x) else x, tree)


def _choose(names: list[str], policy: str | None, algo: str) -> str:
    if policy is None:
        return algo if algo in names else names[0]
    if policy not in names:
        raise ValueError(
            f"this {algo} run has no policy {policy!r}; its policies are: {', '.join(names)}."
        )
    return policy


def _run_policy(run_dir: Path, seed: int, policy: str | None, point: int):
    """`(policy, header)`: one seed's policy from a finished run folder, sliced off the run
    axis, and what a policy file records about it."""
    from ._train import load_trained

    trainer, states = load_trained(run_dir)
    c = trainer.config
    if not (isinstance(seed, int) and 0 <= seed < c.seeds):
        raise ValueError(
            f"seed {seed!r} is not one of this run's seeds (0 to {c.seeds - 1}); pick one of them."
        )
    points = len(trainer.grid)
    if not (isinstance(point, int) and 0 <= point < points):
        raise ValueError(
            f"grid point {point!r} is not one of this run's {points} grid point(s) "
            f"(0 to {points - 1})."
        )
    stage = len(trainer.algorithm.stages) - 1
    stacked = trainer.policies(stage, states)
    name = _choose(list(stacked), policy, c.algo)
    chosen = _slice(stacked[name], point * c.seeds + seed)
    reference = trainer.dataset.reference
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": name,
        "policy_type": type(chosen).__name__,
        "seed": seed,
        "point": point,
        "params": trainer.grid[point][0],
        "algo": c.algo,
        "label": trainer.algorithm.label(trainer.grid[point][1]),
        "dataset": trainer.dataset.name,
        "env_id": trainer.env_id,
        # Where it acts: kwargs and step limit too (an AntMaze evaluation maze, say).
        "environment": trainer.environment.describe(),
        # The returns that score 0 and 100 in the run's evaluations (None: raw returns only).
        "reference": None if reference is None else [float(reference.min), float(reference.max)],
        "obs_dim": trainer.obs_dim,
        "act_dim": trainer.act_dim,
        "config": c.to_dict(),
        "resolution": trainer.resolution,
    }
    return chosen, header


def _skeleton(header: dict[str, Any]):
    """The structure, shapes and dtypes of the policy `header` describes, rebuilt through the
    learners of its run's configuration (one seed; no initialiser runs, no data is read)."""
    from ._train import Trainer

    config = dataclasses.replace(RunConfig.from_dict(header["config"]), seeds=1)
    trainer = Trainer(config, Path("."), progress=False)
    trainer.obs_dim, trainer.act_dim = int(header["obs_dim"]), int(header["act_dim"])
    trainer.build()
    if header.get("resolution") is not None:
        trainer.apply_resolution(header["resolution"])
    stage = len(trainer.algorithm.stages) - 1
    obs_dim = trainer.obs_dim

    def build():
        states = trainer.init_stage(0)
        for s in range(1, stage + 1):
            states = trainer.init_stage(s, states)
        zeros, ones = jnp.zeros((obs_dim,), jnp.float32), jnp.ones((obs_dim,), jnp.float32)
        stacked = trainer.policies(stage, states, normalizer=ObservationNormalizer(zeros, ones))
        return _slice(stacked[header["policy"]], int(header["point"]))

    return eqx.filter_eval_shape(build)


def policy_header(path: str | os.PathLike) -> dict[str, Any]:
    """What a policy file records besides its arrays.

    **Arguments:** `path`, a file `export_policy` (or `spar-eqx export`) wrote.

    **Returns:** its header: `policy` (the policy's name in its run), `seed`, `point` and
    `params` (its grid point), `algo`, `label`, `dataset`, `env_id`, `obs_dim`, `act_dim`,
    `config` (the run's configuration), `spar_eqx` (the version that wrote it), and the
    checksum fields. Raises `PolicyFileError` for a damaged file or one that is not a policy.
    """
    path = Path(path)
    if not path.exists():
        raise PolicyFileError(f"{path}: no such file; {_HOW_TO_EXPORT}.")
    if path.is_dir():
        raise PolicyFileError(f"{path} is a folder, not a policy file.")
    try:
        header = read_header(path)
    except CheckpointError as error:
        text = str(error)
        if "header is unreadable" in text:
            raise PolicyFileError(
                f"{path} is not a spar_eqx policy file (it does not start with a policy "
                f"header); {_HOW_TO_EXPORT}."
            ) from None
        raise PolicyFileError(text.replace("checkpoint ", "policy file ", 1)) from None
    if header.get("format") != FORMAT:
        what = (
            "a training checkpoint, not a policy file"
            if "phase" in header
            else "not a spar_eqx policy file"
        )
        raise PolicyFileError(f"{path} is {what}; {_HOW_TO_EXPORT}.")
    if header.get("format_version") != FORMAT_VERSION:
        raise PolicyFileError(
            f"{path} is a policy file of format {header.get('format_version')!r}, written by "
            f"spar_eqx {header.get('spar_eqx', '?')}; this spar_eqx reads format "
            f"{FORMAT_VERSION}. Load it with the version that wrote it, or export it again."
        )
    return header


def _load_file(path: Path) -> ActingPolicy:
    header = policy_header(path)
    try:
        skeleton = _skeleton(header)
    except (KeyError, TypeError, ValueError) as error:
        raise PolicyFileError(
            f"{path} describes a policy this spar_eqx cannot rebuild ({error}); it was written "
            f"by spar_eqx {header.get('spar_eqx', '?')}: load it with that version."
        ) from None
    arrays, digest = layout(skeleton)
    if header.get("layout") != digest:
        raise PolicyFileError(
            f"{path} holds a different policy from the one its header describes under this "
            f"spar_eqx: spar_eqx {header.get('spar_eqx', '?')} wrote {header.get('arrays')} "
            f"arrays, and this version rebuilds {arrays}; load it with the version that wrote "
            "it, or export it again."
        )
    try:
        return load_checkpoint(path, skeleton)[1]
    except CheckpointError as error:
        raise PolicyFileError(str(error).replace("checkpoint ", "policy file ", 1)) from None


def load_policy(
    source: str | os.PathLike,
    seed: int = 0,
    policy: str | None = None,
    *,
    point: int = 0,
) -> ActingPolicy:
    """One trained policy, ready to act: from a policy file, or from a finished run folder.

    The policy acts on raw observations (it owns its observation normaliser) with
    `act(observation, key)`, `act_batch(observations, key)` and `compile(observation)` (an
    ahead-of-time `DeployedPolicy` for a control loop); it is a `SPARPolicy`, a `NoGatePolicy`
    or a `BasePolicy`, with no seed axis. A file needs neither the dataset nor the run folder;
    a run folder needs the run's dataset (it holds the observation normaliser).

    **Arguments:**

    - `source`: a file written by `export_policy` (`spar-eqx export`), or the `--out` folder
      of a finished `spar-eqx train` run.
    - `seed`: which of the run's seeds (a run folder only; a file holds one seed).
    - `policy`: which of the run's policies (`"spar"`, `"spar_no_gate"`, `"base"`; a
      baseline's own name); default: the algorithm's own (`"spar"` for SPAR). A run folder
      only.
    - `point`: which grid point of a `--sweep` run (a run folder only).

    **Returns:** the policy. A file is refused with `PolicyFileError` (one line naming it and
    what to do) when it is damaged, is not a policy file, or was written by a spar_eqx whose
    policies this one cannot rebuild; a run folder with `ValueError` saying why.
    """
    source = Path(source)
    if source.is_dir():
        return _run_policy(source, seed, policy, point)[0]
    if seed != 0 or policy is not None or point != 0:
        raise ValueError(
            f"{source} is a policy file, which holds one policy of one seed: seed, policy and "
            "point choose among a run folder's; export the one you want from the run."
        )
    return _load_file(source)


def export_policy(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    seed: int = 0,
    policy: str | None = None,
    *,
    point: int = 0,
) -> dict[str, Any]:
    """Write one seed's trained policy to a single self-contained file.

    The file holds the policy's arrays (weights, observation normaliser, gate settings), the
    run's configuration and sizes that rebuild its structure, and the spar_eqx version; it is
    written atomically (a reader sees no file or the whole one). `load_policy(out)` returns a
    policy that acts bit for bit like `load_policy(run_dir, seed, policy)`.

    **Arguments:**

    - `run_dir`: the `--out` folder of a finished `spar-eqx train` run (its dataset must be
      readable: it gives the observation normaliser).
    - `out`: the file to write; an existing file is replaced only if it is a policy file.
    - `seed`, `policy`, `point`: as in `load_policy`.

    **Returns:** the file's header (`policy_header`). Raises `ValueError` naming the problem
    before anything is written.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of the file to write.")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {out.parent} does not exist; create it first.")
    if out.exists():
        try:
            policy_header(out)
        except PolicyFileError:
            raise ValueError(
                f"--out {out} exists and is not a policy file; choose another path (it was "
                "left as it is)."
            ) from None
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"--out {out}: the folder {out.parent} is not writable.")
    chosen, header = _run_policy(Path(run_dir), seed, policy, point)
    save_checkpoint(out, header, chosen)
    return read_header(out)
