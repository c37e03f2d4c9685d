#!/usr/bin/env bash
# One comparison run: actorftpd and every reference peer, one after another on this machine,
# all ftpbench scenarios (prep D A B C E F) plus ftpstorm's concurrent login storm (F-storm),
# appending to one results file, then the markdown table.
#
#   tests/bench/run_all.sh [SERVER...]     (default: actorftpd and the six peers)
#   SCEN="C E" tests/bench/run_all.sh ...  (ftpbench scenarios; default: all)
#   STORM=0 ...                            (skip the F-storm extra)
#   WAIT_QUIET=300 RESULTS=tests/bench/results/results.jsonl
#   FTPBENCH_DIR=/work/shared/bench        (ftpbench.py and servers/refserver.sh)
#   NICE=5                                 (niceness of server and client)
# Peers: started with $FTPBENCH_DIR/servers/refserver.sh (VSFTPD_BIN, PUREFTPD_BIN, UNFTP_BIN
# as in its README); actorftpd with tests/bench/run_actorftpd.sh (cargo build --release first).
# actorftpd's D runs at 1000, 5000 and 10000 sessions, the peers' at 1000 and 5000.
# Needs root (test user for the forking peers, /proc of the servers).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FB=${FTPBENCH_DIR:-/work/shared/bench}
SERVERS=("$@")
[ ${#SERVERS[@]} -eq 0 ] && SERVERS=(actorftpd vsftpd pure-ftpd proftpd pyftpdlib pyftpdlib-threaded unftp)
export FTP_USER=${FTP_USER:-ftpbench} FTP_PASS=${FTP_PASS:-ftpbench}
export FTPBENCH=$FB/ftpbench.py
PY=${PYTHON:-python3}
SCEN=${SCEN:-all}
WAIT_QUIET=${WAIT_QUIET:-300}
RESULTS=${RESULTS:-$HERE/results/results.jsonl}
LOGDIR=$(dirname "$RESULTS")
NICE=${NICE:-5}
mkdir -p "$LOGDIR"
ulimit -n "$(ulimit -Hn)"
# Each server is started fresh for each group of scenarios: "prep D" (clean memory baseline,
# as ftpbench's `all` runs D first), then "A B C E F", then the login storm. Same for all.
run_group() {  # $1 server, $2 group name, $3... command
  local s=$1 g=$2; shift 2
  local p; p=$("${starter[@]}" port "$s")
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p of $s is already in use (another server?): skipping group $g" | tee -a "$LOGDIR/$s.log"; return
  fi
  if ! line=$(nice -n "$NICE" "${starter[@]}" start "$s"); then echo "could not start $s"; return; fi
  port=$(echo "$line" | awk '{print $2}')
  export FTP_SERVER_PID=$(echo "$line" | awk '{print $3}')
  sleep 1
  {
    echo "\$ ${starter[*]} start $s  ->  $line   [group $g]"
    echo "\$ FTP_PORT=$port FTP_SERVER_PID=$FTP_SERVER_PID nice -n $NICE $PY $*"
    FTP_PORT=$port nice -n "$NICE" $PY "$@"
    echo "[group $g] server $s pid $FTP_SERVER_PID: $(grep -E 'VmRSS|VmHWM' /proc/$FTP_SERVER_PID/status 2>/dev/null | tr -s ' \t\n' ' ' || echo 'not running any more')"
  } 2>&1 | tee -a "$LOGDIR/$s.log"
  "${starter[@]}" stop "$s"
  sleep 2
}
for s in "${SERVERS[@]}"; do
  echo "=== $s ($(date -u +%FT%TZ))"
  if [ "$s" = actorftpd ] || [[ "$s" == actorftpd-* ]]; then
    starter=("$HERE/run_actorftpd.sh"); sess=${ACTORFTPD_SESSIONS:-1000,5000,10000}
  else
    starter=("$FB/servers/refserver.sh"); sess=${PEER_SESSIONS:-1000,5000}
  fi
  common=(--label "$s" --json "$RESULTS" --wait-quiet "$WAIT_QUIET")
  if [ "$SCEN" = all ]; then
    run_group "$s" D "$FB/ftpbench.py" "${common[@]}" --sessions "$sess" prep D
    run_group "$s" ABCEF "$FB/ftpbench.py" "${common[@]}" prep A B C E F
  else
    run_group "$s" "$SCEN" "$FB/ftpbench.py" "${common[@]}" --sessions "$sess" prep $SCEN
  fi
  [ "${STORM:-1}" = 1 ] && run_group "$s" storm "$HERE/ftpstorm.py" "${common[@]}" storm
done
$PY "$FB/ftpbench.py" table "$RESULTS" > "$LOGDIR/table.md"
cat "$LOGDIR/table.md"
