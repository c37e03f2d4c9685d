#!/usr/bin/env bash
# Start/stop actorftpd for ftpbench, the way /work/shared/bench/servers/refserver.sh
# starts the reference servers (same data dir, passive range, fd limit, loopback only).
#
#   tests/bench/run_actorftpd.sh start [NAME]   # prints "NAME PORT PID" (PID: give it to
#                                               # ftpbench as --server-pid / FTP_SERVER_PID)
#   tests/bench/run_actorftpd.sh stop  [NAME]   # stops that daemon by its PID
#   tests/bench/run_actorftpd.sh port  [NAME]
#
# NAME defaults to "actorftpd" (control port 30030). Several instances can run at once
# under different names, e.g. NAME=actorftpd-w1 with ACTORFTPD_PORT=30031.
# Environment:
#   BENCH_TMP        configs, logs, pid files, served data (default ${TMPDIR:-/tmp}/ftpbench-servers,
#                    the same as refserver.sh, so the fixtures are shared with the peers)
#   FTP_DATA         served directory (default $BENCH_TMP/data)
#   FTP_USER/FTP_PASS  test user (default ftpbench/ftpbench), stored as an Argon2id hash
#   ACTORFTPD_BIN    binary (default: target/release/actorftpd of this repository)
#   ACTORFTPD_PORT   control port (default 30030)
#   ACTORFTPD_WORKERS  --workers N (default: the daemon's default, one per core)
#   ACTORFTPD_EXTRA  more daemon options
#   PASV_DEFAULT=1   no --passive-ports: the daemon's default range (outside the ephemeral one)
#   ACTORFTPD_VMEM_KB  address-space cap for the daemon (ulimit -v), a guard for shared machines:
#                    as built, every Argon2 verification can leave ~19 MiB resident (glibc arena
#                    retention, see BENCHMARKS.md), so a long login-heavy run would exhaust RAM
#   ACTORFTPD_HASH   the user's password_hash (default: `actorftpd hash-password`, Argon2id with
#                    the default cost); profile.sh passes a minimal-cost one (m=8 KiB, t=1)
#   GLIBC_TUNABLES   passed through (e.g. glibc.malloc.mmap_threshold=4194304 avoids that retention)
# Caps raised as for the peers: --max-sessions 20000 --max-sessions-per-ip 20000;
# logging at warn (-q); passive ports 30100-32699 (below the ephemeral range).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}/ftpbench-servers}
DATA=${FTP_DATA:-$BENCH_TMP/data}
FUSER=${FTP_USER:-ftpbench}
FPASS=${FTP_PASS:-ftpbench}
PASV_MIN=${PASV_MIN:-30100}
PASV_MAX=${PASV_MAX:-32699}
BIN=${ACTORFTPD_BIN:-$REPO/target/release/actorftpd}
CMD=${1:-}; NAME=${2:-actorftpd}
PORT=${ACTORFTPD_PORT:-30030}

wait_listen() {  # $1 port $2 pid
  for _ in $(seq 1 100); do
    if ! kill -0 "$2" 2>/dev/null; then echo "server exited, see $BENCH_TMP/$NAME.log" >&2; return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not listen on $1" >&2; return 1
}

start() {
  [ -x "$BIN" ] || { echo "no binary $BIN (cargo build --release first)" >&2; exit 1; }
  # Another server on the port would answer wait_listen and be measured instead of ours.
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is already in use (another server?): not starting $NAME" >&2; exit 1
  fi
  local dir="$BENCH_TMP/$NAME"
  mkdir -p "$dir" "$DATA"
  ulimit -n "$(ulimit -Hn)"          # fd limit for the server: the hard limit
  [ -n "${ACTORFTPD_VMEM_KB:-}" ] && ulimit -v "$ACTORFTPD_VMEM_KB"
  local hash=${ACTORFTPD_HASH:-}
  [ -n "$hash" ] || hash=$(printf '%s\n' "$FPASS" | "$BIN" hash-password)
  [ -n "$hash" ] || { echo "hash-password failed" >&2; exit 1; }
  cat >"$dir/users.toml" <<TOML
[[user]]
name = "$FUSER"
password_hash = "$hash"
root = "$DATA"
TOML
  local workers=()
  [ -n "${ACTORFTPD_WORKERS:-}" ] && workers=(--workers "$ACTORFTPD_WORKERS")
  local log="$BENCH_TMP/$NAME.log"
  local pasv=(--passive-ports "$PASV_MIN-$PASV_MAX")
  [ -n "${PASV_DEFAULT:-}" ] && pasv=()
  # shellcheck disable=SC2086
  nohup "$BIN" --listen "127.0.0.1:$PORT" --users "$dir/users.toml" \
    "${pasv[@]}" -q --max-sessions 20000 --max-sessions-per-ip 20000 \
    --idle-timeout 1200 "${workers[@]}" ${ACTORFTPD_EXTRA:-} >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$BENCH_TMP/$NAME.pid"
  wait_listen "$PORT" "$pid"
  sleep 0.2
  kill -0 "$pid" 2>/dev/null || { echo "$NAME exited, see $log" >&2; exit 1; }
  echo "$NAME $PORT $pid"
}

stop() {
  local pf="$BENCH_TMP/$NAME.pid"
  [ -f "$pf" ] || { echo "no pid file $pf" >&2; return 1; }
  local pid; pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
  echo "stopped $NAME (pid $pid)"
}

mkdir -p "$BENCH_TMP"
case "$CMD" in
  start) start ;;
  stop) stop ;;
  port) echo "$PORT" ;;
  *) sed -n '2,23p' "$0"; exit 2 ;;
esac
