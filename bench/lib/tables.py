"""tables.py: what the summaries of bench/'s comparison scripts share —
reading their TSV files, medians that skip missing figures, and the number
formats of their markdown tables. Python 3 standard library only.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    from tables import load, median, fmt, ratio
"""

import csv
import math
import statistics


def load(path):
    """The rows of a tab-separated file with a header line, as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def median(values):
    """Median of the values that are numbers (wrk's missing percentiles are
    nan), or None when there is none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    """v with thousands separators, or – when missing."""
    return "–" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    """a / b to two places, or – when either is missing or b is 0."""
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}"
