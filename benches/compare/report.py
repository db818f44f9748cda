#!/usr/bin/env python3
"""Turns the runs recorded by benches/compare.sh into benches/RESULTS.md.

Every figure is the median over the interleaved rounds of one front door.
Ratios compare medians from the same rounds; the targets are those of the
sidecar performance issue (and, for the mTLS hop, the mesh-tls issue).
"""
import argparse
import csv
import datetime
import os
import statistics
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")
MIB = 1024

NAMES = {
    "direct": "direct",
    "sidecar-in": "sidecar inbound (metrics, policy)",
    "sidecar-out": "sidecar outbound (metrics, retry, timeouts)",
    "haproxy": "HAProxy",
    "nginx": "nginx",
    "sidecar-plain-pair": "sidecar pair, plaintext",
    "sidecar-mtls-pair": "sidecar pair, mTLS",
    "haproxy-mtls-pair": "HAProxy pair, mTLS",
    "alloc-glibc": "sidecar inbound (glibc, own process)",
    "alloc-mimalloc": "sidecar inbound (mimalloc)",
    "alloc-jemalloc": "sidecar inbound (jemalloc)",
}
# The sidecars of `--allocators`: the same configuration, one process per
# global allocator, only their inbound listeners loaded.
ALLOCATORS = ["alloc-glibc", "alloc-mimalloc", "alloc-jemalloc"]
SIDECARS = ["sidecar-in", "sidecar-out"]
# The process whose memory a front door reports (both sidecar rows are one process).
MEMORY_OF = {"sidecar-out": "sidecar-in"}


def parse_args():
    p = argparse.ArgumentParser()
    for name in ["results", "memory", "command", "cpu", "load-start", "load-end"]:
        p.add_argument("--" + name, required=True)
    for name in ["rounds", "threads", "idle-conns", "cores", "elapsed"]:
        p.add_argument("--" + name, type=int, required=True)
    for name in ["duration", "single-duration"]:
        p.add_argument("--" + name, type=float, required=True)
    return p.parse_args()


class Summary:
    """The medians of one test against one front door."""

    def __init__(self, rows):
        self.runs = len(rows)
        self.rps = statistics.median(r["requests"] / r["seconds"] for r in rows)
        self.p50 = statistics.median(r["p50_us"] for r in rows)
        self.p99 = statistics.median(r["p99_us"] for r in rows)
        self.errors = sum(r["errors"] for r in rows)
        self.cpu_per_1k = statistics.median(
            r["cpu_ticks"] / TICK / r["requests"] * 1000 if r["requests"] else 0.0 for r in rows
        )
        rss = [r["rss_kib"] for r in rows if r["rss_kib"]]
        self.rss = statistics.median(rss) if rss else None


def load(path):
    runs = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            for key in ["requests", "round", "errors", "cpu_ticks", "rss_kib"]:
                row[key] = int(row[key] or 0)
            for key in ["seconds", "p50_us", "p99_us"]:
                row[key] = float(row[key] or 0)
            runs[(row["test"], row["door"])].append(row)
    return {key: Summary(rows) for key, rows in runs.items()}, runs


def load_memory(path):
    memory = {}
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            memory[(row["what"], row["door"])] = int(row["kib"])
    return memory


def us(value):
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def mib(kib):
    return "—" if kib is None else f"{kib / MIB:.1f} MiB"


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "—"


def verdict(met, detail):
    return f"**met** ({detail})" if met else f"**missed** ({detail})"


