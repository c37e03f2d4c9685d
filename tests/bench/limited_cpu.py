#!/usr/bin/env python3
"""CPU cost of rate-limited transfers against unlimited ones (issue 19).

Starts the daemon twice (ACTORFTPD_BIN, default target/release/actorftpd): once unlimited and
once with --max-download-rate RATE, and each time runs N concurrent RETRs of the same SIZE-byte
file from asyncio clients on loopback (logged in first: only the transfers are measured).
Prints the daemon's CPU seconds (utime + stime from /proc/PID/stat) over the transfers, the wall time, and CPU per MiB moved. Every download is checked
by length and sha256.

    tests/bench/limited_cpu.py [N] [SIZE] [RATE]     defaults: 1000 655360 64K
"""
import asyncio, hashlib, os, re, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 640 * 1024
RATE = sys.argv[3] if len(sys.argv) > 3 else "64K"
BIN = os.environ.get("ACTORFTPD_BIN", "target/release/actorftpd")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def reply(r):
    line = await r.readline()
    code = line[:3]
    while line[3:4] == b"-":
        line = await r.readline()
        while not line.startswith(code + b" "):
            line = await r.readline()
    return line


async def login(port):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await reply(r)
    for cmd in (b"USER bench", b"PASS bench", b"TYPE I"):
        w.write(cmd + b"\r\n")
        await reply(r)
    return r, w


async def one(r, w, want):
    w.write(b"EPSV\r\n")
    epsv = await reply(r)
    dport = int(re.search(rb"\|\|\|(\d+)\|", epsv).group(1))
    dr, dw = await asyncio.open_connection("127.0.0.1", dport, limit=1 << 20)
    w.write(b"RETR big.bin\r\n")
    first = await reply(r)
    assert first.startswith(b"150"), first
    h, n = hashlib.sha256(), 0
    while True:
        chunk = await dr.read(1 << 16)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    dw.close()
    last = await reply(r)
    assert last.startswith(b"226"), last
    assert n == SIZE and h.hexdigest() == want, (n, SIZE)
    w.write(b"QUIT\r\n")
    w.close()


def run(extra):
    tmp = tempfile.mkdtemp()
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    data = os.urandom(SIZE)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(data)
    want = hashlib.sha256(data).hexdigest()
    # A one-off user: the daemon prints its name and password; use our own users file instead.
    hashed = subprocess.run([BIN, "hash-password"], input=b"bench\n", capture_output=True,
                            check=True).stdout.decode().strip()
    users = os.path.join(tmp, "users.toml")
    with open(users, "w") as f:
        f.write(f'[[user]]\nname = "bench"\npassword_hash = "{hashed}"\nroot = "{root}"\n')
    args = [BIN, "--listen", "127.0.0.1:0", "--users", users, "-q",
            "--max-sessions", str(N + 10), "--max-sessions-per-ip", str(N + 10),
            "--max-transfer-threads", str(N), "--login-failure-delay-ms", "0"] + extra
    d = subprocess.Popen(args, stdout=subprocess.PIPE)
    line = d.stdout.readline().decode()
    port = int(line.rsplit(":", 1)[1].split()[0])
    times = {}

    async def main():
        # Logins first (Argon2 would dominate), then only the transfers are measured.
        sessions = await asyncio.gather(*(login(port) for _ in range(N)))
        times["before"], times["start"] = cpu_secs(d.pid), time.monotonic()
        await asyncio.gather(*(one(r, w, want) for r, w in sessions))
        times["after"], times["end"] = cpu_secs(d.pid), time.monotonic()

    asyncio.run(main())
    wall = times["end"] - times["start"]
    cpu = times["after"] - times["before"]
    d.terminate()
    d.wait()
    mib = N * SIZE / (1 << 20)
    return wall, cpu, mib


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for label, extra in (("unlimited", []), (f"limited {RATE}/s", ["--max-download-rate", RATE])):
        wall, cpu, mib = run(extra)
        print(f"{label:>16}: {N} x {SIZE} B = {mib:.0f} MiB in {wall:.1f} s; daemon CPU "
              f"{cpu:.2f} s ({1000 * cpu / mib:.2f} ms/MiB, {100 * cpu / wall:.0f}% of a core)")
