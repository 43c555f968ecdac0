#!/usr/bin/env bash
# pararun on a real scheduler (issue 7): a Slurm job array of TASKS shards over one input.
#
#   scripts/slurm-shards.sh                 # as root on Debian 12; installs slurm-wlm if missing
#   ITEMS=10000 TASKS=8 scripts/slurm-shards.sh
#
# It builds pararun (release), starts a throw-away single-node Slurm cluster in a temp dir
# (munged, slurmctld and slurmd, all on 127.0.0.1), writes ITEMS JSONL items with mixed keys
# (ints, numeric strings, other strings), and submits one job array whose task I runs
#
#   pararun --shard auto -i items.jsonl \
#           --cache cache-$SLURM_ARRAY_TASK_ID.jsonl -q -- sh -c 'printf ...'
#
# Then it checks: every task COMPLETED with exit code 0; `pararun status` over the caches, during
# the array and after (complete, every key done); `pararun merge` of them holds every key
# exactly once and nothing else; each record sits in its own task's cache; and a plain run over
# the whole input with the merged cache runs nothing. It prints PASS or FAIL with the figures
# and exits 0 or 1. The cluster is always stopped on exit; only the daemons it started are
# killed, by pid.
#
# Env:
#   ITEMS (3000), TASKS (4)          the input size and the array size
#   PARARUN=/path/to/pararun         use this binary instead of building target/release/pararun
#   SLURMCTLD_PORT, SLURMD_PORT      ports on 127.0.0.1 (default: the first free pair from 6817)
#   ARRAY_TIMEOUT (300)              seconds to wait for the array
#   KEEP=1                           keep the temp dir (it is always kept on FAIL)
#
# The cluster set-up follows a recipe tested on Debian 12 (Slurm 22.05, munge 0.5.15) as root,
# without systemd and without cgroups: a private munged (own key and socket), proctrack/linuxproc
# with task/none, no accounting (so no sacct: we read `scontrol show job`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITEMS=${ITEMS:-3000}
TASKS=${TASKS:-4}
ARRAY_TIMEOUT=${ARRAY_TIMEOUT:-300}
T0=$(date +%s.%N)

say() { echo "slurm-shards: $*" >&2; }
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

CLUSTER= # the cluster's state dir, once started
WORK=    # the temp dir
RESULT=  # the PASS lines, once everything is checked

fail() {
    say "FAIL: $*"
    exit 1
}

# ---------------------------------------------------------------------------------------------
# A single-node cluster, all state under one dir (adapted from the project's tested recipe).
# ---------------------------------------------------------------------------------------------

# is_proc PID NAME: PID is alive and is called NAME (guards against pid reuse)
is_proc() { [ "$(ps -p "$1" -o comm= 2>/dev/null)" = "$2" ]; }

# live_pid NAME PIDFILE: print the recorded pid if that process is still running
live_pid() {
    local pid
    if [ -s "$2" ]; then
        pid=$(cat "$2")
        if is_proc "$pid" "$1"; then echo "$pid"; fi
    fi
    return 0
}

# port_busy PORT: something accepts connections on 127.0.0.1:PORT
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_ports: SLURMCTLD_PORT and SLURMD_PORT as given, else the first free pair from 6817, so
# that this cluster never talks to another one on the same machine
pick_ports() {
    if [ -n "${SLURMCTLD_PORT:-}" ] || [ -n "${SLURMD_PORT:-}" ]; then
        SLURMCTLD_PORT=${SLURMCTLD_PORT:-6817}
        SLURMD_PORT=${SLURMD_PORT:-$((SLURMCTLD_PORT + 1))}
        return 0
    fi
    local p
    for ((p = 6817; p < 6917; p += 2)); do
        if ! port_busy "$p" && ! port_busy $((p + 1)); then
            SLURMCTLD_PORT=$p
            SLURMD_PORT=$((p + 1))
            return 0
        fi
    done
    fail "no free port pair between 6817 and 6917 on 127.0.0.1"
}

