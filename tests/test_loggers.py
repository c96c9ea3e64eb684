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


def test_wandb_offline_run_holds_the_last_values(tmp_path, hopper_file):
    pytest.importorskip("wandb", reason="--logger wandb needs wandb (pip install spar_eqx[wandb])")
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", str(hopper_file), "--out", str(out), "--logger", "wandb"]
    assert main(argv) == 0
    summaries = list((out / "wandb").rglob("wandb-summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    results = json.loads((out / "results.json").read_text())
    assert summary["final/bc/seed0"] == pytest.approx(results["scores"]["bc"][0])


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
