"""The keys of `hatrace inflate`'s summary.json that hold the run, not a
technique (docs/results.md, `summary.json`)."""

RUN_KEYS = ("limits", "ratios", "tracing_overhead_pooled")


def techniques(summary):
    """summary.json's technique names, in its order."""
    return [t for t in summary if t not in RUN_KEYS and isinstance(summary[t], dict)]
