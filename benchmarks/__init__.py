"""Benchmarks: the tap against a minimal boto3 loop, both fed by the same fake CloudWatch."""
