"""Turns the results into `docs/benchmarks.md` (tables with targets and verdicts) and `docs/benchmarks.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import cloud, ingest


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


def sync_section(r: dict[str, Any]) -> str:
    rows = []
    for key, label in (("one_instance_1w", "1 instance, 1 worker"), ("one_instance_3w", "1 instance, 3 workers"),
                       ("five_instances_3w", "5 instances, 3 workers")):
        run = r.get(key)
        if not run:
            continue
        pis = list(run["per_instance"].values())
        util = min(p["utilisation"] for p in pis)
        maxw = max(p["max_in_1s"] for p in pis)
        r429 = sum(p["rate_limited"] for p in pis)
        drain = max(p["drain_s"] for p in pis)
        first = min(p["first_request_after_launch_s"] for p in pis)
        synced = run["synced"]
        total = run["n_per_instance"] * run["instances"]
        rows.append([label, f"{total} ({run['n_per_instance']}/instance)", f"{synced}", f(drain), f(first),
                     f(run["total_writes_per_s"], 2), f"{run['total_limit']:.0f}", f(util, 3),
                     f"{maxw} (limit {run['total_limit'] / run['instances']:.0f})", str(r429),
                     str(sum(p["duplicates"] for p in pis)),
                     f"{verdict(util >= 0.95)} / {verdict(maxw <= 10)} / {verdict(r429 == 0)}"])
    table = _table(["run", "backlog", "synced", "drain s (from worker start)", "first JIRA request s",
                    "writes/s", "limit/s", "utilisation (min per instance)", "max requests in any 1 s",
                    "429s", "duplicate worklogs", "utilisation ≥ 0.95 / max ≤ limit / 0 × 429"], rows)
    notes = []
    one, five = r.get("one_instance_3w"), r.get("five_instances_3w")
    if one and five:
        scale = five["total_writes_per_s"] / one["total_writes_per_s"]
        notes.append(f"Five instances against one (3 workers each time): **{scale:.2f}×** the throughput "
                     f"(ideal 5×): {verdict(scale >= 4.75)}.")
        per = ", ".join(f"{k} {v['writes_per_s']:.2f}/s (last write at {v['drain_s']:.0f} s)"
                        for k, v in five["per_instance"].items())
        notes.append(f"Per instance (writes/s over its own active span, and when its last worklog was written): {per}.")
    return table + "\n\n" + "\n".join(notes) + "\n"


def efficiency_section(r: dict[str, Any], faults: dict[str, Any] | None) -> str:
    rows = []
    for key, label in (("one_instance_1w", "happy path, 1 worker"), ("one_instance_3w", "happy path, 3 workers"),
                       ("five_instances_3w", "happy path, 5 instances")):
        run = r.get(key)
        if run:
            per = run["requests_per_synced_excl_polls"]
            rows.append([label, str(run["synced"]), str(run["requests"]), str(run["reconcile_polls"]),
                         f(run["requests_per_synced"], 3), f(per, 3), "1.0", verdict(per is not None and per <= 1.0)])
    if faults:
        rows.append(["≈20% faults (10% 5xx, 10% 502 after the write), 1 worker", str(faults["synced"]),
                     str(faults["requests"]), str(faults["reconcile_polls"]), f(faults["requests_per_synced"], 3),
                     f(faults["requests_per_synced_excl_polls"], 3), "none set (reported)", "n/a"])
    out = _table(["run", "synced changes", "JIRA requests", "of which start-up reconcile polls",
                  "requests per synced change", "excluding the start-up polls", "target", "verdict"], rows)
    out += ("\n\nEach worker's reconciler polls `worklog/updated` and `worklog/deleted` once when it starts, whatever "
            "`RECONCILE_INTERVAL_SECONDS` says; those requests are not per change, so the verdict uses the second "
            "figure.\n")
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

    sync = results.get("sync", {})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for key, label in (("one_instance_1w", "1 instance, 1 worker"), ("one_instance_3w", "1 instance, 3 workers"),
                       ("five_instances_3w", "5 instances, 3 workers (total)")):
        run = sync.get(key)
        if not run:
            continue
        times = sorted(t for p in run["per_instance"].values() for t in p["write_times"])
        ax.plot(times, range(1, len(times) + 1), label=label)
    ax.set_title("Backlog drain: worklogs written over time")
    ax.set_xlabel("seconds since workers started")
    ax.set_ylabel("worklogs written (at JIRA)")
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[1]
    for key, label in (("one_instance_1w", "1 worker"), ("one_instance_3w", "3 workers")):
        run = sync.get(key)
        if run:
            ps = next(iter(run["per_instance"].values()))["per_second"]
            ax.step(range(len(ps)), ps, where="post", label=label)
    ax.axhline(10, color="red", linestyle="--", label="limit 10 req/s")
    ax.set_title("Requests per second at JIRA, one instance")
    ax.set_xlabel("second since first request")
    ax.set_ylabel("requests in that second")
    ax.set_ylim(0, 14)
    ax.legend(loc="lower center")
    ax.grid(alpha=0.3)

    ax = axes[2]
    run = sync.get("five_instances_3w")
    if run:
        for name, p in run["per_instance"].items():
            ax.step(range(len(p["per_second"])), p["per_second"], where="post", label=name, alpha=0.7)
        ax.axhline(10, color="red", linestyle="--", label="limit per instance")
    ax.set_title("Requests per second per instance, 5 instances")
    ax.set_xlabel("second since the instance's first request")
    ax.set_ylim(0, 14)
    ax.legend(loc="lower center", ncol=3, fontsize="small")
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
    if "sync" in results:
        parts += ["## 2. Sync throughput against JIRA's rate limit", "",
                  "Backlog accepted via the batch endpoint, then workers started; JIRA at 10 req/s (burst 10) "
                  "per instance and `rate_limit_per_second: 10` in the service. Writes/s = worklogs written ÷ (last "
                  "write − first request + one slot of 1/limit s); utilisation = writes/s ÷ limit. The max and "
                  "the 429s are the simulator's own count of arrivals in a sliding one-second window.", "",
                  sync_section(results["sync"]),
                  "![drain curves and per-second request counts](benchmarks.png)", ""]
        parts += ["## 3. Efficiency: JIRA requests per synced change", "",
                  efficiency_section(results["sync"], results.get("faults"))]
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
    if "sync" in results:
        plot(results, png_path)
