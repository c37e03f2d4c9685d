#!/usr/bin/env python3
"""Allocation sites per operation: diff of two DHAT profiles (see dhat.sh).

    dhat_top.py SMALL.json BIG.json OPS_DIFFERENCE [ROWS]
"""
import json, sys, re
OURS = ("session.rs", "connection.rs", "data_channel.rs", "mod.rs", "reply.rs", "codec.rs",
        "command.rs", "listener.rs", "vpath.rs", "listing.rs", "auth.rs", "server.rs")
SKIP = ("library/alloc", "library/core", "library/std", "vgpreload")
def parse(f):
    m = re.match(r"0x[0-9A-F]+: (.*) \((.*)\)$", f)
    return (m.group(1), m.group(2)) if m else (f, "")
def key(d, pp):
    site = ours = None
    for i in pp["fs"]:
        fn, loc = parse(d["ftbl"][i])
        if site is None and not any(s in loc for s in SKIP) and "malloc" not in fn:
            site = f"{fn.split('<')[0][-60:]} ({loc})"
        if ours is None and (loc.split(":")[0] in OURS) and "src/" not in loc.split(":")[0]:
            ours = f"{fn.split('<')[0][-50:]} ({loc})"
        if site and ours:
            break
    return f"{site}  <-  {ours}"
def agg(d):
    r = {}
    for pp in d["pps"]:
        k = key(d, pp); t = r.setdefault(k, [0, 0]); t[0] += pp["tbk"]; t[1] += pp["tb"]
    return r
a = agg(json.load(open(sys.argv[1]))); b = agg(json.load(open(sys.argv[2]))); n = float(sys.argv[3])
rows = sorted((((b.get(k, [0, 0])[0] - a.get(k, [0, 0])[0]) / n, (b.get(k, [0, 0])[1] - a.get(k, [0, 0])[1]) / n, k)
               for k in set(a) | set(b)), reverse=True)
tot = sum(r[0] for r in rows); totb = sum(r[1] for r in rows)
print(f"total per op: {tot:.1f} allocations, {totb:.0f} bytes")
for c, by, k in rows[:int(sys.argv[4])]:
    if c < 0.5: break
    print(f"{c:6.2f} allocs {by:7.0f} B  {k}")
