"""log Z from a tempering run: stepping stone with batch-means error bars.

Along the path pi_beta ~ exp(-E_ref - beta V) the normaliser ratios of
neighbouring ladder slots are exact expectations:

    forward:  Z_{i+1} / Z_i = E_{pi_i}[exp(-(b_{i+1} - b_i) V)]
    reverse:  Z_i / Z_{i+1} = E_{pi_{i+1}}[exp(+(b_{i+1} - b_i) V)]

so log Z_1 = log Z_ref + sum_i log(Z_{i+1} / Z_i). Every round's energies
(one per slot, the values the swap step uses) feed both directions; the
reported estimate combines them optimally per pair with Bennett's
acceptance ratio, and the one-sided stepping stones come along. The error bar comes from the
delta method over rounds: each round contributes the linearised influence
sum_i (w_ri / mean_i(w) - 1), and its standard error is the larger of the
batch-means estimate (contiguous batches) and the autocorrelation-based one
(Geyer's initial monotone sequence), so slow mixing widens the bar.

Thermodynamic integration (trapezoid over the ladder of mean V) is given as
a cross-check only: it has a discretisation bias the stepping stone lacks.
All of this runs on the host, in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import diagnostics


class TooFewRounds(ValueError):
    """A run too short for the batch-means error bar of log Z (run more rounds)."""


class LogZ(NamedTuple):
    """log Z estimates in nats; `estimate, stderr` (Bennett) is what to report."""

    estimate: float
    stderr: float
    stepping_stone: float
    stepping_stone_stderr: float
    forward: float
    forward_stderr: float
    reverse: float
    reverse_stderr: float
    thermodynamic_integration: float
    n_rounds: int  # rounds per replica
    n_batches: int  # batches per replica
    n_replicas: int = 1


def _batches(n_rounds: int, n_batches: int | None) -> int:
    if n_batches is None:
        n_batches = int(np.clip(np.sqrt(n_rounds), 5, 50))
    if n_rounds < 2 * n_batches:
        raise TooFewRounds(
            f"{n_rounds} rounds are too few for an error bar from {n_batches} batches; "
            f"run at least {2 * n_batches} rounds"
        )
    return n_batches


def _batch_stderr(influence: np.ndarray, n_batches: int) -> float:
    """Standard error of the mean influence (R replicas, T rounds): the larger
    of batch means and of the autocorrelation (Geyer initial monotone
    sequence, multi-chain) estimate, so a correlation time longer than a
    batch cannot shrink the error bar. Batches of every replica are centred
    on the pooled mean, so replicas that disagree widen it."""
    n_replicas, n_rounds = influence.shape
    usable = (n_rounds // n_batches) * n_batches
    means = influence[:, n_rounds - usable :].reshape(n_replicas * n_batches, -1).mean(axis=1)
    # the mean over B batches divided by this error is Student-t with B - 1
    # degrees of freedom, of variance (B - 1) / (B - 3): scaled so that the
    # z-scores of a run have unit variance, not just a unit typical size
    t_variance = (means.size - 1) / max(means.size - 3, 1)
    batch = float(np.std(means, ddof=1) * np.sqrt(t_variance / means.size))
    sd = float(np.std(influence, ddof=1))
    if sd == 0.0:
        return batch
    ess = float(diagnostics.ess(influence, method="mean"))
    return float(max(batch, sd / np.sqrt(ess))) if np.isfinite(ess) and ess > 0 else batch


def _log_mean_exp(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log mean_r exp(a_r) per column, and the weights exp(a) / mean exp(a)."""
    shift = a.max(axis=0)
    w = np.exp(a - shift)
    mean = w.mean(axis=0)
    return shift + np.log(mean), w / mean


def _fermi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 - np.tanh(0.5 * x))  # 1 / (1 + e^x), overflow-free


def bennett(work_forward: np.ndarray, work_reverse: np.ndarray):
    """Bennett's acceptance ratio for every neighbouring pair at once.

    With forward works W_F = (b_{i+1} - b_i) V under pi_i and reverse works
    W_R = -(b_{i+1} - b_i) V under pi_{i+1} (equal counts), the free-energy
    step dF_i = -log(Z_{i+1} / Z_i) solves
        mean f(W_F - dF) = mean f(W_R + dF),   f(x) = 1 / (1 + e^x),
    the minimum-variance use of both directions (Bennett 1976; Shirts et al.
    2003). Solved by bisection, vectorised over pairs.

    Returns:
        (dF (P,), influence (R, P)): the per-round linearised influence of
        each round on dF, for error bars.
    """
    fwd_exp = -_log_mean_exp(-work_forward)[0]
    rev_exp = _log_mean_exp(-work_reverse)[0]
    spread = np.abs(work_forward).max(axis=0) + np.abs(work_reverse).max(axis=0) + 1.0
    lo = np.minimum(fwd_exp, rev_exp) - spread
    hi = np.maximum(fwd_exp, rev_exp) + spread
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        g = _fermi(work_forward - mid).mean(axis=0) - _fermi(work_reverse + mid).mean(axis=0)
        lo, hi = np.where(g < 0, mid, lo), np.where(g < 0, hi, mid)
    delta_f = 0.5 * (lo + hi)
    ff, fr = _fermi(work_forward - delta_f), _fermi(work_reverse + delta_f)
    slope = (ff * (1 - ff)).mean(axis=0) + (fr * (1 - fr)).mean(axis=0)
    influence = -(ff - fr) / np.maximum(slope, 1e-300)
    return delta_f, influence


