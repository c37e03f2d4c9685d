#!/usr/bin/env bash
# Interleaved comparison: the same ftpbench scenario(s) for several servers, alternating, for
# R rounds, so that this VM's drift hits every server alike.
#
#   tests/bench/interleave.sh "SCENARIOS" ROUNDS SERVER...
#
# SERVER is LABEL=BINARY (actorftpd built as BINARY: several builds can alternate), a peer
# name (vsftpd, pure-ftpd, proftpd, pyftpdlib, unftp: started by refserver.sh), or `floor`
# (tests/bench/floor_ftpd.c, for E only; built with gcc on first use).
# Examples (session 2, BENCHMARKS.md):
#   tests/bench/interleave.sh A 3 actorftpd=/tmp/actorftpd-final2 vsftpd proftpd
#   tests/bench/interleave.sh E 3 floor new=/tmp/actorftpd-new old=/tmp/actorftpd-old pure-ftpd vsftpd
# Environment: RESULTS (default tests/bench/results/interleaved.jsonl; logs go beside it),
# WAIT_QUIET (default 20), VSFTPD_BIN, PUREFTPD_BIN, UNFTP_BIN as for run_all.sh.
# Prints each RESULT line prefixed with the label and the round.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCEN=$1; ROUNDS=$2; shift 2
FB=${FTPBENCH_DIR:-/work/shared/bench}
export RESULTS=${RESULTS:-$HERE/results/interleaved.jsonl}
WAIT_QUIET=${WAIT_QUIET:-20}
FLOOR_BIN=${BENCH_TMP:-${TMPDIR:-/tmp}/ftpbench-servers}/floor_ftpd
FLOOR_PORT=${FLOOR_PORT:-30060}

floor() {  # $1 round
  if [ ! -x "$FLOOR_BIN" ]; then
    mkdir -p "$(dirname "$FLOOR_BIN")"
    gcc -O2 -o "$FLOOR_BIN" "$HERE/floor_ftpd.c" || return 1
  fi
  "$FLOOR_BIN" "$FLOOR_PORT" &
  local pid=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$FLOOR_PORT") 2>/dev/null && break; sleep 0.1; done
  FTP_USER=ftpbench FTP_PASS=ftpbench FTP_PORT=$FLOOR_PORT FTP_SERVER_PID=$pid \
    python3 "$FB/ftpbench.py" --label floor --json "$RESULTS" --wait-quiet "$WAIT_QUIET" \
    --e-pin same E 2>&1 | grep RESULT | sed "s/^/floor r$1 /"
  kill "$pid"
  wait "$pid" 2>/dev/null
}

for r in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    case "$spec" in
      floor) floor "$r" ;;
      *=*)
        ACTORFTPD_BIN=${spec#*=} SCEN="$SCEN" STORM=0 WAIT_QUIET=$WAIT_QUIET \
          "$HERE/run_all.sh" actorftpd 2>&1 | grep RESULT | sed "s/^/${spec%%=*} r$r /" ;;
      *)
        SCEN="$SCEN" STORM=0 WAIT_QUIET=$WAIT_QUIET "$HERE/run_all.sh" "$spec" 2>&1 \
          | grep RESULT | sed "s/^/$spec r$r /" ;;
    esac
  done
done
