"""`--logger tensorboard` / `--logger wandb`: every metrics.csv row also goes to TensorBoard
event files or an offline Weights & Biases run, read back here; a logger whose package is
missing is refused before any file is written."""

import csv
import importlib.util
import json
import struct

import pytest

from spar_eqx._cli import main
from spar_eqx._train import _loggers

TINY = [
    "train", "--algo", "bc", "--steps", "20", "--seeds", "2", "--hidden", "16",
    "--batch-size", "16", "--eval-episodes", "1", "--eval-max-episode-steps", "5",
    "--eval-every", "10", "--log-every", "10", "--checkpoint-every", "10", "--quiet",
]  # fmt: skip


def _events(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in `folder`: tag -> [(step, value)]."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):  # TFRecord: length, its CRC, the record, its CRC
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_holds_every_row_of_metrics_csv(tmp_path, hopper_file):
    pytest.importorskip("tensorboardX", reason="--logger tensorboard needs tensorboardX")
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", str(hopper_file), "--out", str(out), "--logger", "tensorboard"]
    assert main(argv) == 0
    scalars = _events(out / "tensorboard")
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    losses = [r for r in rows if r["phase"] != "eval"]
    assert losses
    for row in losses:
        tag = f"{row['stage']}/bc_loss/seed{row['seed']}"
        assert (int(row["step"]), pytest.approx(float(row["bc_loss"]), rel=1e-6)) in [
            (s, pytest.approx(v)) for s, v in scalars[tag]
        ]
    assert len(scalars["train/bc_loss/seed0"]) == 2  # one value per chunk, not repeated
    # Evaluations (periodic and final) are there too, as scores.
    results = json.loads((out / "results.json").read_text())
    final = scalars["final/bc/seed1"]
    assert final[-1][0] == 20 and final[-1][1] == pytest.approx(results["scores"]["bc"][1])
    assert any(tag.startswith("train/bc/") for tag in scalars)  # the evaluation at step 10


def _wandb_records(folder) -> list:
    """Every record of the offline W&B run under `folder`, read from its `.wandb` file: a
    7-byte header (`:W&B`, magic 0xBEE1, version), then LevelDB's log format (32 KiB blocks of
    chunks, each with its CRC, length and kind: full, first, middle or last), each record a
    `wandb.proto.wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.rglob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, i, block = [], b"", 7, 32768
    while i + 7 <= len(data):
        if block - i % block < 7:  # a block's tail too short for a chunk header is padding
            i += block - i % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[i : i + 7])
        chunk, i = data[i + 7 : i + 7 + length], i + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
    return records


def test_wandb_offline_run_holds_every_row_and_the_config(tmp_path, hopper_file):
    pytest.importorskip("wandb", reason="--logger wandb needs wandb (pip install spar_eqx[wandb])")
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", str(hopper_file), "--out", str(out), "--logger", "wandb"]
    assert main(argv) == 0
    records = _wandb_records(out / "wandb")
    # The run's configuration is the run's config.json.
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    written = json.loads((out / "config.json").read_text())
    assert config["algo"] == "bc" and config["hyperparameters"]["width"] == 16
    assert config["seeds"] == written["seeds"] == 2
    # Every history row is one value at one update; together they are metrics.csv.
    history: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {i.nested_key[0]: json.loads(i.value_json) for i in record.history.item}
            (tag,) = [k for k in items if not k.startswith("_") and k != "update"]
            history.setdefault(tag, []).append((items["update"], items[tag]))
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    for row in (r for r in rows if r["phase"] != "eval"):
        tag = f"{row['stage']}/bc_loss/seed{row['seed']}"
        assert (int(row["step"]), pytest.approx(float(row["bc_loss"]), rel=1e-6)) in history[tag]
    assert len(history["train/bc_loss/seed0"]) == 2
    results = json.loads((out / "results.json").read_text())
    for seed in (0, 1):
        assert history[f"final/bc/seed{seed}"] == [
            (20, pytest.approx(results["scores"]["bc"][seed]))
        ]
    assert "train/bc/seed0" in history  # the evaluation at step 10


def test_a_missing_logger_package_is_refused_before_any_file(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        _loggers.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboardX", "wandb") else real(name, *a),
    )
    for name, extra in (("tensorboard", "tensorboard"), ("wandb", "wandb")):
        out = tmp_path / name
        assert main([*TINY, "--out", str(out), "--logger", name]) == 2
        err = capsys.readouterr().err
        assert f"pip install 'spar_eqx[{extra}]'" in err and err.count("\n") == 1
        assert not out.exists()
