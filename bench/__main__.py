"""`python -m bench [--quick] [--only push,faults,cloud,versus,ui,ingest]`: run the benchmarks, write the report.

Order matters: the runs that start workers come first, each with its own tenant and simulator instance; the
UI run leaves part of its backlog pending, and ingest (no workers at all) comes last, so nothing left due by one
run is pushed during another.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import cloud, ingest, machine, push, report, responsiveness, sync, versus
from bench.stack import ROOT, Bench

STEPS = ("push", "faults", "cloud", "versus", "ui", "ingest")
SIM_INSTANCES = {**push.SIM_INSTANCES, **{name: {} for name in ("faults", "plain", "svc", "ui", "ingest", cloud.SITE)}}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the harness")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    only = [s for s in STEPS if s in args.only.split(",")]

    t0 = time.monotonic()
    bench = Bench(SIM_INSTANCES, ROOT / ".data" / "bench")
    results: dict[str, Any] = {"quick": args.quick, "errors": {},
                               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        bench.start()
        assert bench.stack is not None
        results["machine"] = machine.describe(bench.stack.postgres.extra.get("bindir"))
        runners = {"push": push.run, "faults": sync.run_faults, "cloud": cloud.run, "versus": versus.run,
                   "ui": responsiveness.run, "ingest": ingest.run}
        for step in only:
            print(f"[bench] {step} …", flush=True)
            s0 = time.monotonic()
            try:
                results[step] = runners[step](bench, quick=args.quick)
            except Exception as exc:  # one failed measurement must not lose the others
                traceback.print_exc()
                results["errors"][step] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] {step} done in {time.monotonic() - s0:.0f} s", flush=True)
        results["memory"] = bench.peak_rss_mb()
    finally:
        bench.stop()
    results["total_s"] = time.monotonic() - t0
    raw = ROOT / ".data" / "bench-results.json"
    raw.write_text(json.dumps(results, indent=1, default=str))
    report.write(results, args.out, args.out.with_suffix(".png"))
    print(f"[bench] wrote {args.out} (raw figures: {raw}) in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
