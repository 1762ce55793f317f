"""pass@k, FIM string metrics.

pass@k is the unbiased estimator of Chen et al. (2021): with n samples of a task of which c pass,
the chance that at least one of k samples drawn without replacement passes is
1 - C(n-c, k) / C(n, k). The product form below computes it without huge binomials.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task with `n` samples, `c` of them correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i)  ==  1 - C(n-c, k) / C(n, k)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_summary(
    outcomes: Iterable[tuple[str, bool]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean pass@k over tasks from (task_id, passed) pairs, for every k that all tasks allow
    (k <= the smallest sample count), as `pass@k` keys."""
    per_task: dict[str, list[bool]] = defaultdict(list)
    for task_id, passed in outcomes:
        per_task[task_id].append(bool(passed))
    if not per_task:
        return {}
    fewest = min(len(v) for v in per_task.values())
    summary = {}
    for k in ks:
        if k <= fewest:
            scores = [pass_at_k(len(v), sum(v), k) for v in per_task.values()]
            summary[f"pass@{k}"] = float(np.mean(scores))
    return summary


def edit_similarity(prediction: str, reference: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    if prediction == reference:
        return 1.0
    longer = max(len(prediction), len(reference))
    return 1.0 - levenshtein(prediction, reference) / longer


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions turning `a` into `b` (two-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]
