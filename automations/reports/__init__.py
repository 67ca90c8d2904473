"""Reporting for custom events: performance, conversions and attribution, read from daily rollups plus the
raw rows recorded since the last rollup run (see docs/reporting.md)."""
