"""Writes croniter_table.json: the next fire times croniter 3.0 (what Python jararaca 0.5.13
uses) computes for a table of expressions, from a start instant, in a time zone.

usage: python croniter_table.py zoneinfo > croniter_table_zoneinfo.json
       python croniter_table.py pytz > croniter_table.json
(with croniter==3.0.* and pytz)

`zoneinfo` builds each start time as the reference's beat does:
`datetime.fromtimestamp(last_dispatch_time, tz=ZoneInfo(JARARACA_DEFAULT_TIMEZONE))`.
`pytz` builds it with a pytz zone, which croniter handles across DST changes.
"""
import json
from datetime import datetime

import sys
from zoneinfo import ZoneInfo

import pytz

from croniter import croniter

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "* * * * * */5",
    "*/5 * * * * */10",
    "0 * * * * 30",
    "15,45 * * * *",
    "0 9-17/2 * * *",
    "30 8 * * mon-fri",
    "0 0 1 jan *",
    "0 12 * jun-aug sat,sun",
    "0 0 L * *",
    "0 6 1,15 * *",
    "0 0 1 * mon",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "0 2 * * *",
    "30 2 * * *",
    "0 1 * * *",
    "30 1 * * *",
    "0 */3 * * *",
    "5 4 * * sun",
    "0 0 29 2 *",
    "0 0 * * 7",
    "10-20/5 * * * *",
]

ZONES = ["UTC", "America/New_York", "Europe/Berlin"]

# Starts just before DST transitions (US: 2026-03-08 and 2026-11-01; EU: 2026-03-29 and
# 2026-10-25) and at an ordinary instant.
STARTS = [
    "2026-03-07T22:00:00+00:00",
    "2026-10-31T22:00:00+00:00",
    "2026-03-28T22:00:00+00:00",
    "2026-10-24T22:00:00+00:00",
    "2026-06-15T10:11:12+00:00",
]

COUNT = 6


def main():
    rows = []
    for zone in ZONES:
        tz = ZoneInfo(zone) if sys.argv[1:] == ["zoneinfo"] else pytz.timezone(zone)
        for start in STARTS:
            start_ts = int(datetime.fromisoformat(start).timestamp())
            for expression in EXPRESSIONS:
                nexts = []
                current = start_ts
                for _ in range(COUNT):
                    # As the reference does it: a new croniter from the last time, in the zone.
                    start_dt = datetime.fromtimestamp(current, tz=tz)
                    current = int(croniter(expression, start_dt).get_next(datetime).timestamp())
                    nexts.append(current)
                rows.append(
                    {
                        "expression": expression,
                        "zone": zone,
                        "start": start_ts,
                        "next": nexts,
                    }
                )
    print("[")
    print(",\n".join(json.dumps(row, separators=(",", ":")) for row in rows))
    print("]")


if __name__ == "__main__":
    main()
