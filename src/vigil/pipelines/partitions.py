"""The daily partitions every day-level asset shares."""

from __future__ import annotations

import dagster as dg

# The earliest day the pipelines accept; the simulator and the handbook's data start on
# 2018-04-01. A day without a raw partition fails its run with a clear message.
FIRST_DAY = "2018-01-01"

DAILY = dg.DailyPartitionsDefinition(start_date=FIRST_DAY)
