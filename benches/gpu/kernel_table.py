#!/usr/bin/env python3
"""Where one forward pass spends its GPU time, from cubecl's profiling log.

With `[profiling.logger] level = "basic"` in `cubecl.toml`, cubecl times every kernel
launch and writes `| 1.234ms    | KernelName` per launch, then a summary table at every
device sync. `clip_throughput` syncs once per batch (it reads the features back), so the
launches after the last-but-one summary are exactly the last batch's forward pass. This
prints them grouped by kernel, largest total first.

    python3 benches/gpu/kernel_table.py kernels.log
"""

import re
import sys
from collections import defaultdict

LAUNCH = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")
UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def batches(lines):
    """Launch lists, one per stretch of log between summary tables."""
    current = []
    for line in lines:
        match = LAUNCH.match(line)
        if match and "|" not in match.group(3):
            value, unit, name = match.groups()
            current.append((name, float(value) * UNITS[unit]))
        elif line.startswith("|") and current:
            # A summary table begins: the launches so far belong to one sync.
            yield current
            current = []
    if current:
        yield current


def main():
    with open(sys.argv[1], encoding="utf-8", errors="replace") as file:
        stretches = [stretch for stretch in batches(file.read().splitlines()) if len(stretch) > 20]
    if not stretches:
        print("no kernel launches found in the profiling log")
        return
    launches = stretches[-1]
    totals = defaultdict(lambda: [0.0, 0])
    for name, ms in launches:
        key = re.sub(r"\s+", " ", name)[:120]
        totals[key][0] += ms
        totals[key][1] += 1
    overall = sum(ms for ms, _ in totals.values())
    print(f"one forward pass (the last batch): {len(launches)} launches, {overall:.1f} ms of GPU time")
    print("| ms | share | launches | kernel |")
    print("|---|---|---|---|")
    for name, (ms, count) in sorted(totals.items(), key=lambda item: -item[1][0]):
        print(f"| {ms:.2f} | {100 * ms / overall:.1f}% | {count} | {name} |")


if __name__ == "__main__":
    main()
