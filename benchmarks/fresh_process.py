"""Run one measurement of a benchmark script in a fresh interpreter.

A fresh process per run keeps one run's heap, caches and GC history out of
the next; the benchmarks take the median of several. The child is the same
script with a hidden `--one MODE` option that prints its figures as one JSON
line (the last line of its output).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def measure_in_fresh_process(script: str, mode: str, options: dict[str, object]) -> dict[str, Any]:
    """`python SCRIPT --one MODE --name value...`; the figures its last line prints."""
    command = [sys.executable, script, "--one", mode]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])
