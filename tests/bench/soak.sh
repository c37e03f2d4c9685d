#!/usr/bin/env bash
# Soak (issue 20): scenario C (50 clients x 50 RETRs of 4 KiB) RUNS times back to back on one
# daemon, without waiting, so each run meets the TIME_WAIT sockets of the runs before it.
#
#   tests/bench/soak.sh SERVER [RUNS]     # SERVER: actorftpd, actorftpd-base, vsftpd, pure-ftpd
#
# Starts the server (run_actorftpd.sh or the shared harness's servers/refserver.sh, the same
# settings as every other benchmark: loopback, fd limit raised, passive range 30100-32699 for
# the peers), waits until fewer than TW_QUIET TIME_WAIT sockets are left from earlier runs (so
# every server starts from the same state), runs C RUNS times, stops the server by its PID,
# and prints one line per run: transfers/s, server CPU µs per transfer, TIME_WAIT sockets
# before the run, load average. A failed run is marked and the soak goes on. JSON records go
# to $SOAK_JSON, ftpbench's output to $BENCH_TMP/soak.log.
# Environment:
#   BENCH           the shared harness (default: ../shared/bench from the repository root)
#   BENCH_TMP       configs, logs, served data (default ${TMPDIR:-/tmp}/ftpbench-servers)
#   ACTORFTPD_BIN   the binary for "actorftpd"; ACTORFTPD_BASE_BIN the one for "actorftpd-base"
#   ACTORFTPD_PASV  "default" (no --passive-ports, the default range) or LOW-HIGH
#                   (default: default)
#   SOAK_JSON       JSON-lines output (default $BENCH_TMP/soak.jsonl)
#   TW_QUIET        TIME_WAIT sockets to wait for before the first run (default 2000)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$(cd "$REPO/../shared/bench" && pwd)}
export BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}/ftpbench-servers}
SERVER=${1:?usage: soak.sh SERVER [RUNS]}
RUNS=${2:-20}
JSON=${SOAK_JSON:-$BENCH_TMP/soak.jsonl}
TW_QUIET=${TW_QUIET:-2000}
PASV=${ACTORFTPD_PASV:-default}
export FTP_USER=${FTP_USER:-ftpbench} FTP_PASS=${FTP_PASS:-ftpbench}

time_wait() { ss -Htan state time-wait | wc -l; }

case "$SERVER" in
  actorftpd|actorftpd-base)
    bin=${ACTORFTPD_BIN:-$REPO/target/release/actorftpd}
    [ "$SERVER" = actorftpd-base ] && bin=${ACTORFTPD_BASE_BIN:?set ACTORFTPD_BASE_BIN}
    if [ "$PASV" = default ]; then
      # run_actorftpd.sh always gives the peers' range; an empty one leaves the default.
      line=$(ACTORFTPD_BIN=$bin PASV_DEFAULT=1 "$HERE/run_actorftpd.sh" start "$SERVER")
    else
      line=$(ACTORFTPD_BIN=$bin PASV_MIN=${PASV%-*} PASV_MAX=${PASV#*-} \
        "$HERE/run_actorftpd.sh" start "$SERVER")
    fi
    stop() { "$HERE/run_actorftpd.sh" stop "$SERVER" >/dev/null; }
    label="$SERVER (passive: $PASV)"
    ;;
  *)
    line=$("$BENCH/servers/refserver.sh" start "$SERVER")
    stop() { "$BENCH/servers/refserver.sh" stop "$SERVER" >/dev/null; }
    label="$SERVER (passive: 30100-32699)"
    ;;
esac
trap stop EXIT
read -r _ port pid <<<"$line"
export FTP_HOST=127.0.0.1 FTP_PORT=$port FTP_SERVER_PID=$pid
python3 "$BENCH/ftpbench.py" prep >/dev/null

for _ in $(seq 1 120); do [ "$(time_wait)" -lt "$TW_QUIET" ] && break; sleep 1; done
echo "# $label, port $port, pid $pid, $(nproc) cores, $(date -u +%H:%M:%S) UTC"
echo "| run | transfers/s | server CPU µs/transfer | TIME_WAIT before | load (1 min) |"
echo "|---:|---:|---:|---:|---:|"
for i in $(seq 1 "$RUNS"); do
  tw=$(time_wait)
  load=$(cut -d' ' -f1 /proc/loadavg)
  # A failed run (an error or a short file) is recorded and counted, and the soak goes on.
  python3 "$BENCH/ftpbench.py" --label "$label" --json "$JSON" --clients 50 C >>"$BENCH_TMP/soak.log" || true
  python3 - "$JSON" "$i" "$tw" "$load" <<'PY'
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1])][-1]
cpu = rec.get("server_cpu")
per = f"{cpu / max(rec['ok'], 1) * 1e6:.0f}" if cpu is not None else "n/a"
tps = f"{rec['tps']:.0f}"
if rec.get("verdict") != "PASS":
    kinds = "; ".join(f"{v}x {k}" for k, v in rec.get("error_kinds", {}).items())
    tps += f" (FAIL: {rec['ok']}/{rec['total']} ok; {kinds})"
print(f"| {sys.argv[2]} | {tps} | {per} | {sys.argv[3]} | {sys.argv[4]} |")
PY
done
