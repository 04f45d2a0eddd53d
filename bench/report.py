"""Turns the results into `docs/benchmarks.md` (tables with targets and verdicts) and `docs/benchmarks.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import cloud, ingest, push


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "**missed**"


def f(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def efficiency_section(push: dict[str, Any], faults: dict[str, Any] | None) -> str:
    rows = []
    for key, label in (("one", "happy path, 1 instance, 3 workers"), ("many", "happy path, 10 instances, 3 workers"),
                       ("big", "happy path, 20 instances, 3 workers")):
        run = push.get(key) or {}
        if "requests_per_change" in run:
            per = run["requests_per_change"]
            rows.append([label, str(run["n_per_instance"] * run["instances"]), str(run["requests"]), f(per, 3),
                         "1.0", verdict(per <= 1.0)])
    if faults:
        rows.append(["≈20% faults (10% 5xx, 10% 502 after the write), 1 worker", str(faults["synced"]),
                     str(faults["requests"]), f(faults["requests_per_synced_excl_polls"], 3), "none set (reported)",
                     "n/a"])
    out = _table(["run", "synced changes", "JIRA requests", "requests per synced change", "target", "verdict"], rows)
    out += ("\n\nThe workers run (and have polled each instance once) before the backlog is accepted; requests are "
            "counted from then on. Under faults the count leaves out the start-up reconciliation polls.\n")
    if faults:
        pi = next(iter(faults["per_instance"].values()))
        kinds = ", ".join(f"`{k}` × {v}" for k, v in sorted(pi["kinds"].items(), key=lambda kv: -kv[1]))
        out += (f"\nUnder faults: final statuses {pi['statuses']}, duplicate worklogs {pi['duplicates']}, "
                f"429s {pi['rate_limited']}, drain {pi['drain_s']:.1f} s (backoff base 0.5 s). "
                f"Requests by kind: {kinds}.\n")
    return out


def ui_section(r: dict[str, Any]) -> str:
    rows = []
    for key, label in (("idle", "idle (backlog queued, no worker)"),
                       ("busy", f"while {r['workers']} workers drain against a 2 s JIRA")):
        run = r[key]
        errors = {k: v for k, v in run["statuses"].items() if k not in ("200", "202")}
        rows.append([label, str(run["requests"]), f(run["rate_per_s"]), f(run["p50_ms"]), f(run["p95_ms"]),
                     f(run["p99_ms"]), f(run["max_ms"]), str(errors or "none")])
    table = _table(["phase", "PUTs", "accepted/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows)
    ratio = r["ratio_p99"]
    return (f"{table}\n\nBacklog {r['backlog']} entries; PUTs at {r['rate']}/s for {r['seconds']} s each. During "
            f"the busy window JIRA received {r['jira_requests_during']} requests ({r['jira_writes_during']} "
            f"writes). p99 busy/idle = **{f(ratio, 2)}×**; target ≤ 2×: {verdict(ratio is not None and ratio <= 2)}.\n")


def versus_section(r: dict[str, Any]) -> str:
    rows = []
    for rd in r["rounds"]:
        p, s = rd["plain"], rd["service"]
        rows.append([f"{rd['limit']} req/s", f(p["elapsed_s"]), str(p["requests"]), str(p["rate_limited"]),
                     f(s["elapsed_s"]), str(s["requests"]), str(s["rate_limited"]), f(rd["speedup"], 2) + "×"])
    lib = r["rounds"][0]["plain"].get("library", "jira")
    return (_table(["JIRA limit", "plain client s", "its requests", "its 429s", "service s", "its requests",
                    "its 429s", "plain ÷ service"], rows)
            + f"\n\n{r['n']} worklogs, simulator latency {r['latency_ms']} ms per request. Plain client: `{lib}` "
            "(`JIRA(server, oauth={…, 'signature_method': SIGNATURE_RSA})`, then `add_worklog` one after another; "
            "its time includes the constructor's `serverInfo`/`myself` calls). Service: one worker, entries "
            "submitted in one batch call; time from that call to the last worklog written at the simulator. "
            "Both ran at the same time on separate simulator instances (the plain client mostly waits on "
            "latency), which costs each some CPU.\n")


def memory_section(mem: dict[str, float]) -> str:
    rows = [[f"API (largest of {int(mem.get('api_processes', 1))} uvicorn processes)", f(mem.get("api")), "< 200",
             verdict(mem.get("api", 0) < 200)]]
    if "worker" in mem:
        rows.append([f"worker (largest of {int(mem.get('workers_sampled', 0))} processes sampled)",
                     f(mem["worker"]), "< 200", verdict(mem["worker"] < 200)])
    return _table(["process", "peak RSS MB", "target MB", "verdict"], rows) + \
        "\n\nSampled every 0.5 s with psutil over every run above.\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    push = results.get("push", {})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for key, label in (("one", "1 instance (10/s)"), ("many", "10 instances (10/s each), total")):
        run = push.get(key) or {}
        if "per_instance" in run:
            times = sorted(t for p in run["per_instance"].values() for t in p["write_times"])
            ax.plot(times, range(1, len(times) + 1), label=label)
    ax.set_title("Backlog drain: worklogs written over time")
    ax.set_xlabel("seconds since the backlog was accepted")
    ax.set_ylabel("worklogs written (at JIRA)")
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[1]
    one = push.get("one") or {}
    if "per_second" in one:
        ps = one["per_second"]
        ax.step(range(len(ps)), ps, where="post", label="1 instance, 3 workers")
    ax.axhline(10, color="red", linestyle="--", label="limit 10 req/s")
    ax.set_title("Requests per second at JIRA, one instance")
    ax.set_xlabel("second since first request")
    ax.set_ylabel("requests in that second")
    ax.set_ylim(0, 14)
    ax.legend(loc="lower center")
    ax.grid(alpha=0.3)

    ax = axes[2]
    many = push.get("many") or {}
    for name, p in (many.get("per_instance") or {}).items():
        ax.step(range(len(p["per_second"])), p["per_second"], where="post", label=name, alpha=0.6)
    ax.axhline(10, color="red", linestyle="--", label="limit per instance")
    ax.set_title("Requests per second per instance, 10 instances")
    ax.set_xlabel("second since the instance's first request")
    ax.set_ylim(0, 14)
    ax.legend(loc="lower center", ncol=4, fontsize="x-small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], md_path: Path, png_path: Path) -> None:
    m = results["machine"]
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench{' --quick' if results['quick'] else ''}`) on "
        f"{results['date']} in {results['total_s']:.0f} s. Every figure below comes from that run; run it again to "
        "reproduce them. Everything runs on this one machine over loopback: PostgreSQL, Redis, the API as the "
        "README's production command (`uvicorn app.main:app --http h11 --workers <cores>`, `--no-access-log`, "
        "`LOG_LEVEL=WARNING`), `python -m workers` processes "
        "(`RECONCILE_INTERVAL_SECONDS=3600` so polling stays out of the counts; all other settings default), the "
        "JIRA simulator (`python -m jirasim`, its own process) and the load generators (their own processes).",
        "",
        "## Machine",
        "",
        _table(["", ""], [["CPU", m["cpu"]], ["cores", str(m["cores"])], ["RAM", f"{m['ram_gib']} GiB"],
                          ["OS", m["os"]], ["Python", m["python"]], ["PostgreSQL", m["postgres"]],
                          ["Redis", m["redis"]],
                          ["load average at start (1/5/15 min)", " / ".join(map(str, m["load_avg_at_start"]))]]),
        "",
        "The machine is shared (other test suites may run at the same time; see the load average), and load "
        "generator, API, PostgreSQL, Redis, simulator and workers all compete for the same 2 cores, so the "
        "figures are pessimistic for a deployment with the database on its own host.",
        "",
    ]
    if results.get("quick"):
        parts += ["**This is a `--quick` smoke run with small sizes: the figures are not the benchmark.**", ""]
    if "ingest" in results:
        parts += ["## 1. Ingest (no worker running)", "", ingest.report_section(results["ingest"])]
    if "push" in results:
        parts += ["## 2. Push: throughput, cost per change, latency, fair share (issue 15, CONTRACT 11)", "",
                  "JIRA at 10 req/s (burst 10) per instance and `rate_limit_per_second: 10` in the service; workers "
                  "started and settled first, then the backlog accepted through the batch endpoint. Writes/s = "
                  "worklogs written ÷ (last write − first request + one slot of 1/limit s); utilisation = writes/s "
                  "÷ limit. The busiest second and the 429s are the simulator's own count of arrivals in a sliding "
                  "one-second window. Where the CPU of a push goes: [performance.md](performance.md#push).", "",
                  push.section(results["push"]),
                  "![drain curves and per-second request counts](benchmarks.png)", ""]
        parts += ["## 3. Efficiency: JIRA requests per synced change", "",
                  efficiency_section(results["push"], results.get("faults"))]
    if "ui" in results:
        parts += ["## 4. The UI never waits for JIRA", "", ui_section(results["ui"])]
    if "versus" in results:
        parts += ["## 5. Against a plain sequential client", "", versus_section(results["versus"])]
    parts += ["## 6. Memory", "", memory_section(results["memory"])]
    if "cloud" in results:
        parts += ["## 7. Jira Cloud: a site's limit and Atlassian's points", "", cloud.report_section(results["cloud"])]
    if results.get("errors"):
        parts += ["## Runs that failed", ""] + [f"- {k}: `{v}`" for k, v in results["errors"].items()] + [""]
    md_path.write_text("\n".join(parts))
    if "push" in results:
        plot(results, png_path)
