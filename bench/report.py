"""Result files: every benchmark writes JSON with the hardware, software, commit, command and date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from polysparse.sparsify import strict_json

DEFAULT_RESULTS_DIR = Path("bench") / "results"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str | None = None) -> str:
    """GPU name for CUDA devices, the CPU model otherwise."""
    device = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU: {_cpu_name()} ({os.cpu_count()} threads visible, torch uses {torch.get_num_threads()})"


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    """What a reader needs to re-run a measurement: hardware, versions, commit, command, date."""
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for module in ("triton", "transformers"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "device": device_name(device),
        "cuda": torch.version.cuda,
        "versions": versions,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(dirty) if dirty is not None else None,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented strict JSON atomically (no NaN or Infinity: see
    :mod:`polysparse.sparsify.strict_json`, the project's one JSON writer)."""
    return strict_json.write_json(path, payload)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def say(message: str, quiet: bool = False) -> None:
    """Print a progress line of a command (nothing with ``--quiet``)."""
    if not quiet:
        print(message, flush=True)


def say_speedups(payload: dict[str, Any], quiet: bool, indent: str = "") -> None:
    """Which backend the sparse layers ran on, and the sparse / dense speed per size."""
    ran = sorted({r["ran"] for r in payload["backends_ran"]})
    say(f"{indent}sparse layers ran on: {', '.join(ran) or '-'}", quiet)
    if ran == ["dense"]:
        say(f"{indent}(the same dense computation on both sides: differences below are timing noise)", quiet)
    for s in payload["speedups"]:
        say(
            f"{indent}batch {s['batch']}, prompt {s['prompt']}, {s.get('decode_mode', 'eager')} decode: "
            f"decode {s['decode']:.2f}x, "
            f"prefill {s['prefill']:.2f}x (sparse / dense, medians)",
            quiet,
        )
