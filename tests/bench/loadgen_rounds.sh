#!/usr/bin/env bash
# Scenario C with the lean client (loadgen), alternating servers for R rounds so that this
# VM's drift hits every server alike.
#
#   tests/bench/loadgen_rounds.sh ROUNDS "CLIENTS..." SERVER...
#
# SERVER is LABEL=BINARY (an actorftpd build, started by run_actorftpd.sh; ACTORFTPD_WORKERS
# and ACTORFTPD_EXTRA apply) or a peer name started by ../shared/bench/servers/refserver.sh
# (pure-ftpd, vsftpd, proftpd, ...). The server CPU figure covers the server process and its
# live descendants, so forking peers are metered too.
# Example: tests/bench/loadgen_rounds.sh 3 "50 200" new=target/release/actorftpd pure-ftpd
# Environment: RETRS (default 200 per client), LOADGEN (default: built by cargo bench once).
# Prints one "LOADGEN round=R server=LABEL clients=N {json}" line per run.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROUNDS=$1; CLIENTS=$2; shift 2
FB=${FTPBENCH_DIR:-/work/shared/bench}
RETRS=${RETRS:-200}
DATA=${FTP_DATA:-${BENCH_TMP:-${TMPDIR:-/tmp}/ftpbench-servers}/data}
if [ -z "${LOADGEN:-}" ]; then
  (cd "$REPO" && cargo bench --bench loadgen --no-run 2>&1 | tail -1) >&2
  LOADGEN=$(ls -t "$REPO"/target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
fi
SHA=$(sha256sum "$DATA/bench_4k.bin" | cut -d' ' -f1)

run() {  # $1 round $2 label $3 port $4 pid
  [ -n "$4" ] || { echo "LOADGEN round=$1 server=$2 did not start" >&2; return; }
  for n in $CLIENTS; do
    echo "LOADGEN round=$1 server=$2 clients=$n $("$LOADGEN" --port "$3" --clients "$n" \
      --retrs "$RETRS" --server-pid "$4" --expect-sha256 "$SHA" 2>/dev/null)"
  done
}

for r in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    case "$spec" in
      *=*)
        read -r _ port pid < <(ACTORFTPD_BIN=${spec#*=} "$HERE/run_actorftpd.sh" start "lg-${spec%%=*}")
        run "$r" "${spec%%=*}" "$port" "$pid"
        "$HERE/run_actorftpd.sh" stop "lg-${spec%%=*}" >/dev/null ;;
      *)
        read -r _ port pid < <("$FB/servers/refserver.sh" start "$spec")
        run "$r" "$spec" "$port" "$pid"
        "$FB/servers/refserver.sh" stop "$spec" >/dev/null ;;
    esac
  done
done
