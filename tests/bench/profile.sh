#!/usr/bin/env bash
# Profile actorftpd per scenario: syscall counts (strace -c -f), CPU profile (perf record -g),
# and the daemon's thread count, page faults and context switches around each workload.
# Each workload is ftpbench.py with small sizes (no --json), run once per tool on a warm daemon.
#
#   tests/bench/profile.sh [WORKLOAD...]   (default: A B C E-noop E-cwd F)
#   OUT=tests/bench/results/profile  NICE=5  FTPBENCH_DIR=/work/shared/bench  TOOLS="strace perf"
# Output per workload W: $OUT/W.strace (strace -c table), $OUT/W.perf.txt (perf report of the
# daemon's samples only, % of the daemon's samples), W.perf-threads.txt (% of all samples on the
# host, per daemon thread name), $OUT/W.procstat (threads, minflt, ctxt switches before/after).
# The daemon is started with tests/bench/run_actorftpd.sh as "actorftpd-prof" on port 30039.
# Logins cost one Argon2 verification (~16 ms) and would swamp the per-operation profiles of
# A-E, so the user's hash is a minimal-cost Argon2id PHC (m=8 KiB, t=1, p=1, the password is the
# same) unless PROFILE_HASH=default (use that for F, whose subject is the verification).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FB=${FTPBENCH_DIR:-/work/shared/bench}
OUT=${OUT:-$HERE/results/profile}
NICE=${NICE:-5}
TOOLS=${TOOLS:-strace perf}
export FTP_USER=${FTP_USER:-ftpbench} FTP_PASS=${FTP_PASS:-ftpbench}
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(A B C E-noop E-cwd F)
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
CHEAP='$argon2id$v=19$m=8,t=1,p=1$ZnRwYmVuY2gtcHJvZmlsZQ$DC3c24veaj0L4nTVYGbYf369qLuG0S/zIIvkWO603Dg'
[ "${PROFILE_HASH:-cheap}" = default ] && CHEAP=
line=$(ACTORFTPD_HASH=$CHEAP ACTORFTPD_PORT=30039 nice -n "$NICE" "$HERE/run_actorftpd.sh" start actorftpd-prof) || exit 1
PID=$(echo "$line" | awk '{print $3}')
export FTP_PORT=30039 FTP_SERVER_PID=$PID

args_of() {
  case "$1" in
    A) echo "A --runs 1 --warmup 0" ;;
    B) echo "B --runs 1 --warmup 0 --no-verify" ;;
    C) echo "C --clients 50 --per-client ${C_PER:-100}" ;;
    E-noop) echo "E --noops ${E_NOOPS:-20000} --pairs 0 --e-pin none" ;;
    E-cwd) echo "E --noops 0 --pairs ${E_PAIRS:-5000} --e-pin none" ;;
    F) echo "F --logins 30" ;;
  esac
}
drive() { nice -n "$NICE" python3 "$FB/ftpbench.py" --label profile $(args_of "$1") 2>&1 | grep -E "RESULT|ERROR"; }
procstat() {  # threads, minor faults (whole process), voluntary+involuntary ctxt switches (sum of live threads)
  local thr flt cs
  thr=$(ls /proc/$PID/task | wc -l)
  flt=$(awk '{print $10}' /proc/$PID/stat)
  cs=$(cat /proc/$PID/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s}')
  echo "threads $thr minflt $flt ctxt_switches(live threads) $cs"
}

nice -n "$NICE" python3 "$FB/ftpbench.py" --label profile prep >/dev/null   # fixtures, warm daemon
for w in "${WORKLOADS[@]}"; do
  echo "=== $w: ftpbench $(args_of "$w")"
  drive "$w" >/dev/null                                  # warm-up (blocking-pool threads exist)
  { echo "before: $(procstat)"; drive "$w"; echo "after:  $(procstat)"; } | tee "$OUT/$w.procstat"
  if [[ " $TOOLS " == *" strace "* ]]; then
    strace -c -f -o "$OUT/$w.strace" -p "$PID" 2>/dev/null & sp=$!
    sleep 1; drive "$w"; sleep 0.5
    kill -INT "$sp"; wait "$sp" 2>/dev/null
    head -25 "$OUT/$w.strace"
  fi
  if [[ " $TOOLS " == *" perf "* ]]; then
    perf record -q -a -g -F 4999 -o "$OUT/$w.perf.data" 2>/dev/null & pp=$!
    sleep 1; drive "$w"; sleep 0.5
    kill -INT "$pp"; wait "$pp" 2>/dev/null
    perf report -i "$OUT/$w.perf.data" --pid "$PID" --no-children --stdio --sort dso,sym \
      --percentage relative -g none --percent-limit 0.5 2>/dev/null | grep -v "^$" | head -70 > "$OUT/$w.perf.txt"
    perf report -i "$OUT/$w.perf.data" --pid "$PID" --no-children --stdio --sort comm \
      -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -12 > "$OUT/$w.perf-threads.txt"
    rm -f "$OUT/$w.perf.data"
    head -30 "$OUT/$w.perf.txt"
  fi
done
"$HERE/run_actorftpd.sh" stop actorftpd-prof
