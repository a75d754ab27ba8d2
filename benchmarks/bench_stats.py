"""Statistics and machine facts shared by the benchmark scripts (numpy only, Python >= 3.11).

Both sides of a side-by-side benchmark import this one estimator, so their
numbers are comparable.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path

import numpy as np


def cpu_model() -> str | None:
    """The processor's name from `lscpu` ("Model name"), or None where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def machine() -> dict:
    """The processor, its core count (`lscpu`'s "CPU(s)"), the platform and the load at start."""
    cores = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("CPU(s):"):
                cores = int(line.split(":", 1)[1])
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return {
        "cpu_model": cpu_model() or platform.processor() or platform.machine(),
        "cores": cores or os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


def emit(doc: dict, out: str | None = None) -> None:
    """Print a benchmark's one JSON document, and write it to `out` if given."""
    text = json.dumps(doc, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def ess_geyer(x) -> dict:
    """ESS of one chain: FFT autocorrelation, Geyer's initial monotone sequence.

    Gamma_k = rho_2k + rho_2k+1 is summed while positive, each term clipped
    to the previous one (monotone); tau = -1 + 2 sum Gamma_k; ESS = n / tau.
    No cap: an anticorrelated trace (a sign flipping every step) gives ESS > n.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 4:
        return {"ess": float("nan"), "tau_int": float("nan"), "n": int(n)}
    xc = x - x.mean()
    var = float(np.dot(xc, xc)) / n
    if var <= 0.0:
        return {"ess": float("nan"), "tau_int": float("nan"), "n": int(n)}
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(xc, nfft)
    acov = np.fft.irfft(f * np.conj(f), nfft)[:n] / n
    rho = acov / acov[0]
    m = n // 2
    pairs = rho[0 : 2 * m : 2] + rho[1 : 2 * m : 2]
    total, prev = 0.0, math.inf
    for g in pairs:
        if g <= 0.0:
            break
        g = min(g, prev)
        total += g
        prev = g
    tau = max(-1.0 + 2.0 * total, 1e-12)
    return {"ess": float(n / tau), "tau_int": float(tau), "n": int(n)}
