"""Regenerate the embedded default dataset, `src/spar_eqx/data/default/hopper/medium-replay-v0`.

Three steps, all recorded here so that the shipped file can be reproduced:

1. `spar-eqx collect --env Hopper-v5 --level medium-replay --seed 0 --max-train-steps 150000
   --out runs/default_dataset` trains SAC (default `SACConfig`) until its mean deterministic
   evaluation return first reaches the D4RL medium target for Hopper (1064.8, one third of the way
   from D4RL's random to expert return) and writes every transition it collected.
2. The HDF5 file is rewritten losslessly in HDF5's latest file format with every dataset stored
   as one gzip-9 + shuffle chunk (see `compress_hdf5`); groups, attributes, dtypes and values are
   checked unchanged. Minari's `dataset_size` is updated.
3. The dataset folder replaces `src/spar_eqx/data/default/`, and is checked to load with Minari.

Usage, from the repository root: `python benchmarks/make_default_dataset.py` (about 30-60 minutes on
2 CPU cores). `--skip-collect` redoes steps 2-3 from an existing `runs/default_dataset`.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("runs/default_dataset")
DATASET_ID = "hopper/medium-replay-v0"
ARGV = [
    "collect",
    "--env",
    "Hopper-v5",
    "--level",
    "medium-replay",
    "--seed",
    "0",
    "--max-train-steps",
    "150000",
    "--out",
    str(OUT),
]
DEFAULT_DIR = ROOT / "src" / "spar_eqx" / "data" / "default"


def compress_hdf5(source: Path, target: Path) -> None:
    """Copy `source` to `target` losslessly, smaller: every dataset in one gzip-9 + shuffle chunk.

    Minari writes each of the ~800 episodes as a group of small chunked datasets, and the HDF5
    bookkeeping (B-trees, old-style symbol tables) then outweighs the data. The copy uses the latest
    file format (compact groups, single-chunk indices) and one compressed chunk per dataset; groups,
    attributes, dtypes, shapes and values are unchanged (checked by `check_same`).
    """

    def copy_attrs(src, dst):
        for name, value in src.attrs.items():
            dst.attrs[name] = value

    def copy_group(src: h5py.Group, dst: h5py.Group) -> None:
        copy_attrs(src, dst)
        for name, item in src.items():
            if isinstance(item, h5py.Group):
                copy_group(item, dst.create_group(name))
                continue
            data = item[()]
            if item.shape == () or item.size == 0:  # nothing to chunk
                out = dst.create_dataset(name, data=data, dtype=item.dtype)
            else:
                out = dst.create_dataset(
                    name,
                    data=data,
                    dtype=item.dtype,
                    chunks=item.shape,
                    compression="gzip",
                    compression_opts=9,
                    shuffle=True,
                )
            copy_attrs(item, out)

    with h5py.File(source, "r") as src, h5py.File(target, "w", libver="latest") as dst:
        copy_group(src, dst)


def check_same(a: Path, b: Path) -> None:
    """Raise unless the two HDF5 files hold the same groups, attributes and dataset values."""

    def same(x, y, where):
        assert set(x.attrs) == set(y.attrs), where
        for key in x.attrs:
            assert np.array_equal(x.attrs[key], y.attrs[key]), f"{where} attr {key}"
        if isinstance(x, h5py.Dataset):
            assert x.dtype == y.dtype and x.shape == y.shape, where
            assert np.array_equal(x[()], y[()]), where
            return
        assert set(x.keys()) == set(y.keys()), where
        for key in x:
            same(x[key], y[key], f"{where}/{key}")

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        same(fa, fb, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-collect", action="store_true", help="reuse runs/default_dataset")
    args = parser.parse_args(argv)
    os.chdir(ROOT)

    folder = OUT / DATASET_ID
    if not args.skip_collect:
        from spar_eqx._cli import main as cli

        if OUT.exists():
            shutil.rmtree(OUT)
        code = cli(ARGV)
        if code != 0:
            return code

    data = folder / "data"
    raw, packed = data / "main_data.hdf5", data / "main_data.gz.hdf5"
    compress_hdf5(raw, packed)
    check_same(raw, packed)
    packed.replace(raw)

    from minari.dataset.minari_storage import MinariStorage

    storage = MinariStorage.read(data)
    size_mb = round(raw.stat().st_size / 1e6, 2)
    storage.update_metadata({"dataset_size": size_mb})

    if DEFAULT_DIR.exists():
        shutil.rmtree(DEFAULT_DIR)
    shutil.copytree(folder, DEFAULT_DIR / DATASET_ID)
    namespace = OUT / DATASET_ID.split("/")[0] / "namespace_metadata.json"
    if namespace.exists():
        shutil.copy2(namespace, DEFAULT_DIR / DATASET_ID.split("/")[0])

    import minari

    dataset = minari.MinariDataset(DEFAULT_DIR / DATASET_ID / "data")
    meta = json.loads((DEFAULT_DIR / DATASET_ID / "data" / "metadata.json").read_text())
    episodes = list(dataset.iterate_episodes())
    steps = sum(len(e.actions) for e in episodes)
    assert steps == dataset.total_steps and len(episodes) == dataset.total_episodes
    info = meta["spar_eqx"]
    print(
        f"{DEFAULT_DIR / DATASET_ID}: {dataset.total_episodes} episodes, {dataset.total_steps} "
        f"steps, {size_mb} MB; command: {info['command']}; parts: {info['parts']}; "
        f"wall time {info['wall_time_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