def load_table(out, test, doors, s, memory):
    direct = s.get((test, "direct"))
    haproxy = s.get((test, "haproxy"))
    out.append("| front door | req/s | p50 | p99 | × direct | × HAProxy | proxy CPU s / 1,000 req | peak RSS | errors |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for door in doors:
        m = s.get((test, door))
        if m is None:
            continue
        cpu = "—" if door == "direct" else f"{m.cpu_per_1k:.3f}"
        peak = "—" if door == "direct" else mib(memory.get(("peak", MEMORY_OF.get(door, door))))
        out.append(
            f"| {NAMES[door]} | {m.rps:,.0f} | {us(m.p50)} | {us(m.p99)} | "
            f"{ratio(m.rps, direct.rps) if direct else '—'} | "
            f"{ratio(m.rps, haproxy.rps) if haproxy else '—'} | {cpu} | {peak} | {m.errors} |"
        )


def allocator_section(out, a, s, memory, allocs):
    """The global allocators side by side: speed and memory of one process each."""
    w = out.append
    base = s.get(("h1", "alloc-glibc"))
    w("## Allocators")
    w("")
    w("Three sidecars of the same configuration, built with the default allocator (glibc's malloc), "
      "`--features mimalloc` and `--features jemalloc`, each a process of its own whose inbound "
      "listener alone takes the HTTP/1.1 load, in the same interleaved rounds (the first of the three "
      "turns each round). Ratios are to the glibc process.")
    w("")
    w(f"| allocator | req/s | × glibc | p99 | CPU s / 1,000 req | × glibc | idle RSS | steady RSS | "
      f"{a.idle_conns:,} idle connections | per idle connection | peak RSS |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for door in allocs:
        m = s[("h1", door)]
        before, conns = memory.get(("before", door)), memory.get(("conns", door))
        each = "—" if before is None or conns is None else f"{(conns - before) / a.idle_conns:.1f} KiB"
        w(
            f"| {door.removeprefix('alloc-')} | {m.rps:,.0f} | {ratio(m.rps, base.rps) if base else '—'} | "
            f"{us(m.p99)} | {m.cpu_per_1k:.3f} | {ratio(m.cpu_per_1k, base.cpu_per_1k) if base else '—'} | "
            f"{mib(memory.get(('idle', door)))} | {mib(m.rss)} | {mib(conns)} | {each} | "
            f"{mib(memory.get(('peak', door)))} |"
        )
    w("")


def main():
    a = parse_args()
    s, runs = load(a.results)
    memory = load_memory(a.memory)
    doors = ["direct", "sidecar-in", "sidecar-out", "haproxy", "nginx"]
    pairs = ["sidecar-plain-pair", "sidecar-mtls-pair", "haproxy-mtls-pair"]
    out = []
    w = out.append
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    w("# Side-by-side results")
    w("")
    w(f"Written by `benches/compare.sh` on {today}. Re-run it to replace this file.")
    w("")
    w(f"- Command: `{a.command.strip()}`")
    w(f"- Machine: {a.cpu}, {a.cores} cores, shared by the load generators, the backend and the proxies.")
    w(f"- Load at the start: `{a.load_start.strip()}`")
    w(f"- Load at the end: `{a.load_end.strip()}`")
    w(
        f"- {a.rounds} interleaved rounds; loaded runs of {a.duration:g} s, single-connection runs of "
        f"{a.single_duration:g} s; {a.elapsed} s of measuring. Proxies run {a.threads} threads "
        f"(sidecar runtimes, HAProxy `nbthread`, nginx workers)."
    )
    w("- Backend: the `hello` example (hyper, one current-thread runtime), which serves HTTP/1.1 and "
      "HTTP/2 prior knowledge on one port, as the sidecar needs: it forwards HTTP/2 as HTTP/2 to its one "
      "application address, and the Debian nginx (1.22) cannot serve both on one plaintext port.")
    w("- Load: `wrk -t2 -c50` (HTTP/1.1) and `h2load -t2 -c10 -m5` (HTTP/2, 50 streams); single "
      "connection: `wrk -t1 -c1`. Each figure is the median over the rounds. CPU is the proxy "
      "processes' user + system time from `/proc/PID/stat` over the run; peak RSS is `VmHWM`.")
    busy = max(float(x.split("load average:")[1].split(",")[0]) for x in [a.load_start, a.load_end]
               if "load average:" in x) if "load average:" in a.load_start else 0.0
    if busy > a.cores * 0.25:
        w("")
        w(f"**The machine was not idle** (1-minute load average up to {busy:.2f} on {a.cores} cores "
          "before and after, other work included): absolute figures are noisy. Ratios between front "
          "doors measured in the same interleaved rounds are the figures to trust.")
    w("")

    allocs = [d for d in ALLOCATORS if ("h1", d) in s]
    memory_doors = ["sidecar-in", "haproxy", "nginx"] + allocs

    w(f"## HTTP/1.1, 50 connections")
    w("")
    load_table(out, "h1", doors + allocs, s, memory)
    w("")
    w(f"## HTTP/2, 50 streams")
    w("")
    load_table(out, "h2", doors, s, memory)
    w("")

    w("## One connection: the latency a hop adds")
    w("")
    w("| front door | p50 | p99 | added p50 |")
    w("|---|---:|---:|---:|")
    single_direct = s.get(("single", "direct"))
    for door in doors:
        m = s.get(("single", door))
        if m is None:
            continue
        added = "—" if door == "direct" or not single_direct else us(m.p50 - single_direct.p50)
        w(f"| {NAMES[door]} | {us(m.p50)} | {us(m.p99)} | {added} |")
    w("")

    w("## Hop pairs (outbound → inbound → backend), HTTP/1.1, 50 connections")
    w("")
    w("Two proxies in a row: the client side takes plaintext from the application, the server side "
      "forwards to the backend. mTLS: certificates from `sidecar certs ca/issue` (ECDSA P-256, TLS 1.3); "
      "HAProxy presents the same client certificate (`ssl crt ... verify required ca-file`) and "
      "requires and verifies it on the server side. CPU and RSS are both processes together.")
    w("")
    plain = s.get(("h1", "sidecar-plain-pair"))
    ha_mtls = s.get(("h1", "haproxy-mtls-pair"))
    w("| pair | req/s | p50 | p99 | × sidecar plaintext pair | × HAProxy mTLS pair | CPU s / 1,000 req | peak RSS | one connection p50 | errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pair in pairs:
        m = s.get(("h1", pair))
        if m is None:
            continue
        single = s.get(("single", pair))
        w(
            f"| {NAMES[pair]} | {m.rps:,.0f} | {us(m.p50)} | {us(m.p99)} | "
            f"{ratio(m.rps, plain.rps) if plain else '—'} | {ratio(m.rps, ha_mtls.rps) if ha_mtls else '—'} | "
            f"{m.cpu_per_1k:.3f} | {mib(memory.get(('peak', pair)))} | {us(single.p50) if single else '—'} | {m.errors} |"
        )
    w("")

    w("## Memory (RSS)")
    w("")
    w(f"| front door | idle after start | steady load (HTTP/1.1, 50 connections) | {a.idle_conns:,} idle keep-alive connections | per idle connection | peak |")
    w("|---|---:|---:|---:|---:|---:|")
    for door in memory_doors:
        steady = s.get(("h1", door))
        name = "sidecar" if door == "sidecar-in" else NAMES[door]
        before, conns = memory.get(("before", door)), memory.get(("conns", door))
        each = "—" if before is None or conns is None else f"{(conns - before) / a.idle_conns:.1f} KiB"
        w(
            f"| {name} | {mib(memory.get(('idle', door)))} | {mib(steady.rss if steady else None)} | "
            f"{mib(conns)} | {each} | {mib(memory.get(('peak', door)))} |"
        )
    w("")
    w("nginx figures are the master and its workers together. The sidecar's peak includes the "
      "HTTP/2 runs. Per idle connection: the growth of RSS from just before the connections were "
      "opened (after the loaded runs) to when all were open, divided by their number.")
    w("")
    if allocs:
        allocator_section(out, a, s, memory, allocs)

    w("## Targets")
    w("")
    targets = []
    h1 = lambda d: s.get(("h1", d))
    best_name = max(["haproxy", "nginx"], key=lambda d: h1(d).rps if h1(d) else 0)
    best = h1(best_name)
    for door in SIDECARS:
        m = h1(door)
        if m and best:
            targets.append((f"{NAMES[door]}: HTTP/1.1 req/s ≥ the best of HAProxy and nginx ({NAMES[best_name]}, {best.rps:,.0f})",
                            verdict(m.rps >= best.rps, f"{m.rps:,.0f}, {m.rps / best.rps:.2f}× ({(m.rps / best.rps - 1) * 100:+.0f} %)")))
    ha = h1("haproxy")
    for door in SIDECARS:
        m = h1(door)
        if m and ha:
            targets.append((f"{NAMES[door]}: CPU per 1,000 requests ≤ HAProxy's ({ha.cpu_per_1k * 1000:.1f} ms)",
                            verdict(m.cpu_per_1k <= ha.cpu_per_1k, f"{m.cpu_per_1k * 1000:.1f} ms, {m.cpu_per_1k / ha.cpu_per_1k:.2f}×")))
    for door in SIDECARS:
        m = h1(door)
        if m and ha:
            targets.append((f"{NAMES[door]}: HTTP/1.1 p99 ≤ HAProxy's ({us(ha.p99)})",
                            verdict(m.p99 <= ha.p99, f"{us(m.p99)}, {m.p99 / ha.p99:.2f}×")))
    sd, sh = s.get(("single", "direct")), s.get(("single", "haproxy"))
    if sd and sh:
        ha_added = sh.p50 - sd.p50
        for door in SIDECARS:
            m = s.get(("single", door))
            if m:
                added = m.p50 - sd.p50
                targets.append((f"{NAMES[door]}: added p50 on one connection ≤ HAProxy's ({us(ha_added)})",
                                verdict(added <= ha_added, f"{us(added)}, {added - ha_added:+.0f} µs")))
    ng2 = s.get(("h2", "nginx"))
    for door in SIDECARS:
        m = s.get(("h2", door))
        if m and ng2:
            targets.append((f"{NAMES[door]}: HTTP/2 req/s ≥ nginx's ({ng2.rps:,.0f})",
                            verdict(m.rps >= ng2.rps, f"{m.rps:,.0f}, {m.rps / ng2.rps:.2f}×")))
    mt = h1("sidecar-mtls-pair")
    if mt and plain:
        targets.append(("mTLS pair req/s ≥ 0.7× the plaintext pair's",
                        verdict(mt.rps >= 0.7 * plain.rps, f"{mt.rps / plain.rps:.2f}×")))
    if mt and ha_mtls:
        targets.append((f"mTLS pair req/s ≥ the HAProxy mTLS pair's ({ha_mtls.rps:,.0f})",
                        verdict(mt.rps >= ha_mtls.rps, f"{mt.rps:,.0f}, {mt.rps / ha_mtls.rps:.2f}×")))
    smt, spl = s.get(("single", "sidecar-mtls-pair")), s.get(("single", "sidecar-plain-pair"))
    if smt and spl:
        added = smt.p50 - spl.p50
        targets.append(("mTLS adds ≤ 100 µs at p50 over the plaintext pair, warm connection (mesh-tls issue; the criterion bench `sidecar` is the finer measure)",
                        verdict(added <= 100, f"{added:+.0f} µs")))
    idle = memory.get(("idle", "sidecar-in"))
    if idle is not None:
        targets.append(("sidecar idle RSS ≤ 5 MiB", verdict(idle <= 5 * MIB, f"{mib(idle)}, {idle / (5 * MIB):.2f}×")))
    steady = h1("sidecar-in")
    if steady and steady.rss:
        targets.append(("sidecar RSS at steady load ≤ 16 MiB", verdict(steady.rss <= 16 * MIB, f"{mib(steady.rss)}, {steady.rss / (16 * MIB):.2f}×")))
    conns = memory.get(("conns", "sidecar-in"))
    if conns is not None:
        if a.idle_conns == 1000:
            result = verdict(conns <= 30 * MIB, f"{mib(conns)}, {conns / (30 * MIB):.2f}×")
        else:
            result = f"not measured ({mib(conns)} with {a.idle_conns:,} connections)"
        targets.append(("sidecar RSS with 1,000 idle connections ≤ 30 MiB", result))
    w("| target | result |")
    w("|---|---|")
    for name, result in targets:
        w(f"| {name} | {result} |")
    w("")
    met = sum(1 for _, r in targets if r.startswith("**met"))
    w(f"{met} of {len(targets)} met. `benches/README.md` (section *compare*) says what the profile blames.")
    w("")

    w("## Every run")
    w("")
    w("<details><summary>per round: requests, seconds, p50 µs, p99 µs, errors, CPU ticks, RSS KiB mid-run</summary>")
    w("")
    w("| test | front door | round | requests | s | p50 µs | p99 µs | errors | CPU ticks | RSS KiB |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (test, door), rows in runs.items():
        for r in rows:
            w(f"| {test} | {door} | {r['round']} | {r['requests']} | {r['seconds']:.2f} | {r['p50_us']:.0f} | "
              f"{r['p99_us']:.0f} | {r['errors']} | {r['cpu_ticks']} | {r['rss_kib']} |")
    w("")
    w("</details>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
