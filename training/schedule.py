"""Learning-rate schedules as pure functions of the step (so a resumed run needs only the step).

WSD (warmup-stable-decay, as in OpenCoder and MiniCPM): linear warmup to the peak, a long flat
stable phase, and a final decay to `min_lr`. The decay is also where the annealing data mix is
read. Cosine: linear warmup, then a half cosine from the peak down to `min_lr`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Phase = Literal["warmup", "stable", "decay"]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    kind: Literal["wsd", "cosine"]
    """Shape of the schedule."""
    steps: int
    """Optimizer steps in total."""
    lr: float
    """Peak learning rate."""
    min_lr: float
    """Final learning rate."""
    warmup_steps: int
    """Steps of the linear warmup (capped at the total)."""
    decay_fraction: float = 0.2
    """WSD only: share of the total steps spent decaying."""
    decay_shape: Literal["linear", "cosine", "sqrt"] = "linear"
    """WSD only: how the decay falls from lr to min_lr."""

    @property
    def warmup(self) -> int:
        return min(self.warmup_steps, self.steps)

    @property
    def decay_start(self) -> int:
        """First step of the decay phase (WSD); for cosine, the end of the warmup."""
        if self.kind == "cosine":
            return self.warmup
        decay_steps = round(self.steps * self.decay_fraction)
        return max(self.warmup, self.steps - decay_steps)

    def phase(self, step: int) -> Phase:
        """Phase of the 0-based optimizer step `step`."""
        if step < self.warmup:
            return "warmup"
        if self.kind == "wsd" and step < self.decay_start:
            return "stable"
        return "decay"

    def lr_at(self, step: int) -> float:
        """Learning rate for 0-based optimizer step `step`."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.steps - 1 - self.decay_start)  # the last step lands on min_lr
        progress = min(1.0, (step - self.decay_start) / span)
        if self.kind == "cosine":
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
        if step < self.decay_start:
            return self.lr
        if self.decay_shape == "linear":
            remaining = 1.0 - progress
        elif self.decay_shape == "cosine":
            remaining = 0.5 * (1 + math.cos(math.pi * progress))
        else:  # sqrt: falls fast at first, then flattens ("1 - sqrt")
            remaining = 1.0 - math.sqrt(progress)
        return self.min_lr + (self.lr - self.min_lr) * remaining