# cluster_start DIR: munged, slurmctld and slurmd under DIR; exports SLURM_CONF
cluster_start() {
    local dir=$1 node sock conf
    node=$(hostname -s)
    sock=$dir/munge/munge.socket
    conf=$dir/etc/slurm.conf
    [ ${#sock} -lt 100 ] || fail "temp dir path too long for a unix socket: $sock"
    mkdir -p "$dir"/{etc,state,spool,log,munge,pids}
    chmod 755 "$dir" "$dir/munge" # clients (job users) must reach the socket
    export SLURM_CONF=$conf # client commands otherwise read /etc/slurm/slurm.conf

    # munge: no systemd here, so our own daemon, key and socket (--force: it runs as root)
    mungekey --create --keyfile="$dir/munge/munge.key"
    chmod 600 "$dir/munge/munge.key"
    /usr/sbin/munged --force --socket="$sock" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    cp "$dir/munge/munged.pid" "$dir/pids/munged" # daemons delete their pidfiles on exit
    munge -S "$sock" -n | unmunge -S "$sock" >/dev/null || fail "munge does not work"

    # NoCtldInAddrAny, NoInAddrAny: slurmctld binds to its SlurmctldHost address and slurmd to
    # its NodeAddr, 127.0.0.1, instead of every interface (checked below with ss)
    cat >"$conf" <<EOF
ClusterName=pararun
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

    # both daemonize and write their own pidfiles
    /usr/sbin/slurmctld -f "$conf"
    for _ in $(seq 50); do [ -s "$dir/slurmctld.pid" ] && break; sleep 0.1; done
    [ -s "$dir/slurmctld.pid" ] || { tail -n 20 "$dir/log/slurmctld.log" >&2 || true; fail "slurmctld did not start"; }
    cp "$dir/slurmctld.pid" "$dir/pids/slurmctld"
    /usr/sbin/slurmd -f "$conf" -N "$node"
    for _ in $(seq 50); do [ -s "$dir/slurmd.pid" ] && break; sleep 0.1; done
    [ -s "$dir/slurmd.pid" ] || { tail -n 20 "$dir/log/slurmd.log" >&2 || true; fail "slurmd did not start"; }
    cp "$dir/slurmd.pid" "$dir/pids/slurmd"

    local t=0 st=
    while :; do
        st=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
        case $st in idle | mix | alloc) break ;; esac
        t=$((t + 1))
        if [ $t -gt 120 ]; then
            tail -n 20 "$dir"/log/*.log >&2 || true
            fail "the node is not ready after 60 s (state '$st')"
        fi
        sleep 0.5
    done
}

# check_loopback DIR: our daemons listen on 127.0.0.1 only (when ss is there to ask)
check_loopback() {
    command -v ss >/dev/null || return 0
    local name pid addrs bad
    for name in slurmctld slurmd; do
        pid=$(live_pid "$name" "$1/pids/$name")
        [ -n "$pid" ] || fail "$name is not running"
        addrs=$(ss -Hlntup 2>/dev/null | grep "pid=$pid," | awk '{print $5}' || true)
        [ -n "$addrs" ] || fail "ss shows no listening socket of $name (pid $pid)"
        bad=$(grep -v '^127\.0\.0\.1:' <<<"$addrs" || true)
        [ -z "$bad" ] || fail "$name listens beyond 127.0.0.1: ${bad//$'\n'/ }"
    done
}

# cluster_stop DIR: cancel this cluster's jobs, then TERM (at last KILL) only the pids we started
cluster_stop() {
    local dir=$1 name pid np alive running=
    if [ -n "$(live_pid slurmctld "$dir/pids/slurmctld")" ]; then
        # slurmstepd outlives slurmd, so the jobs go first
        squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null || true
        for _ in $(seq 20); do
            if [ -z "$(squeue -h 2>/dev/null)" ]; then break; fi
            sleep 0.5
        done
    fi
    for name in slurmd slurmctld munged; do
        pid=$(live_pid "$name" "$dir/pids/$name")
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            running="$running $name:$pid"
        fi
    done
    for _ in $(seq 60); do # up to 30 s for clean exits
        alive=
        for np in $running; do
            if is_proc "${np#*:}" "${np%%:*}"; then alive=1; fi
        done
        if [ -z "$alive" ]; then break; fi
        sleep 0.5
    done
    for np in $running; do # last resort, same pids only
        if is_proc "${np#*:}" "${np%%:*}"; then kill -KILL "${np#*:}" 2>/dev/null || true; fi
    done
    rm -f "$dir"/pids/*
}

on_exit() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$CLUSTER" ]; then cluster_stop "$CLUSTER"; fi
    if [ $rc -eq 0 ] && [ -n "$RESULT" ]; then
        echo "$RESULT"
        echo "slurm-shards: PASS (total wall time $(secs_since "$T0") s)"
        if [ "${KEEP:-}" = 1 ]; then say "kept $WORK"; elif [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    else
        [ $rc -ne 0 ] || rc=1
        echo "slurm-shards: FAIL (exit $rc after $(secs_since "$T0") s)${WORK:+; logs and data kept in $WORK}"
    fi
    exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Set-up: Slurm, pararun, the cluster, the input
# ---------------------------------------------------------------------------------------------

case $ITEMS in '' | *[!0-9]*) fail "ITEMS must be a number, not '$ITEMS'" ;; esac
case $TASKS in '' | *[!0-9]*) fail "TASKS must be a number, not '$TASKS'" ;; esac
if [ "$ITEMS" -lt 3 ] || [ "$TASKS" -lt 1 ]; then fail "need ITEMS >= 3 and TASKS >= 1"; fi
command -v python3 >/dev/null || fail "python3 is needed for the input and the checks"

if ! command -v sbatch >/dev/null || [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/munged ]; then
    [ "$(id -u)" = 0 ] || fail "Slurm is not installed, and installing it needs root: apt-get install -y slurm-wlm"
    say "installing slurm-wlm"
    t=$(date +%s.%N)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null
    say "installed in $(secs_since "$t") s"
fi
[ "$(id -u)" = 0 ] || fail "the private cluster runs its daemons as root (SlurmUser=root); run as root"

t=$(date +%s.%N)
if [ -n "${PARARUN:-}" ]; then
    [ -x "$PARARUN" ] || fail "PARARUN=$PARARUN is not an executable"
    PARARUN=$(cd "$(dirname "$PARARUN")" && pwd)/$(basename "$PARARUN")
    BUILD="given"
else
    (cd "$REPO" && cargo build --release --quiet) || fail "cargo build --release failed"
    PARARUN=$REPO/target/release/pararun
    BUILD="$(secs_since "$t") s"
fi

# short: the munge socket path must stay under ~100 bytes
WORK=$(mktemp -d /tmp/pararun-slurm.XXXXXX)
DATA=$WORK/data # the "shared" directory every task reads and writes
mkdir -p "$DATA"

pick_ports
t=$(date +%s.%N)
CLUSTER=$WORK/cluster
cluster_start "$CLUSTER"
check_loopback "$CLUSTER"
START="$(secs_since "$t") s"
say "cluster up on 127.0.0.1:$SLURMCTLD_PORT/$SLURMD_PORT in $START (SLURM_CONF=$SLURM_CONF)"

# ITEMS items with mixed keys: ints, their string twins ("5" is not 5), and non-ASCII strings
python3 - "$ITEMS" "$DATA/items.jsonl" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        k = i // 3
        key = [k, str(k), f"item-{k}-é"][i % 3]
        f.write(json.dumps({"id": key, "payload": "x" * (i % 7)}, ensure_ascii=False) + "\n")
PY

# ---------------------------------------------------------------------------------------------
# The job array
# ---------------------------------------------------------------------------------------------

cat >"$DATA/task.sh" <<EOF
#!/bin/bash
set -euo pipefail
cd "$DATA"
exec "$PARARUN" --shard auto -j 2 -i items.jsonl \\
    --cache "cache-\$SLURM_ARRAY_TASK_ID.jsonl" -q \\
    -- sh -c 'printf "{\"task\":%s,\"len\":%s}\n" "\$SLURM_ARRAY_TASK_ID" "\${#1}"' child '<>'
EOF
chmod +x "$DATA/task.sh"

t=$(date +%s.%N)
JID=$(cd "$DATA" && sbatch --parsable --array=0-$((TASKS - 1)) -J pararun-shards \
    -o "$DATA/slurm-%A_%a.out" "$DATA/task.sh") || fail "sbatch failed"
JID=${JID%%;*}
say "submitted array $JID ($TASKS tasks)"
deadline=$(($(date +%s) + ARRAY_TIMEOUT))
# a finished job prints nothing; a purged one makes squeue exit 1: both mean done. Meanwhile
# `pararun status` over the shards' caches, as a user on the login node would run it.
LIVE=
while squeue -h -j "$JID" -o %i 2>/dev/null | grep -q .; do
    seen=$(cd "$DATA" && "$PARARUN" status --json 'cache-*.jsonl' -i items.jsonl 2>/dev/null || true)
    case $seen in *'"running":true'*) LIVE=${LIVE:-$seen} ;; esac
    if [ "$(date +%s)" -gt "$deadline" ]; then
        squeue -j "$JID" >&2 || true
        fail "the array is not done after $ARRAY_TIMEOUT s"
    fi
    sleep 0.5
done
ARRAY="$(secs_since "$t") s"

# one record per task: ArrayTaskId, JobState and ExitCode
STATES=$(scontrol -o show job "$JID" 2>&1) || fail "scontrol show job $JID: $STATES"
bad=
ok=0
for ((i = 0; i < TASKS; i++)); do
    rec=$(grep -E "(^| )ArrayTaskId=$i( |$)" <<<"$STATES" || true)
    state=$(grep -oE ' JobState=[A-Z_]+' <<<"$rec" | cut -d= -f2 || true)
    code=$(grep -oE ' ExitCode=[0-9]+:[0-9]+' <<<"$rec" | cut -d= -f2 || true)
    if [ "$state" = COMPLETED ] && [ "$code" = 0:0 ]; then
        ok=$((ok + 1))
    else
        bad="$bad task $i: state '${state:-?}' exit '${code:-?}';"
        tail -n 20 "$DATA/slurm-${JID}_$i.out" >&2 2>/dev/null || true
    fi
done
[ -z "$bad" ] || fail "tasks did not all succeed:$bad"
for f in "$DATA"/slurm-"${JID}"_*.out; do
    if [ -s "$f" ]; then say "note: $(basename "$f") is not empty:"; head -n 5 "$f" >&2; fi
done

# ---------------------------------------------------------------------------------------------
# The checks: merged cache, every key once, the re-run runs nothing
# ---------------------------------------------------------------------------------------------

for ((i = 0; i < TASKS; i++)); do
    [ -f "$DATA/cache-$i.jsonl" ] || fail "task $i left no cache-$i.jsonl"
done
STATUS=$(cd "$DATA" && "$PARARUN" status --json 'cache-*.jsonl' -i items.jsonl) ||
    fail "pararun status after the array exited $?: $STATUS"
python3 - "$STATUS" "$ITEMS" "$TASKS" <<'PY' || fail "status after the array: $STATUS"
import json, sys
s, items, tasks = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
assert (s["done"], s["failed"], s["remaining"], s["running"]) == (items, 0, 0, False), s
assert len(s["shards"]) == tasks and sum(r["done"] for r in s["shards"]) == items, s
PY
[ -n "$LIVE" ] || say "note: no status poll caught a task running (the array was quick)"
(cd "$DATA" && "$PARARUN" merge -o all.jsonl -i items.jsonl 'cache-*.jsonl') ||
    fail "pararun merge found conflicts or missing keys"

SHARDS=$(python3 - "$DATA" "$TASKS" <<'PY'
import collections, json, sys
data, tasks = sys.argv[1], int(sys.argv[2])

def canon(v):  # keys compare as JSON values: 5 and "5" differ
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

want = [canon(json.loads(l)["id"]) for l in open(f"{data}/items.jsonl", encoding="utf-8")]
errors, seen, counts = [], collections.Counter(), []
for i in range(tasks):
    n = 0
    for no, line in enumerate(open(f"{data}/cache-{i}.jsonl", encoding="utf-8"), 1):
        rec = json.loads(line)
        n += 1
        seen[canon(rec["id"])] += 1
        if rec.get("task") != i:
            errors.append(f"cache-{i}.jsonl:{no}: written by task {rec.get('task')}")
    counts.append(n)
twice = [k for k, c in seen.items() if c > 1]
missing = set(want) - set(seen)
extra = set(seen) - set(want)
if len(set(want)) != len(want):
    errors.append("the input has duplicate keys")
for what, keys in (("twice", twice), ("missing", missing), ("not in the input", extra)):
    if keys:
        errors.append(f"{len(keys)} keys {what}, e.g. {sorted(keys)[:5]}")
empty = [i for i, n in enumerate(counts) if n == 0]
if empty and len(want) >= 100:
    errors.append(f"shards {empty} are empty")
try:  # optional: the shard is XXH3-64 of the compact JSON text, modulo the task count
    import xxhash
    wrong = 0
    for i in range(tasks):
        for line in open(f"{data}/cache-{i}.jsonl", encoding="utf-8"):
            text = canon(json.loads(line)["id"]).encode()
            wrong += xxhash.xxh3_64_intdigest(text) % tasks != i
    xx = "xxh3_64 % N agrees for every key" if not wrong else None
    if wrong:
        errors.append(f"{wrong} keys are not in shard xxh3_64 % {tasks}")
except ImportError:
    xx = "xxh3 cross-check skipped (no python xxhash)"
print(" ".join(f"{i}:{n}" for i, n in enumerate(counts)), f"| sum {sum(counts)}, {len(seen)} distinct keys", f"| {xx}")
for e in errors:
    print("ERROR", e)
PY
) || fail "the cache check crashed"
if grep -q '^ERROR' <<<"$SHARDS"; then fail "$(grep '^ERROR' <<<"$SHARDS" | tr '\n' ' ')"; fi

# a run over the whole input with the merged cache: nothing may run
set +e
RERUN=$(cd "$DATA" && "$PARARUN" -i items.jsonl --cache all.jsonl -- touch ran 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -eq 0 ] || fail "the re-run exited $rc: $RERUN"
[ ! -e "$DATA/ran" ] || fail "the re-run ran a child: $RERUN"
grep -q "ran 0 (0 succeeded, 0 failed), $ITEMS cached" <<<"$RERUN" \
    || fail "the re-run's summary is not 'ran 0 (0 succeeded, 0 failed), $ITEMS cached': $RERUN"

RESULT="slurm-shards: items      $ITEMS (keys: ints, numeric strings, non-ASCII strings)
slurm-shards: tasks      $TASKS (array $JID, $ok/$TASKS COMPLETED with ExitCode 0:0)
slurm-shards: per shard  $SHARDS
slurm-shards: status     live: ${LIVE:-not caught}; after: $STATUS
slurm-shards: re-run     ${RERUN##*$'\n'}
slurm-shards: wall time  array $ARRAY (submit to done), cluster start $START, build $BUILD"
