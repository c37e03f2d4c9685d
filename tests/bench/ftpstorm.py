#!/usr/bin/env python3
"""ftpstorm - the two measurements the issue asks for that ftpbench.py does not make.

  storm    F as a *concurrent* login storm: `--concurrency` connect+USER+PASS+QUIT in
           flight for `--duration` s, while `--probes` already logged-in sessions (in a
           separate client process) send a NOOP every `--interval` s. Reports logins/s,
           login latency, server CPU per login, and the probes' NOOP latency before
           (baseline) and during the storm.
  bulkpar  `--clients` concurrent RETRs of the 1 GiB fixture (each its own session),
           aggregate MB/s and server CPU: bulk transfers by several clients at once
           (for the --workers 1 vs 2 comparison).

It reuses ftpbench.py's client, CPU meters and JSON records (path: $FTPBENCH, default
/work/shared/bench/ftpbench.py), takes the same connection options/environment
(FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_LABEL FTP_SERVER_PID FTP_RESULTS) and appends
records with scenario "F-storm" / "A-par<N>" to --json.

    FTP_PORT=30030 python3 tests/bench/ftpstorm.py --label actorftpd \
        --json tests/bench/results/results.jsonl storm
"""
import argparse
import asyncio
import collections
import importlib.util
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time

_path = os.environ.get("FTPBENCH", "/work/shared/bench/ftpbench.py")
_spec = importlib.util.spec_from_file_location("ftpbench", _path)
fb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fb)

perf = time.perf_counter


# ----------------------------------------------------------------------------
# storm
# ----------------------------------------------------------------------------

def _probe_proc(args, phases, conn):
    """Separate process: open --probes logged-in sessions, then NOOP every --interval s.
    Each probe's NOOP latencies are tagged with the phase current when it was sent
    (phases: shared Value, 0 = setup, 1 = baseline, 2 = storm, 3 = stop)."""
    loop, _ = fb.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main():
        ctrls = []
        for _ in range(args.probes):
            c = await fb.Ctrl.open(args.host, args.port)
            await c.login(args.user, args.password)
            ctrls.append(c)
        conn.send("ready")
        lat = collections.defaultdict(list)
        errors = collections.Counter()

        async def probe(c, k):
            await asyncio.sleep(args.interval * k / max(1, args.probes))  # spread the probes
            while phases.value < 3:
                ph = phases.value
                t = perf()
                try:
                    async with asyncio.timeout(args.timeout):
                        code, _ = await c.cmd("NOOP")
                    if code != 200:
                        errors[f"NOOP -> {code}"] += 1
                    elif ph in (1, 2):
                        lat[ph].append(perf() - t)
                except Exception as e:  # noqa
                    errors["NOOP: " + fb.err_key(e)] += 1
                    return
                await asyncio.sleep(args.interval)

        await asyncio.gather(*(probe(c, k) for k, c in enumerate(ctrls)))
        await fb.quit_all(ctrls)
        return dict(lat={k: v for k, v in lat.items()}, errors=dict(errors))

    try:
        r = loop.run_until_complete(main())
    except Exception as e:  # noqa
        r = dict(lat={}, errors={"probe process: " + fb.err_key(e): 1})
        try:
            conn.send("ready")
        except Exception:  # noqa
            pass
    conn.send(r)
    conn.close()


async def _storm(args, deadline):
    sem = asyncio.Semaphore(args.concurrency)
    lat = []
    errors = collections.Counter()

    async def one():
        t = perf()
        try:
            async with asyncio.timeout(args.timeout):
                c = await fb.Ctrl.open(args.host, args.port)
                try:
                    await c.login(args.user, args.password)
                    await c.cmd("QUIT", 221)
                finally:
                    c.abort()
            lat.append(perf() - t)
        except Exception as e:  # noqa
            errors[fb.err_key(e)] += 1

    async def worker():
        while perf() < deadline:
            async with sem:
                await one()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return lat, errors


