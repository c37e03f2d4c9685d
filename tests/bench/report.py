#!/usr/bin/env python3
"""Render tests/bench results as markdown: ftpbench's table, the extra rows of ftpstorm
(F-storm, A-par<N>), and the issue's targets as ratios of actorftpd to the best peer.

    python3 tests/bench/report.py tests/bench/results/results.jsonl \
        [--ours actorftpd] [--verify-ms 25.0] [--cores 2]

--verify-ms: one Argon2 verification (criterion `login/argon2id_verify_default_params`),
for F's ceiling = cores / verification time. ftpbench.py is found as in ftpstorm.py
($FTPBENCH, default /work/shared/bench/ftpbench.py).
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os

_path = os.environ.get("FTPBENCH", "/work/shared/bench/ftpbench.py")
_spec = importlib.util.spec_from_file_location("ftpbench", _path)
fb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fb)


def load(files):
    labels, last = [], {}
    for fn in files:
        with open(fn) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                if "error" in r and len(r) <= 7:
                    continue
                if r["label"] not in labels:
                    labels.append(r["label"])
                last[(r["scenario"], r["label"])] = r
    return labels, last


def dag(r):
    return " †" if r and (r.get("bg_cores") or 0) > fb.BG_WARN else ""


def fix_dead(table, labels, last):
    """D records of a server that died during the scenario (no process left to measure) show
    'server gone' instead of ftpbench's negative memory deltas."""
    out = []
    for line in table.splitlines():
        m = line.startswith("| D ") and line.split(" | ")
        if m and ("memory per session" in line or "RSS total" in line):
            n = line[4:].split(":")[0].split()[0]
            cells = line.strip().strip("|").split(" | ")
            for i, lb in enumerate(labels):
                r = last.get((f"D{n}", lb))
                if r and r.get("procs_after") == 0:
                    cells[i + 1] = "server gone"
            line = "| " + " | ".join(c.strip() for c in cells) + " |"
        out.append(line)
    return "\n".join(out) + "\n"


def extra_rows(labels, last):
    rows = []

    def row(name, scen, fmt):
        cells = []
        for lb in labels:
            r = last.get((scen, lb))
            try:
                cells.append(fmt(r) + dag(r) if r else "-")
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("?")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    if any(s == "F-storm" for (s, _) in last):
        r0 = next(r for (s, _), r in last.items() if s == "F-storm")
        row(f"F-storm: logins/s ({r0['concurrency']} in flight, {r0['duration']:g} s)", "F-storm",
            lambda r: f"{r['logins_s']:.1f}" + (f" **({r['errors']} err)**" if r.get("errors") else ""))
        row("F-storm: login latency p50 / p99 ms", "F-storm",
            lambda r: f"{r['login_p50_ms']:.0f} / {r['login_p99_ms']:.0f}")
        row("F-storm: server CPU ms per login", "F-storm",
            lambda r: "-" if r.get("server_cpu") is None else f"{r['server_cpu'] / max(r['ok'], 1) * 1e3:.1f}")
        row(f"F-storm: NOOP p50 / p99 / max ms of {r0['probes']} logged-in sessions, during storm",
            "F-storm", lambda r: f"{r['noop_p50_ms']:.2f} / {r['noop_p99_ms']:.2f} / {r['noop_max_ms']:.1f}")
        row("F-storm: NOOP p50 / p99 ms before the storm (baseline)", "F-storm",
            lambda r: f"{r['noop_base_p50_ms']:.2f} / {r['noop_base_p99_ms']:.2f}")
    for scen in sorted({s for (s, _) in last if s.startswith("A-par")}):
        row(f"{scen} ({scen[5:]} concurrent RETR 1 GiB): aggregate MB/s (median)", scen,
            lambda r: f"{r['mbs']:.0f}")
        row(f"{scen}: server CPU s per GiB", scen,
            lambda r: "-" if r.get("server_cpu") is None else f"{r['server_cpu'] / r['clients']:.2f}")
    if not rows:
        return ""
    return "| extra scenario | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + \
        "\n" + "\n".join(rows) + "\n"