def stepping_stone(energy, ladder, log_z_reference: float, n_batches: int | None = None) -> LogZ:
    """log Z of the beta = 1 end from per-round energies.

    The reported estimate is Bennett's acceptance ratio on every pair (both
    directions, minimum variance); the stepping stone forward, reverse and
    their mean, and thermodynamic integration come along as cross-checks.

        Args:
            energy: (T, N) energies V of each slot, one row per round, or
                (R, T, N) for R independent replicas on the same ladder
                (pooled; their disagreement enters the error bar).
            ladder: (N,) increasing inverse temperatures, 0 first and 1 last.
            log_z_reference: exact log Z of the beta = 0 reference.
            n_batches: batches for the error bar (default sqrt(R) within 5..50).

        Returns:
            LogZ.

        Example:
            >>> import numpy as np
            >>> from hamon_nnx.core.evidence import stepping_stone
            >>> # one free spin pair: V = -s1 s2 has Z_1 = 2 * 2cosh(1) over 4 states
            >>> g = np.random.default_rng(0)
            >>> ladder = np.linspace(0, 1, 8)
            >>> p_up = np.exp(ladder) / (2 * np.cosh(ladder))  # P(s1 s2 = +1) at beta
            >>> same = g.random((4000, 8)) < p_up
            >>> est = stepping_stone(np.where(same, -1.0, 1.0), ladder, np.log(4.0))
            >>> bool(abs(est.estimate - np.log(4 * np.cosh(1.0))) < 4 * est.stderr + 1e-3)
            True
    """
    energy = np.asarray(energy, np.float64)
    ladder = np.asarray(ladder, np.float64)
    if energy.ndim == 2:
        energy = energy[None]
    if energy.ndim != 3 or energy.shape[2] != ladder.shape[0]:
        raise ValueError(
            f"energy must have shape (rounds, {ladder.shape[0]}) or (replicas, rounds, "
            f"{ladder.shape[0]}), got {energy.shape}"
        )
    if not np.all(np.isfinite(energy)):
        r, t, i = np.argwhere(~np.isfinite(energy))[0]
        raise ValueError(f"energy is not finite at round {t}, ladder slot {i} (replica {r})")
    n_replicas, n_rounds = energy.shape[:2]
    n_batches = _batches(n_rounds, n_batches)
    energy = energy.reshape(n_replicas * n_rounds, -1)

    def per_replica(influence):
        return influence.reshape(n_replicas, n_rounds)

    step = np.diff(ladder)
    fwd_terms, fwd_w = _log_mean_exp(-step * energy[:, :-1])
    rev_terms, rev_w = _log_mean_exp(step * energy[:, 1:])
    forward = log_z_reference + float(fwd_terms.sum())
    reverse = log_z_reference - float(rev_terms.sum())
    fwd_influence = per_replica((fwd_w - 1.0).sum(axis=1))
    rev_influence = per_replica(-(rev_w - 1.0).sum(axis=1))
    mean_v = energy.mean(axis=0)
    ti = log_z_reference - float(np.sum(step * (mean_v[1:] + mean_v[:-1]) / 2))
    delta_f, bar_influence = bennett(step * energy[:, :-1], -step * energy[:, 1:])
    return LogZ(
        estimate=log_z_reference - float(delta_f.sum()),
        stderr=_batch_stderr(per_replica(-bar_influence.sum(axis=1)), n_batches),
        stepping_stone=(forward + reverse) / 2,
        stepping_stone_stderr=_batch_stderr((fwd_influence + rev_influence) / 2, n_batches),
        forward=forward,
        forward_stderr=_batch_stderr(fwd_influence, n_batches),
        reverse=reverse,
        reverse_stderr=_batch_stderr(rev_influence, n_batches),
        thermodynamic_integration=ti,
        n_rounds=n_rounds,
        n_batches=n_batches,
        n_replicas=n_replicas,
    )