def scen_storm(args, rec, mon):
    fb.out(f"[F-storm] {args.concurrency} logins in flight for {args.duration} s; {args.probes} "
           f"logged-in probe sessions send NOOP every {args.interval * 1e3:.0f} ms "
           f"(baseline {args.baseline} s first)")
    phases = mp.Value("i", 0)
    a, b = mp.Pipe(False)
    p = mp.get_context("fork").Process(target=_probe_proc, args=(args, phases, b))
    p.start()
    a.recv()                        # probes logged in
    phases.value = 1
    time.sleep(args.baseline)
    loop, _ = fb.new_event_loop()
    asyncio.set_event_loop(loop)
    phases.value = 2
    m = fb.Meter(mon).start()
    t0 = perf()
    lat, errors = loop.run_until_complete(_storm(args, t0 + args.duration))
    wall = perf() - t0
    m.stop()
    phases.value = 3
    loop.close()
    pr = a.recv()
    p.join()
    base, during = pr["lat"].get(1, []), pr["lat"].get(2, [])
    nerr = sum(errors.values()) + sum(pr["errors"].values())
    for k, v in list(errors.most_common(6)) + list(pr["errors"].items()):
        fb.out(f"    error x{v}: {k}")
    rate = len(lat) / wall if wall > 0 else 0
    fb.out(f"  {m.text(wall, per=max(len(lat), 1), unit='ms')}")
    fb.out(f"  logins: {len(lat)} in {wall:.2f} s = {rate:.1f}/s, latency p50 "
           f"{fb.pct(lat, 50) * 1e3:.1f} ms p99 {fb.pct(lat, 99) * 1e3:.1f} ms")

    def show(v):
        return (f"n={len(v)} p50 {fb.pct(v, 50) * 1e3:.2f} ms p99 {fb.pct(v, 99) * 1e3:.2f} ms "
                f"max {max(v) * 1e3 if v else float('nan'):.2f} ms")
    fb.out(f"  NOOP baseline: {show(base)}")
    fb.out(f"  NOOP in storm: {show(during)}")
    fb.out(f"[F-storm] RESULT {rate:.1f} logins/s, NOOP p99 during storm "
           f"{fb.pct(during, 99) * 1e3:.2f} ms (baseline {fb.pct(base, 99) * 1e3:.2f} ms), "
           f"errors {nerr}")
    return rec("F-storm", concurrency=args.concurrency, duration=args.duration,
               probes=args.probes, interval=args.interval, logins=len(lat), errors=nerr,
               error_kinds={**dict(errors), **pr["errors"]}, logins_s=rate,
               login_p50_ms=fb.pct(lat, 50) * 1e3, login_p99_ms=fb.pct(lat, 99) * 1e3,
               noop_base_n=len(base), noop_base_p50_ms=fb.pct(base, 50) * 1e3,
               noop_base_p99_ms=fb.pct(base, 99) * 1e3,
               noop_n=len(during), noop_p50_ms=fb.pct(during, 50) * 1e3,
               noop_p99_ms=fb.pct(during, 99) * 1e3,
               noop_max_ms=max(during) * 1e3 if during else None,
               wall=wall, ok=len(lat), **m.fields())


# ----------------------------------------------------------------------------
# bulkpar
# ----------------------------------------------------------------------------

def _bulk_one(args, barrier, conn):
    c = fb.connect_login(args)
    h, p = c.pasv(args.epsv)
    d = socket.create_connection((h, p), timeout=60)
    barrier.wait()
    t0 = time.time()
    c.send(f"RETR {fb.FIX_BIG}")
    code, text = c.reply()
    n = 0
    if code in (125, 150):
        buf = bytearray(4 << 20)
        mv = memoryview(buf)
        while True:
            r = d.recv_into(mv)
            if not r:
                break
            n += r
        d.close()
        code, text = c.reply()
    t1 = time.time()
    barrier.wait()                  # meters read while the sessions are open
    c.close()
    conn.send(dict(n=n, t0=t0, t1=t1, ok=code in (226, 250), text=text))
    conn.close()