def targets(labels, last, ours, verify_ms, cores):
    # every actorftpd build/variant (actorftpd, actorftpd-main, actorftpd-w2...) is not a peer
    own = ours.split("-")[0]
    peers = [lb for lb in labels if lb != ours and lb.split("-")[0] != own]
    out = [f"| target | {ours} | best peer | ratio | target | met? |", "|---|---|---|---|---|---|"]

    def get(scen, lb):
        return last.get((scen, lb))

    def best(scen, key, higher=True, ok=lambda r: True):
        cands = [(r[key], lb) for lb in peers if (r := get(scen, lb)) and r.get(key) is not None and ok(r)]
        if not cands:
            return None, None
        return (max if higher else min)(cands)

    def line(name, ourv, bestv, bestlb, ratio, target, met):
        out.append(f"| {name} | {ourv} | {bestlb or '-'} {bestv if bestv is not None else ''} | "
                   f"{ratio} | {target} | {'**yes**' if met else 'no'} |")

    def ratio_row(name, scen, key, need, fmt="{:.0f}", ok=lambda r: True):
        r = get(scen, ours)
        bv, blb = best(scen, key, True)   # best peer by the figure, errors or not
        if not r or r.get(key) is None or bv is None:
            line(name, "-" if not r else "?", None, blb, "-", f"≥ {need}×", False)
            return
        ratio = r[key] / bv if bv else float("inf")
        line(name, fmt.format(r[key]) + dag(r), fmt.format(bv) + dag(get(scen, blb)), blb,
             f"{ratio:.2f}×", f"≥ {need}×", ratio >= need and ok(r))

    ratio_row("A RETR 1 GiB MB/s", "A", "mbs", 1.3)
    ra, rv = get("A", ours), get("A", "vsftpd")
    if ra and rv and ra.get("server_cpu") is not None and rv.get("server_cpu") is not None:
        a = ra["server_cpu"] / (ra["size"] / fb.GiB)
        v = rv["server_cpu"] / (rv["size"] / fb.GiB)
        line("A server CPU s/GiB (vs vsftpd)", f"{a:.2f}", f"{v:.2f}", "vsftpd", f"{a / v:.2f}×",
             "≤ vsftpd", a <= v)
    ratio_row("B STOR 1 GiB MB/s (sha256 ok)", "B", "mbs", 1.2, ok=lambda r: bool(r.get("sha_ok")))
    for n in (50, 200):
        scen = f"C{n}"
        ok = (lambda r: r.get("errors", 1) == 0 and r.get("ok") == r.get("total"))
        ratio_row(f"C {n} clients transfers/s (0 errors)", scen, "tps", 1.2, ok=ok)
        r = get(scen, ours)
        bv, blb = best(scen, "tps", True)
        if r and blb:
            bp = get(scen, blb)["p99_ms"]
            line(f"C {n} p99 ms (vs the best peer by transfers/s)", f"{r['p99_ms']:.1f}", f"{bp:.1f}",
                 blb, f"{r['p99_ms'] / bp:.2f}×", "≤ best peer's", r["p99_ms"] <= bp)
    r = get("D10000", ours)
    if r:
        kib = r.get("rss_per_session_kib")
        line("D 10,000 idle sessions alive, KiB RSS/session", f"{r['alive']}/{r['sessions']}, "
             + (f"{kib:.1f} KiB" if kib is not None else "n/a"), None, "-", "-",
             "all alive, ≤ 8 KiB", r["alive"] == r["sessions"] == 10000 and kib is not None and kib <= 8)
    else:
        line("D 10,000 idle sessions", "not measured", None, "-", "-", "all alive, ≤ 8 KiB", False)
    ratio_row("E commands, same CPU, ops/s", "E-same", "ops_s", 1.2)
    ratio_row("E commands, split CPUs, ops/s", "E-split", "ops_s", 1.2)
    r = get("F-storm", ours)
    if r:
        if verify_ms:
            ceil = cores / (verify_ms / 1e3)
            line(f"F-storm logins/s vs ceiling {cores} cores / {verify_ms:.1f} ms = {ceil:.0f}/s",
                 f"{r['logins_s']:.1f}", None, "-", f"{r['logins_s'] / ceil:.2f}", "≥ 0.90",
                 r["logins_s"] >= 0.9 * ceil)
        line("F-storm NOOP p99 of logged-in sessions during the storm, ms", f"{r['noop_p99_ms']:.2f}",
             None, "-", "-", "< 5 ms", r["noop_p99_ms"] < 5)
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--ours", default="actorftpd")
    ap.add_argument("--verify-ms", type=float, default=None)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    args = ap.parse_args()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fb.cmd_table(args.files)
    labels, last = load(args.files)
    print(fix_dead(buf.getvalue(), labels, last))
    extra = extra_rows(labels, last)
    if extra:
        print(extra)
    if args.ours in labels:
        print(targets(labels, last, args.ours, args.verify_ms, args.cores))


if __name__ == "__main__":
    main()
