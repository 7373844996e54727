"""GiB*min of RSS points, recomputed in the tests independently of
user/lib/rss_series.c: the trapezoid sum over [a, b], holding the first and
last values outside the points."""
GIB = 1 << 30


def trapezoid(rows, a, b):
    """rows: (time_ns, bytes) in time order; a, b: the window in ns."""
    total = 0.0
    for (t0, v0), (t1, v1) in zip(rows, rows[1:]):
        lo, hi = max(t0, a), min(t1, b)
        if hi > lo:
            at = lambda t: v0 + (v1 - v0) * (t - t0) / (t1 - t0)  # noqa: E731
            total += (at(lo) + at(hi)) / 2 * (hi - lo)
    if rows and rows[0][0] > a:
        total += rows[0][1] * (min(rows[0][0], b) - a)
    if rows and rows[-1][0] < b:
        total += rows[-1][1] * (b - max(rows[-1][0], a))
    return total / 1e9 / GIB / 60