def scen_bulkpar(args, rec, mon):
    k = args.clients
    fb.out(f"[A-par{k}] {k} concurrent RETR of {fb.FIX_BIG} (one session each), "
           f"{args.runs} runs after {args.warmup} warm-up")
    ctx = mp.get_context("fork")
    runs = []
    for i in range(-args.warmup, args.runs):
        barrier = ctx.Barrier(k + 1)
        pipes, ps = [], []
        for _ in range(k):
            a, b = ctx.Pipe(False)
            p = ctx.Process(target=_bulk_one, args=(args, barrier, b))
            p.start()
            pipes.append(a)
            ps.append(p)
        barrier.wait()
        m = fb.Meter(mon).start()
        barrier.wait()
        m.stop()
        res = [a.recv() for a in pipes]
        for p in ps:
            p.join()
        m.client = fb.client_cpu() - m.c0
        total = sum(r["n"] for r in res)
        wall = max(r["t1"] for r in res) - min(r["t0"] for r in res)
        bad = [r["text"] for r in res if not r["ok"] or r["n"] != fb.GiB]
        mbs = total / wall / 1e6
        what = "warm-up" if i < 0 else f"run {i + 1}"
        fb.out(f"  {what}: {mbs:8.1f} MB/s aggregate ({wall:.3f} s); {m.text(wall)}"
               + (f"; ERRORS {bad}" if bad else ""))
        if bad:
            raise fb.FTPError(f"bulkpar: {bad[:2]}")
        if i >= 0:
            runs.append(dict(mbs=mbs, wall=wall, **m.fields()))
    med = statistics.median(r["mbs"] for r in runs)
    mid = sorted(runs, key=lambda r: r["mbs"])[len(runs) // 2]
    gib = k
    fb.out(f"[A-par{k}] RESULT median {med:.1f} MB/s aggregate; server CPU "
           f"{fb.fmt_s(mid['server_cpu'] / gib if mid['server_cpu'] is not None else None)} s/GiB")
    return rec(f"A-par{k}", clients=k, mbs=med, mbs_min=min(r["mbs"] for r in runs),
               mbs_max=max(r["mbs"] for r in runs), runs=runs, server_cpu=mid["server_cpu"],
               other_cpu=mid["other_cpu"], client_cpu=mid["client_cpu"],
               bg_cores=max(r["bg_cores"] for r in runs), size=fb.GiB * k)


def main():
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=env("FTP_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(env("FTP_PORT", "21")))
    ap.add_argument("--user", default=env("FTP_USER", "anonymous"))
    ap.add_argument("--password", default=env("FTP_PASS", "bench@example.com"))
    ap.add_argument("--label", default=env("FTP_LABEL"))
    ap.add_argument("--server-pid", default=env("FTP_SERVER_PID"))
    ap.add_argument("--json", default=env("FTP_RESULTS"))
    ap.add_argument("--remote-dir", default="")
    ap.add_argument("--epsv", action="store_true")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--wait-quiet", type=float, default=float(env("FTP_WAIT_QUIET", "0")))
    ap.add_argument("--concurrency", type=int, default=32, help="storm: logins in flight")
    ap.add_argument("--duration", type=float, default=10.0, help="storm: seconds")
    ap.add_argument("--probes", type=int, default=20, help="storm: logged-in NOOP sessions")
    ap.add_argument("--interval", type=float, default=0.01, help="storm: s between a probe's NOOPs")
    ap.add_argument("--baseline", type=float, default=3.0, help="storm: s of probing before")
    ap.add_argument("--clients", type=int, default=4, help="bulkpar: concurrent RETRs")
    ap.add_argument("--runs", type=int, default=3, help="bulkpar: measured runs")
    ap.add_argument("--warmup", type=int, default=1, help="bulkpar: warm-up runs")
    ap.add_argument("scenario", nargs="+", choices=("storm", "bulkpar"))
    args = ap.parse_args()
    if not args.label:
        args.label = f"{args.host}:{args.port}"
    mon = fb.ServerMon.create(args)
    rec = fb.Recorder(args)
    failed = False
    for s in args.scenario:
        fb.wait_quiet(args.wait_quiet)
        try:
            (scen_storm if s == "storm" else scen_bulkpar)(args, rec, mon)
        except Exception as e:  # noqa
            failed = True
            fb.out(f"[{s}] ERROR {fb.err_key(e)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
