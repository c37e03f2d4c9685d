#!/usr/bin/env python3
"""Sender CPU of read()+send() in 1 MiB chunks vs sendfile() for the 1 GiB fixture over loopback
(the change finding A suggests), receiver = python recv_into in another process.
    python3 tests/bench/sendfile_vs_rw.py [FILE]"""
import os, socket, sys, time, resource, threading
PATH = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ftpbench-servers/data/bench_1g.bin"
def receiver(srv, out):
    c, _ = srv.accept(); buf = bytearray(4 << 20); mv = memoryview(buf); n = 0
    while True:
        r = c.recv_into(mv)
        if not r: break
        n += r
    out.append(n); c.close()
def run(mode, bufsize):
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    out = []
    # receiver in a separate process so that the CPU split is clean
    pid = os.fork()
    if pid == 0:
        receiver(srv, out); os._exit(0)
    s = socket.create_connection(srv.getsockname()); f = open(PATH, "rb"); size = os.fstat(f.fileno()).st_size
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    if mode == "sendfile":
        off = 0
        while off < size:
            off += os.sendfile(s.fileno(), f.fileno(), off, size - off)
    else:
        buf = bytearray(bufsize); mv = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n: break
            s.sendall(mv[:n])
    s.shutdown(socket.SHUT_WR); os.waitpid(pid, 0); t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"{mode:9s} buf {bufsize>>10:5d} KiB: {size/(t1-t0)/1e6:7.0f} MB/s, sender CPU {cpu:.2f} s/GiB (user {r1.ru_utime-r0.ru_utime:.2f}, sys {r1.ru_stime-r0.ru_stime:.2f})")
    s.close(); srv.close(); f.close()
for rnd in range(3):
    run("readwrite", 1 << 20); run("sendfile", 0)
