"""Scenario E's command mix on one session, for strace/callgrind (no timing of its own).

    python3 tests/bench/command_loop.py HOST PORT N     # N NOOPs, then N/4 PWD + CWD pairs

Logs in as ftpbench/ftpbench (the run scripts' user) and expects a bench_dir/ in the root.
"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port)); f = s.makefile('rb')
def rd():
    line = f.readline()
    while line[3:4] == b'-':
        while True:
            l = f.readline()
            if l[:4] == line[:3] + b' ': break
        return l
    return line
def cmd(c):
    s.sendall(c.encode() + b'\r\n'); return rd()
rd(); cmd('USER ftpbench'); r = cmd('PASS ftpbench'); assert r.startswith(b'230'), r
for i in range(n): cmd('NOOP')
for i in range(n // 4):
    cmd('PWD'); cmd('CWD bench_dir' if i % 2 == 0 else 'CWD ..')
cmd('QUIT')
