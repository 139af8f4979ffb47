"""tap-cloudwatch-metrics: Amazon CloudWatch metrics as a Singer tap."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-cloudwatch-metrics")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
