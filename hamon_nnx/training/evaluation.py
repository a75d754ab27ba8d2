"""When the Trainer evaluates, and which model it keeps.

Evaluation is decided from counts only (epochs done, where the `fit` call
started and ends), never from the clock, so the same key gives the same
history on any machine. The default schedule is geometric: epochs 1, 2, 4,
8, ... and the last epoch of a `fit` call that ran at least half of the
epochs done so far. A run of E epochs then evaluates at most about
2 log2(E) + 1 times, whether it is one long `fit` call or a loop of
one-epoch calls, so the evaluations' share of the work shrinks as the run
grows instead of staying fixed (evaluating every epoch of a small RBM cost
12 epochs of training per epoch).

Model selection reads the history alone (the best value so far of the
monitored metric and the evaluations since), so a resumed run selects
exactly as the uninterrupted one.
"""

from __future__ import annotations

import numpy as np

AUTO = "auto"


def check_eval_every(eval_every) -> int | str:
    """`eval_every` checked: "auto" or an integer >= 0 (0: never evaluate)."""
    if eval_every == AUTO:
        return AUTO
    if isinstance(eval_every, bool) or not isinstance(eval_every, int | np.integer):
        raise ValueError(f"eval_every must be 'auto' or an integer >= 0, got {eval_every!r}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be 'auto' or an integer >= 0, got {eval_every}")
    return int(eval_every)


def due(eval_every, epochs_done: int, fit_start: int, fit_end: int) -> bool:
    """Whether the epoch that makes `epochs_done` epochs is evaluated.

    Args:
        eval_every: "auto" (geometric, see the module) or every k epochs (0: never).
        epochs_done: epochs finished, this one included (1-based).
        fit_start: epochs done when the `fit` call began.
        fit_end: the `fit` call's `epochs`.

    Example:
        >>> [e for e in range(1, 41) if due("auto", e, 0, 40)]
        [1, 2, 4, 8, 16, 32, 40]
        >>> [e for e in range(1, 41) if due("auto", e, e - 1, e)]  # one epoch per call
        [1, 2, 4, 8, 16, 32]
    """
    if eval_every != AUTO:
        return bool(eval_every) and epochs_done % eval_every == 0
    if epochs_done & (epochs_done - 1) == 0:
        return True
    return epochs_done == fit_end and 2 * (fit_end - fit_start) >= fit_end


def default_monitor(history: dict, has_eval_data: bool) -> str:
    """The metric model selection watches: the held-out log-likelihood when there is one."""
    return "eval_log_likelihood" if has_eval_data else "train_log_likelihood"


def selection(history: dict, monitor: str) -> tuple[int | None, int]:
    """(index of the best evaluation, evaluations since it) of `history[monitor]`.

    Higher is better; ties keep the earlier evaluation. (None, 0) before any.

    Example:
        >>> selection({"eval_log_likelihood": [-3.0, -2.0, -2.5, -2.0]}, "eval_log_likelihood")
        (1, 2)
    """
    values = np.asarray(history.get(monitor, []), np.float64)
    if not np.any(np.isfinite(values)):
        return None, 0
    best = int(np.nanargmax(np.where(np.isfinite(values), values, np.nan)))
    return best, len(values) - 1 - best
