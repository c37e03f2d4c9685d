#!/usr/bin/env bash
# actorftpd with --workers 1 vs --workers 2 (one worker Arbiter thread vs two) when several
# clients transfer at once: ftpbench C (50 and 200 clients x 50 RETR 4 KiB, client in 1 and in 2
# processes) and ftpstorm bulkpar (4 concurrent RETR of the 1 GiB fixture). Alternates the two
# settings ROUNDS times so that drifting background load hits both alike.
#
#   tests/bench/run_workers.sh            -> tests/bench/results/workers.jsonl, workers.log
#   ROUNDS=2 WAIT_QUIET=300 NICE=5 FTPBENCH_DIR=/work/shared/bench
#   ACTORFTPD_HASH=...  (passed to run_actorftpd.sh; the logins happen before the measured phase)
# Labels: actorftpd-w1-p1 / actorftpd-w2-p1 (C, 1 client process, and bulkpar),
#         actorftpd-w1-p2 / actorftpd-w2-p2 (C, 2 client processes).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FB=${FTPBENCH_DIR:-/work/shared/bench}
export FTP_USER=${FTP_USER:-ftpbench} FTP_PASS=${FTP_PASS:-ftpbench} FTPBENCH=$FB/ftpbench.py
PY=${PYTHON:-python3}
NICE=${NICE:-5}
WAIT_QUIET=${WAIT_QUIET:-300}
ROUNDS=${ROUNDS:-2}
RESULTS=${RESULTS:-$HERE/results/workers.jsonl}
LOG=$(dirname "$RESULTS")/workers.log
ulimit -n "$(ulimit -Hn)"
for round in $(seq 1 "$ROUNDS"); do
  for w in 1 2; do
    name=actorftpd-w$w
    line=$(ACTORFTPD_WORKERS=$w ACTORFTPD_PORT=3003$w nice -n "$NICE" "$HERE/run_actorftpd.sh" start "$name") || exit 1
    port=$(echo "$line" | awk '{print $2}'); export FTP_SERVER_PID=$(echo "$line" | awk '{print $3}')
    sleep 1
    {
      echo "=== round $round: $line (--workers $w)"
      for procs in 1 2; do
        echo "\$ FTP_PORT=$port nice -n $NICE $PY $FB/ftpbench.py --label $name-p$procs --json $RESULTS --wait-quiet $WAIT_QUIET --procs $procs prep C"
        FTP_PORT=$port nice -n "$NICE" $PY "$FB/ftpbench.py" --label "$name-p$procs" --json "$RESULTS" \
          --wait-quiet "$WAIT_QUIET" --procs "$procs" prep C
      done
      echo "\$ FTP_PORT=$port nice -n $NICE $PY $HERE/ftpstorm.py --label $name-p1 --json $RESULTS --wait-quiet $WAIT_QUIET --clients 4 bulkpar"
      FTP_PORT=$port nice -n "$NICE" $PY "$HERE/ftpstorm.py" --label "$name-p1" --json "$RESULTS" \
        --wait-quiet "$WAIT_QUIET" --clients 4 bulkpar
    } 2>&1 | tee -a "$LOG"
    "$HERE/run_actorftpd.sh" stop "$name"
    sleep 2
  done
done
$PY "$HERE/report.py" "$RESULTS" --ours none
