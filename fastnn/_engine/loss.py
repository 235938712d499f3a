"""The fused loss kernels' drivers (value and gradient in one pass)."""
from fastnn._kernels import _loss


def softmax_cross_entropy(logits, kind, t, grad, n_threads):
    """Mean softmax cross-entropy into ``grad`` (its gradient) for targets from
    ``fastnn._checks.ce_target``; returns (mean loss, correct count).  Labels outside
    [0, n_classes) are found by the kernel and raised here."""
    n, c = logits.shape
    scale = 1.0 / n
    if kind == "labels":
        total, correct, bad = _loss.softmax_ce_labels(logits, t, grad, scale, n_threads)
        if bad:
            lo, hi = int(t.min()), int(t.max())
            raise ValueError(
                f"target labels must be in [0, {c}) for {c} classes. Received labels in [{lo}, {hi}]"
            )
    else:
        total, correct = _loss.softmax_ce_probs(logits, t, grad, scale, n_threads)
    return total * scale, correct
