"""When the Trainer evaluates, and which model it keeps.

Evaluation is decided from counts only, never from the clock, so the same
key gives the same history on any machine. The default schedule ("auto")
is a budget: the work of one evaluation is counted in free-energy
evaluations of the model (log Z by enumeration: one per enumerated state;
the pseudo-likelihood: one per vector, variable and value; the
log-likelihood and reconstruction: one or two per vector), so is a
training step's (the batch and its gradient, three per sampled chain
sweep), and evaluations run at the ends of the epochs where the training
work first passes 10, 20, 40, 80, ... times one evaluation's work. Up to
any point of a run evaluation has then cost at most about a tenth of the
training, whether the run is one long `fit` call or a loop of one-epoch
calls, and a run of W evaluations' worth of training evaluates about
log2(W / 10) times. A `fit` call of at least two epochs that ran at least
half of the epochs done so far also evaluates its last epoch (so `fit`
from scratch ends with numbers), which at most doubles the count.

Model selection reads the history alone (the best value so far of the
monitored metric and the evaluations since), so a resumed run selects
exactly as the uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np

AUTO = "auto"
BUDGET = 10  # training work per evaluation's work before the first evaluation


def check_eval_every(eval_every) -> int | str:
    """`eval_every` checked: "auto" or an integer >= 0 (0: never evaluate)."""
    if eval_every == AUTO:
        return AUTO
    if isinstance(eval_every, bool) or not isinstance(eval_every, int | np.integer):
        raise ValueError(f"eval_every must be 'auto' or an integer >= 0, got {eval_every!r}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be 'auto' or an integer >= 0, got {eval_every}")
    return int(eval_every)


def _doublings(steps: int, period: float) -> int:
    """How many of the thresholds period, 2 period, 4 period, ... `steps` has passed."""
    return 0 if steps < period else int(math.floor(math.log2(steps / period))) + 1


def due(eval_every, epochs_done: int, fit_start: int, fit_end: int, steps=(0, 0), period=1.0):
    """Whether the epoch that makes `epochs_done` epochs is evaluated.

    Args:
        eval_every: "auto" (the budget, see the module) or every k epochs (0: never).
        epochs_done: epochs finished, this one included (1-based).
        fit_start: epochs done when the `fit` call began.
        fit_end: the `fit` call's `epochs`.
        steps: (training steps before this epoch, after it).
        period: `BUDGET` evaluations' work in training steps (`period_in_steps`).

    Example:
        >>> period = 100.0  # ten evaluations' work is 100 steps
        >>> [e for e in range(1, 41) if due("auto", e, e - 1, e, (10 * e - 10, 10 * e), period)]
        [10, 20, 40]
        >>> due("auto", 40, 0, 40, (390, 400), period)  # the end of a long fit
        True
    """
    if eval_every != AUTO:
        return bool(eval_every) and epochs_done % eval_every == 0
    before, after = steps
    if _doublings(after, period) > _doublings(before, period):
        return True
    ran = fit_end - fit_start
    return epochs_done == fit_end and ran >= 2 and 2 * ran >= fit_end


def period_in_steps(evaluation_work: float, step_work: float) -> float:
    """`BUDGET` evaluations' work counted in training steps (both in free energies)."""
    return BUDGET * evaluation_work / max(step_work, 1.0)


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
