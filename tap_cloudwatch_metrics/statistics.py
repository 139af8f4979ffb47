"""Which CloudWatch statistic names are valid, checked before any API call.

CloudWatch accepts the five basic statistics and extended ones: percentiles (``p99``,
``p99.9``), trimmed/winsorized mean, trimmed count and trimmed sum (``TM(10%:90%)``,
``TM(:2000)``, shorthand ``tm99``), percentile rank (``PR(:300)``) and ``IQM``. A typo would
otherwise surface only as an empty result or an ``InvalidParameterValue`` mid-run.
"""

from __future__ import annotations

import re

BASIC_STATISTICS = ("Average", "Sum", "SampleCount", "Maximum", "Minimum")

_NUMBER = r"\d+(?:\.\d+)?"
# ASCII and whole-string matches: ``\d`` would take any script's digits (float() reads "٩٩")
# and ``$`` a trailing newline, both of which CloudWatch refuses mid-run.
_PERCENTILE = re.compile(rf"p({_NUMBER})", re.ASCII)
_SHORTHAND = re.compile(rf"(tm|wm|tc|ts)({_NUMBER})", re.ASCII)
_RANGE = re.compile(rf"(TM|WM|TC|TS|PR)\((?:({_NUMBER})(%?))?:(?:({_NUMBER})(%?))?\)", re.ASCII)

ALLOWED_DESCRIPTION = (
    "Average, Sum, SampleCount, Maximum, Minimum, pNN(.NN) (0-100), "
    "TM/WM/TC/TS(a%:b%) or (a:b) or tmNN/wmNN/tcNN/tsNN, PR(a:b), IQM"
)


def statistic_error(name: object) -> str | None:
    """Return why ``name`` is not a CloudWatch statistic, or None when it is one."""
    if not isinstance(name, str):
        return "must be a string"
    if name in BASIC_STATISTICS or name == "IQM":
        return None
    if match := _PERCENTILE.fullmatch(name):
        return None if float(match.group(1)) <= 100 else "percentile must be between p0 and p100"
    if match := _SHORTHAND.fullmatch(name):
        return None if float(match.group(2)) <= 100 else "percentage must be at most 100"
    if match := _RANGE.fullmatch(name):
        return _range_error(match)
    return "unknown statistic"


def _range_error(match: re.Match[str]) -> str | None:
    func, low, low_pct, high, high_pct = match.groups()
    if low is None and high is None:
        return "needs a lower or an upper bound"
    if low is not None and high is not None and low_pct != high_pct:
        return "both bounds must be percentages or both absolute values"
    is_percent = bool(low_pct or high_pct)
    if func == "PR" and is_percent:
        return "PR takes absolute values, not percentages"
    bounds = [float(b) for b in (low, high) if b is not None]
    if is_percent and any(b > 100 for b in bounds):
        return "percentages must be between 0% and 100%"
    if len(bounds) == 2 and bounds[0] >= bounds[1]:
        return "the lower bound must be below the upper bound"
    return None
