r"""Over seeds: mean and sample std, Welch's delta, its standard error and t-test p, 2-SE
verdicts against the paper's claims; the number format and CSV writer the tables share.
"""

import csv
import math

from scipy import stats


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan for one value)."""
    n = len(xs)
    m = sum(xs) / n
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
    return m, s


def delta(variant: list[float], base: list[float]) -> tuple[float, float]:
    """Difference of means and its standard error sqrt(s_v^2/n_v + s_b^2/n_b)."""
    mv, sv = mean_std(variant)
    mb, sb = mean_std(base)
    return mv - mb, math.sqrt(sv**2 / len(variant) + sb**2 / len(base))


def welch_p(variant: list[float], base: list[float]) -> float:
    """Two-sided p of Welch's t-test of the two means (nan below 2 seeds a side). With 3 seeds
    a side its df is ~2-4, where |d| = 2 SE is p ~0.12-0.18, not 0.05."""
    if len(variant) < 2 or len(base) < 2:
        return math.nan
    return float(stats.ttest_ind(variant, base, equal_var=False).pvalue)


def verdict(d: float, se: float, claim: float | None) -> str:
    """How our delta d +- se compares with the paper's claimed delta (both in pp)."""
    if math.isnan(se):
        return "no SE (one seed per variant)"
    resolved = abs(d) > 2 * se
    if claim is None:
        return ("variant worse" if d > 0 else "variant better") if resolved else "not resolved"
    if not resolved:
        sign = "not resolved (within 2 SE of 0)"
    else:
        sign = "same sign" if (d > 0) == (claim > 0) else "reversed"
    size = "agrees in size" if abs(d - claim) <= 2 * se else "differs in size"
    return f"{sign}; {size}"


def fmt(x: float, digits: int = 2, signed: bool = False) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
