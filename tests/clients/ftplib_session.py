"""ftplib client driven by tests/python_ftplib.rs.

Usage:
  ftplib_session.py session  HOST PORT USER PASS UP_DIR DOWN_DIR REMOTE_DIR NAME...
  ftplib_session.py badlogin HOST PORT USER PASS
  ftplib_session.py dirs     HOST PORT USER PASS

Prints one record per line on stdout, fields separated by TAB (the Rust side has no JSON
parser): `KEY<TAB>VALUE[<TAB>VALUE...]`; list-valued keys repeat. The Rust test makes every
assertion on the data (sha256 of the files, names listed, reply codes). Exits non-zero on any
unexpected error.
"""
import ftplib
import os
import sys

TIMEOUT = 30  # seconds, for every socket ftplib opens


def connect(host, port):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.encoding = "utf-8"
    welcome = ftp.connect(host, int(port))
    return ftp, welcome


def emit(key, *values):
    for v in (key,) + values:
        assert "\t" not in str(v) and "\n" not in str(v), f"cannot emit {v!r}"
    print("\t".join(str(v) for v in (key,) + values), flush=True)


def session(host, port, user, password, up_dir, down_dir, remote_dir, *names):
    ftp, welcome = connect(host, port)
    emit("welcome", welcome.splitlines()[0])
    emit("login", ftp.login(user, password).splitlines()[-1])
    if remote_dir != "/":
        emit("mkd", ftp.mkd(remote_dir))
        emit("cwd", ftp.cwd(remote_dir))
    emit("pwd", ftp.pwd())
    for name in names:
        with open(os.path.join(up_dir, name), "rb") as f:
            emit("stor", name, ftp.storbinary("STOR " + name, f))
    for n in ftp.nlst():
        emit("nlst", n)
    lines = []
    reply = ftp.retrlines("LIST", lines.append)
    for line in lines:
        emit("list", line)
    emit("list_reply", reply)
    ftp.voidcmd("TYPE I")
    for name in names:
        emit("size", name, ftp.size(name))
    for name in names:
        with open(os.path.join(down_dir, name), "wb") as f:
            emit("retr", name, ftp.retrbinary("RETR " + name, f.write))
    emit("quit", ftp.quit())


def badlogin(host, port, user, password):
    ftp, _ = connect(host, port)
    try:
        ftp.login(user, password)
    except ftplib.error_perm as e:
        emit("error_perm", str(e).splitlines()[0])
        ftp.close()
        return
    emit("unexpected", "login succeeded")
    sys.exit(3)


def expect_perm(fn, *args):
    """Calls fn, which must raise error_perm; returns its message."""
    try:
        fn(*args)
    except ftplib.error_perm as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not raise error_perm")


def dirs(host, port, user, password):
    ftp, _ = connect(host, port)
    ftp.login(user, password)
    emit("mkd", ftp.mkd("py dir"))
    emit("cwd", ftp.cwd("py dir"))
    emit("pwd_in", ftp.pwd())
    emit("stor", ftp.storbinary("STOR hello.txt", _Bytes(b"hello from ftplib\n")))
    emit("cdup", ftp.sendcmd("CDUP"))
    emit("pwd_back", ftp.pwd())
    for n in ftp.nlst("py dir"):
        emit("nlst_dir", n)
    try:
        ftp.cwd("..")
    except ftplib.error_perm:
        pass
    emit("pwd_after_dotdot", ftp.pwd())
    emit("retr_missing", expect_perm(ftp.retrbinary, "RETR missing.bin", lambda b: None))
    emit("retr_outside", expect_perm(ftp.retrbinary, "RETR ../outside.txt", lambda b: None))
    emit("delete", ftp.delete("py dir/hello.txt"))
    emit("rmd", ftp.rmd("py dir"))
    emit("delete_missing", expect_perm(ftp.delete, "py dir/hello.txt"))
    emit("quit", ftp.quit())


class _Bytes:
    """Minimal file-like object for storbinary."""

    def __init__(self, data):
        self.data = data

    def read(self, n=-1):
        if n < 0:
            n = len(self.data)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


MODES = {"session": session, "badlogin": badlogin, "dirs": dirs}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](*sys.argv[2:])
