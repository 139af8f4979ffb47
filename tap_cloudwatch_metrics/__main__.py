"""Allow ``python -m tap_cloudwatch_metrics``."""

from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics

TapCloudWatchMetrics.cli()
