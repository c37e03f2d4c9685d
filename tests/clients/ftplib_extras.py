"""ftplib scenarios beyond the basic session, driven by tests/python_ftplib.rs and
tests/abort_and_stat.rs.

Usage:
  ftplib_extras.py mlsd   HOST PORT USER PASS DIR
  ftplib_extras.py resume HOST PORT USER PASS LOCAL_FULL REMOTE_NAME STOR_REST RETR_REST DOWN_PATH
  ftplib_extras.py site   HOST PORT USER PASS
  ftplib_extras.py abort  HOST PORT USER PASS BIG_NAME READ_BYTES SMALL_NAME DOWN_PATH

Prints one record per line on stdout, fields separated by TAB: `KEY<TAB>VALUE[<TAB>VALUE...]`.
The Rust side makes every assertion (sha256 of the files, names, reply codes). Exits non-zero
on any unexpected error.
"""
import ftplib
import sys

TIMEOUT = 30  # seconds, for every socket ftplib opens


def connect(host, port, user, password):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.encoding = "utf-8"
    ftp.connect(host, int(port))
    ftp.login(user, password)
    return ftp


def emit(key, *values):
    for v in (key,) + values:
        assert "\t" not in str(v) and "\n" not in str(v), f"cannot emit {v!r}"
    print("\t".join(str(v) for v in (key,) + values), flush=True)


def mlsd(host, port, user, password, directory):
    ftp = connect(host, port, user, password)
    # Default facts.
    for name, facts in ftp.mlsd(directory):
        emit("all", name, facts.get("type", ""), facts.get("size", ""),
             facts.get("modify", ""), facts.get("perm", ""), facts.get("unique", ""))
    # ftplib sends OPTS MLST type;size; first when facts are given.
    for name, facts in ftp.mlsd(directory, facts=["type", "size"]):
        emit("some", name, ";".join(sorted(facts.keys())), facts.get("type", ""),
             facts.get("size", ""))
    emit("quit", ftp.quit())


def resume(host, port, user, password, local_full, remote_name, stor_rest, retr_rest, down):
    ftp = connect(host, port, user, password)
    ftp.voidcmd("TYPE I")
    stor_rest = int(stor_rest)
    retr_rest = int(retr_rest)
    with open(local_full, "rb") as f:
        f.seek(stor_rest)
        emit("stor", ftp.storbinary("STOR " + remote_name, f, rest=stor_rest))
    emit("size", ftp.size(remote_name))
    with open(down, "wb") as f:
        emit("retr", ftp.retrbinary("RETR " + remote_name, f.write, rest=retr_rest))
    emit("quit", ftp.quit())


def site(host, port, user, password):
    ftp = connect(host, port, user, password)
    reply = ftp.sendcmd("SITE HELP")
    for line in reply.splitlines():
        emit("site_help", line)
    try:
        ftp.sendcmd("SITE FOO")
        emit("unexpected", "SITE FOO succeeded")
        sys.exit(3)
    except ftplib.error_perm as e:
        emit("site_foo", str(e))
    emit("quit", ftp.quit())


def abort(host, port, user, password, big_name, read_bytes, small_name, down):
    ftp = connect(host, port, user, password)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR " + big_name)
    want = int(read_bytes)
    got = 0
    while got < want:
        chunk = conn.recv(min(65536, want - got))
        if not chunk:
            break
        got += len(chunk)
    emit("read_before_abort", got)
    # ftplib.FTP.abort() sends ABOR as TCP urgent data (MSG_OOB) and reads one reply.
    first = ftp.abort()
    emit("abort_reply", first)
    if first.startswith("426"):
        # The transfer's 426 came first; the ABOR itself is answered next.
        emit("abort_second", ftp.getresp())
    conn.close()
    emit("noop", ftp.voidcmd("NOOP"))
    with open(down, "wb") as f:
        emit("retr_after", ftp.retrbinary("RETR " + small_name, f.write))
    emit("quit", ftp.quit())


MODES = {"mlsd": mlsd, "resume": resume, "site": site, "abort": abort}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](*sys.argv[2:])
