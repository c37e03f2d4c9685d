#!/usr/bin/env bash
# Heap allocations per operation with valgrind's DHAT: runs the daemon under DHAT with a
# minimal-cost Argon2 hash, drives one ftpbench workload, stops it (SIGTERM: DHAT writes on exit).
# Run a workload twice with different sizes and diff the two profiles with dhat_top.py:
#
#   tests/bench/dhat.sh noop1k E --noops 1000 --pairs 0 --e-pin none
#   tests/bench/dhat.sh noop3k E --noops 3000 --pairs 0 --e-pin none
#   python3 tests/bench/dhat_top.py $OUT/noop1k.json $OUT/noop3k.json 2000 12   # per NOOP
#
# OUT (default ${TMPDIR:-/tmp}/ftpbench-dhat), FTP_DATA (served dir with the ftpbench fixtures,
# default ${TMPDIR:-/tmp}/ftpbench-servers/data), ACTORFTPD_BIN, port 30038.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
NAME=$1; shift
OUT=${OUT:-${TMPDIR:-/tmp}/ftpbench-dhat}
DATA=${FTP_DATA:-${TMPDIR:-/tmp}/ftpbench-servers/data}
BIN=${ACTORFTPD_BIN:-$HERE/../../target/release/actorftpd}
FB=${FTPBENCH_DIR:-/work/shared/bench}
mkdir -p "$OUT"
CHEAP='$argon2id$v=19$m=8,t=1,p=1$ZnRwYmVuY2gtcHJvZmlsZQ$DC3c24veaj0L4nTVYGbYf369qLuG0S/zIIvkWO603Dg'
cat > "$OUT/users.toml" <<TOML
[[user]]
name = "ftpbench"
password_hash = "$CHEAP"
root = "$DATA"
TOML
valgrind --tool=dhat --dhat-out-file="$OUT/$NAME.json" "$BIN" \
  --listen 127.0.0.1:30038 --users "$OUT/users.toml" --passive-ports 30100-32699 -q \
  --max-sessions 20000 --max-sessions-per-ip 20000 > "$OUT/$NAME.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/30038) 2>/dev/null && break; sleep 0.1; done
FTP_USER=ftpbench FTP_PASS=ftpbench FTP_PORT=30038 FTP_SERVER_PID=none \
  python3 "$FB/ftpbench.py" --label dhat --timeout 120 "$@" 2>&1 | grep -E "RESULT|ERROR"
sleep 1
kill -TERM "$pid"; wait "$pid"
grep -E "Total:|At t-gmax|At t-end" "$OUT/$NAME.log" | sed "s/^==[0-9]*== /$NAME: /"
