"""What every benchmark's `--json` file holds besides its rows: the machine, the library
versions and the exact command (`{"machine", "versions", "command", "results"}`)."""

import json
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path


def machine() -> dict:
    """CPU model, core count, and JAX's backend and devices."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def versions() -> dict:
    """The versions of spar_eqx and the libraries whose speed or results it depends on."""
    names = ("spar_eqx", "jax", "jaxlib", "equinox", "optax", "gymnasium", "mujoco", "minari")
    return {name: metadata.version(name) for name in names}


def write_record(
    path: str | os.PathLike, script: str, results: list, argv: list[str] | None = None
) -> None:
    """Write `results` to `path` with the machine, versions and the command: `script` with
    `argv`, the arguments the script's `main` parsed (this process's, when None)."""
    args = sys.argv[1:] if argv is None else argv
    record = {
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(["python", script, *args]),
        "results": results,
    }
    Path(path).write_text(json.dumps(record, indent=2))


def spar_eqx() -> str:
    """The `spar-eqx` of this Python's environment (also when that is not on `PATH`), for
    the scripts that run it as a subprocess."""
    beside = Path(sys.executable).with_name("spar-eqx")
    found = str(beside) if beside.exists() else shutil.which("spar-eqx")
    if found is None:
        sys.exit("spar-eqx is not installed here: run `python -m pip install -e .` first.")
    return found


def split_extra(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """`(the script's own arguments, the extra spar-eqx train flags after "--")` of `argv`
    (this process's arguments when None)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]
