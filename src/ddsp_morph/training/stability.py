"""Training-stability summary from a run's loss history."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SPIKE_FACTOR = 2.0  # a spike: a training loss above 2x the running median
SPIKE_WINDOW = 50  # steps in the running median
WITHIN = 0.10  # "converged": within 10% of the final validation loss


def stability_summary(
    train_losses: Sequence[float],
    val_steps: Sequence[int],
    val_losses: Sequence[float],
    nonfinite_steps: int,
) -> dict[str, float | int | bool | None]:
    """Best and final validation loss, steps to come within 10% of the final value, loss spikes
    (over 2x the running median of the previous 50 training losses), non-finite steps skipped,
    and diverged (a non-finite validation loss, or a final one above 2x the best)."""
    train = np.asarray(train_losses, dtype=np.float64)
    spikes = 0
    for i in range(1, len(train)):
        window = train[max(0, i - SPIKE_WINDOW) : i]
        window = window[np.isfinite(window)]
        if window.size and np.isfinite(train[i]) and train[i] > SPIKE_FACTOR * np.median(window):
            spikes += 1
    val = np.asarray(val_losses, dtype=np.float64)
    finite = val[np.isfinite(val)]
    best = float(finite.min()) if finite.size else None
    final = float(val[-1]) if val.size else None
    steps_to_within = None
    if final is not None and math.isfinite(final):
        for step, v in zip(val_steps, val, strict=True):
            if np.isfinite(v) and abs(v - final) <= WITHIN * abs(final):
                steps_to_within = int(step)
                break
    diverged = bool(
        val.size and (not np.isfinite(val).all() or (best is not None and final > 2 * best))
    )
    return {
        "best_val_loss": best,
        "final_val_loss": final,
        "steps_to_within_10pct": steps_to_within,
        "loss_spikes": spikes,
        "nonfinite_steps_skipped": int(nonfinite_steps),
        "diverged": diverged,
        "train_steps": int(len(train)),
    }


SKIPPED_SHARE = 0.01  # over 1% of the batches skipped as non-finite: the run says so


def skipped_steps_line(skipped: int, batches: int) -> str | None:
    """One line for the end of a run when over ``SKIPPED_SHARE`` of its training batches had a
    non-finite loss or gradient and were skipped; None otherwise. A few are an accident of the
    data; many are a bug, and they cost the run those steps."""
    if batches == 0 or skipped <= SKIPPED_SHARE * batches:
        return None
    return (
        f"{skipped} of {batches} training batches ({100 * skipped / batches:.1f}%) had a "
        "non-finite loss or gradient and were skipped (stability.json nonfinite_steps_skipped): "
        "the run trained that much less; a share this size points at a loss term or the data"
    )
