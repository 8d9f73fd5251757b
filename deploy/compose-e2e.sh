#!/usr/bin/env bash
# docker-compose.yml for real, on this machine, with podman: the CPU variant
# (deploy/compose/cpu.env, the built-in tiny configuration) from images built
# here to the end of the pipeline's first phase, and torn down again.
#
#   deploy/compose-e2e.sh [DSM_BINARY]          (default build/dsm)
#
#  1. Images: the Debian bookworm base from debootstrap (deploy/base-image.sh;
#     kept between runs), the dsm image from our Dockerfile on top of it with
#     DSM_BINARY (DSM_BUILD=prebuilt: no compile in the image), Prometheus from
#     Debian's package (deploy/prometheus/Dockerfile.debian).
#  2. The stack, project dsm-e2e: `init` (phase 0, shortened to
#     DSM_WARMUP_STEPS steps, default 120) until it exits 0; coordinator,
#     learner, worker and prometheus until each reports healthy; `start`
#     (imports the data, starts the run) until it exits 0.
#  3. Mid-phase 1 the worker container's process is killed with SIGKILL (as a
#     crash or the OOM killer would): the restart policy brings it back, and
#     phase 1 completes with one training group of group_size samples for
#     every labelled training proof, none lost, none doubled (the run's
#     state.db on the dsm-runs volume), and the learner has counted exactly
#     the groups the coordinator recorded, none as a duplicate (its /metrics).
#  4. Prometheus reports every target up.
#  5. The worker scaled to 2 (both registered with the coordinator, both
#     scraped) and back to 1.
#  6. Everything torn down (also on failure): no container, network or volume
#     of the project is left. Images stay, as a cache for the next run.
#
# Needs root and: apt-get install podman podman-compose netavark aardvark-dns runc
# debootstrap (debootstrap only while the base image is not built yet).
# Exit 0 pass, 1 fail (what failed, and the containers' logs), 77 skipped (a
# tool missing; the reason is printed).
#
# Where podman-compose 1.0.3 (Debian 12) falls short of Docker Compose, this
# script does the rest, leaving docker-compose.yml as Docker users run it:
#  - no --env-file: cpu.env's variables are exported instead;
#  - depends_on conditions are not waited for, profiles and --scale are
#    ignored: the containers of the chosen services are created with
#    `up --no-start` and started here in the order the conditions say;
#    scaling is deploy.replicas in an override file (and a copy of each
#    container's settings, which 1.0.3 would change in place: see compose());
#  - podman runs health checks from systemd timers, and there is no systemd
#    here: `podman healthcheck run` asks instead;
#  - `podman kill` counts as a stop by the user (no restart), hence the
#    SIGKILL to the container's process;
#  - `down` leaves the network: removed here.
# Grafana is left out: no registry is reachable and Debian has no package.
set -euo pipefail
export LC_ALL=C
SRC="$(cd "$(dirname "$0")/.." && pwd)"
DSM="$(realpath -m "${1:-$SRC/build/dsm}")"
PROJECT="${DSM_E2E_PROJECT:-dsm-e2e}"
BASE_IMAGE=localhost/dsm-base:bookworm
DSM_E2E_IMAGE=localhost/dsm:e2e
PROM_IMAGE=localhost/dsm-prometheus:bookworm
PY=/usr/bin/python3
STARTED=$SECONDS

skip() { echo "SKIPPED: $*"; exit 77; }
need() { command -v "$1" >/dev/null || skip "$1 is not installed (apt-get install podman podman-compose netavark aardvark-dns runc debootstrap)"; }
[[ $EUID -eq 0 ]] || skip "needs root (rootful podman, debootstrap)"
need podman
need podman-compose
podman image exists "$BASE_IMAGE" 2>/dev/null || need debootstrap
[[ -x "$DSM" ]] || { echo "FAIL: no dsm binary at $DSM (build it first: scripts/setup.sh)" >&2; exit 1; }
"$PY" -c 'import yaml' 2>/dev/null || skip "$PY has no yaml module: install Debian's python3-yaml"

WORK="$(mktemp -d /var/tmp/dsm-compose-e2e.XXXXXX)"
# The machine's containers.conf stays as it is: this run's settings. Containers
# here may not set resource limits (no default ulimits); crun cannot run on
# this machine's hybrid cgroups, runc can; no systemd (cgroupfs, file events).
{
  echo '[containers]'
  echo 'default_ulimits = []'
  echo '[engine]'
  echo 'cgroup_manager = "cgroupfs"'
  echo 'events_logger = "file"'
  if command -v runc >/dev/null; then echo 'runtime = "runc"'; fi
  echo '[network]'
  echo 'network_backend = "netavark"'
} > "$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"

# docker-compose.yml's variables: the CPU variant, the images built here,
# published ports on an address of their own (no clash with anything on
# 127.0.0.1), a short phase 0.
set -a
# shellcheck disable=SC1091  # the CPU variant's variables
. "$SRC/deploy/compose/cpu.env"
set +a
export DSM_IMAGE="$DSM_E2E_IMAGE" PROMETHEUS_IMAGE="$PROM_IMAGE"
export DSM_BIND="${DSM_E2E_BIND:-127.0.0.88}"
export DSM_WARMUP_STEPS="${DSM_WARMUP_STEPS:-120}"
SERVICES=(coordinator learner worker prometheus)

log() { echo "[compose-e2e $(printf '%4d' $((SECONDS - STARTED))) s] $*"; }
# podman-compose, on docker-compose.yml and any override files given first
# (-f FILE). Version 1.0.3 pops "CMD" off a service's health-check list while
# it turns the first replica into podman arguments, so a second replica fails
# ("unknown healthcheck test type"): each container's settings are copied
# before that here.
compose() {
  local files=(-f "$SRC/docker-compose.yml")
  while [[ "${1:-}" == -f ]]; do files+=(-f "$2"); shift 2; done
  "$PY" -c 'import copy, sys, podman_compose as pc
to_args = pc.container_to_args
pc.container_to_args = lambda compose, cnt, *a, **k: to_args(compose, copy.deepcopy(cnt), *a, **k)
sys.argv[0] = "podman-compose"
pc.main()' -p "$PROJECT" "${files[@]}" "$@" >> "$WORK/compose.log" 2>&1
}
cname() { echo "${PROJECT}_$1_${2:-1}"; }
project_containers() { podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT"; }
project_volumes() { podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT"; }
project_networks() { podman network ls -q --filter "name=^${PROJECT}_"; }

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -n "$(project_containers)" ]]; then
    for c in $(podman ps -a --format '{{.Names}}' --filter "label=io.podman.compose.project=$PROJECT"); do
      echo "----- $c ($(podman inspect --format '{{.State.Status}}, exit {{.State.ExitCode}}, restarts {{.RestartCount}}' "$c")): last log lines"
      podman logs --tail 25 "$c" 2>&1
    done
  fi
  log "tearing down"
  compose down -v -t 20
  for c in $(project_containers); do podman rm -f -t 5 "$c" > /dev/null 2>&1; done
  for v in $(project_volumes); do podman volume rm -f "$v" > /dev/null 2>&1; done
  for n in $(project_networks); do podman network rm -f "$n" > /dev/null 2>&1; done
  local left
  left="$(project_containers; project_volumes; project_networks)"
  if [[ -n "$left" ]]; then
    echo "FAIL: left behind: ${left//$'\n'/ }" >&2
    rc=1
  fi
  if ((rc == 0)); then
    rm -rf "$WORK"
    log "passed in $((SECONDS - STARTED)) s"
  else
    echo "compose-e2e: FAILED (exit $rc); podman-compose's output and the build logs are in $WORK" >&2
  fi
  exit "$rc"
}
fail() { echo "FAIL: $*" >&2; exit 1; }

# Leftovers of an interrupted earlier run would clash: gone first.
if [[ -n "$(project_containers; project_volumes; project_networks)" ]]; then
  log "removing what an earlier run left"
  for c in $(project_containers); do podman rm -f -t 5 "$c" > /dev/null; done
  for v in $(project_volumes); do podman volume rm -f "$v" > /dev/null; done
  for n in $(project_networks); do podman network rm -f "$n" > /dev/null; done
fi
trap cleanup EXIT

# ---------------------------------------------------------------- images
log "base image"
"$SRC/deploy/base-image.sh" "$BASE_IMAGE"

log "dsm image $DSM_E2E_IMAGE from the Dockerfile with $DSM"
mkdir -p "$WORK/context"
cp -r "$SRC/configs" "$WORK/context/configs"
"$SRC/deploy/runtime-libs.sh" "$DSM" "$WORK/context/prebuilt"
old_image="$(podman image inspect --format '{{.Id}}' "$DSM_E2E_IMAGE" 2>/dev/null || true)"
podman build --layers -f "$SRC/Dockerfile" -t "$DSM_E2E_IMAGE" \
  --build-arg DEBIAN_IMAGE="$BASE_IMAGE" --build-arg DEBIAN_SLIM_IMAGE="$BASE_IMAGE" \
  --build-arg TORCH=cpu --build-arg DSM_BUILD=prebuilt \
  "$WORK/context" > "$WORK/build-dsm.log" 2>&1 || { tail -30 "$WORK/build-dsm.log"; fail "podman build of the dsm image"; }
new_image="$(podman image inspect --format '{{.Id}}' "$DSM_E2E_IMAGE")"
if [[ -n "$old_image" && "$old_image" != "$new_image" ]]; then podman rmi "$old_image" > /dev/null 2>&1 || true; fi

log "prometheus image $PROM_IMAGE from Debian's package"
podman build --layers -f "$SRC/deploy/prometheus/Dockerfile.debian" -t "$PROM_IMAGE" \
  --build-arg DEBIAN_IMAGE="$BASE_IMAGE" "$SRC/deploy/prometheus" > "$WORK/build-prometheus.log" 2>&1 ||
  { tail -30 "$WORK/build-prometheus.log"; fail "podman build of the prometheus image"; }

# ---------------------------------------------------------------- helpers
# The run's numbers straight from its state.db (on the dsm-runs volume).
cat > "$WORK/state.py" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
q = lambda sql, *a: db.execute(sql, a).fetchall()
PHASE1 = 2  # v1::PHASE_VERIFIER_RL
cmd = sys.argv[2]
if cmd == "progress":  # state phase done total error
    row = q("SELECT state, phase, progress_done, progress_total, error FROM runs")
    print(" ".join(str(x) for x in row[0][:4]) + " " + row[0][4].replace("\n", " ") if row else "0 0 0 0 no run yet")
elif cmd == "acked":  # training groups the learner has acknowledged
    print(q("SELECT count(*) FROM training_groups WHERE status != 0")[0][0])
elif cmd == "phase1":  # every labelled training proof, each pass: one group of group_size samples
    group_size, epochs = int(sys.argv[3]), int(sys.argv[4])
    passes = [""] + [f"-e{e}" for e in range(2, epochs + 1)]  # a pass's group ids after the first end in -e<pass>
    want = {"p2-i1-" + p + e for (p,) in q("SELECT p.proof_id FROM proofs p JOIN problems b USING (problem_id) "
                                           "WHERE b.split != 2") for e in passes}
    rows = q("SELECT group_id, status FROM training_groups WHERE phase = ? AND iteration = 1", PHASE1)
    got = [g for g, _ in rows]
    errors = []
    if len(got) != len(set(got)): errors.append(f"{len(got) - len(set(got))} groups recorded twice")
    if set(got) - want: errors.append(f"{len(set(got) - want)} groups for no training proof")
    if want - set(got): errors.append(f"{len(want - set(got))} training proofs without a group (lost)")
    for status, n in q("SELECT status, count(*) FROM training_groups WHERE phase = ? GROUP BY status", PHASE1):
        if status == 0: errors.append(f"{n} groups never acknowledged by the learner")
        if status == 2: errors.append(f"{n} groups acknowledged as DUPLICATE")
    for g, n, k in q("SELECT group_id, count(*), count(DISTINCT sample_index) FROM samples WHERE group_id IN "
                     "(SELECT group_id FROM training_groups WHERE phase = ?) GROUP BY group_id", PHASE1):
        if n != group_size or k != group_size: errors.append(f"group {g}: {n} samples ({k} distinct), not {group_size}")
    samples = q("SELECT count(*) FROM samples WHERE group_id IN (SELECT group_id FROM training_groups WHERE phase = ?)",
                PHASE1)[0][0]
    if samples != len(want) * group_size: errors.append(f"{samples} samples, not {len(want)} x {group_size}")
    for e in errors[:10]: print("FAIL:", e)
    print(f"phase 1: {len(want) // epochs} training proofs x {epochs} passes, {len(set(got))} groups, {samples} samples")
    sys.exit(1 if errors else 0)
elif cmd == "learner":  # the learner's groups counter = the groups recorded as acknowledged, none a duplicate
    import time, urllib.request
    acked = lambda: q("SELECT count(*) FROM training_groups WHERE status != 0")[0][0]
    for attempt in range(400):  # a snapshot with nothing in flight: the same count before and after
        before = acked()
        body = urllib.request.urlopen(sys.argv[3], timeout=10).read().decode()
        after = acked()
        counts = {l.split('"')[1]: float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
                  if l.startswith("dsm_learner_groups_total{")}
        if counts.get("duplicate", 0) != 0: sys.exit(f"FAIL: the learner acknowledged {counts['duplicate']:.0f} "
                                                     "groups as duplicates")
        counted = sum(v for k, v in counts.items() if k != "duplicate")
        if before == counted == after:
            print(f"learner: {counted:.0f} groups counted = {after} acknowledged in state.db, 0 duplicates")
            sys.exit(0)
        time.sleep(0.3)
    sys.exit(f"FAIL: the learner counted {counted:.0f} groups, the coordinator recorded {before}..{after}")
EOF
state() {
  local mp
  mp="$(podman volume inspect --format '{{.Mountpoint}}' "${PROJECT}_dsm-runs")"
  [[ -f "$mp/tiny/state.db" ]] || { echo "0 0 0 0 no state.db yet"; return 0; }
  "$PY" "$WORK/state.py" "$mp/tiny/state.db" "$@"
}
ip_of() { podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
# `metric CONTAINER PORT NAME{labels}`: the sample's value on the container's /metrics (-1: none).
metric() {
  "$PY" - "http://$(ip_of "$1"):$2/metrics" "$3" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
values = [float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith(sys.argv[2] + " ")]
print(int(values[0]) if values else -1)
EOF
}
# `targets [JOB]`: "up total" over Prometheus's active targets (of JOB).
targets() {
  "$PY" - "http://$DSM_BIND:9090/api/v1/targets" "${1:-}" <<'EOF'
import json, sys, urllib.request
t = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))["data"]["activeTargets"]
t = [x for x in t if not sys.argv[2] or x["labels"]["job"] == sys.argv[2]]
print(sum(x["health"] == "up" for x in t), len(t))
EOF
}
# `await_healthy CONTAINER... TIMEOUT`: every one healthy (its compose health check passes).
await_healthy() {
  local timeout="${*: -1}" containers=("${@:1:$#-1}") until=$((SECONDS + ${*: -1}))
  local pending=("${containers[@]}")
  while ((${#pending[@]})); do
    local still=()
    for c in "${pending[@]}"; do
      if [[ "$(podman inspect --format '{{.State.Status}}' "$c")" == exited &&
            "$(podman inspect --format '{{.State.Restarting}}' "$c")" != true ]]; then
        sleep 2  # a restart may be on its way
        [[ "$(podman inspect --format '{{.State.Status}}' "$c")" != exited ]] ||
          fail "$c exited ($(podman inspect --format '{{.State.ExitCode}}' "$c")) instead of becoming healthy"
      fi
      podman healthcheck run "$c" > /dev/null 2>&1 || still+=("$c")
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    ((SECONDS < until)) || fail "not healthy within ${timeout} s: ${pending[*]}"
    sleep 3
  done
}
# `await_exit CONTAINER TIMEOUT`: it exits 0.
await_exit() {
  local rc
  rc="$(timeout "$2" podman wait "$1" 2>> "$WORK/podman.log")" || fail "$1 did not finish within $2 s"
  [[ "$rc" == 0 ]] || { podman logs --tail 20 "$1"; fail "$1 exited $rc"; }
}
read -r group_size verifier_epochs < <("$DSM" config show "$SRC/$DSM_CONFIG" | "$PY" -c \
  'import sys, yaml; c = yaml.safe_load(sys.stdin)["coordinator"]; print(c["group_size"], c["verifier_epochs"])')

# ---------------------------------------------------------------- the stack
log "creating the stack (${SERVICES[*]} init start) with podman-compose"
compose up --no-start --no-build init "${SERVICES[@]}" start || { tail -20 "$WORK/compose.log"; fail "podman-compose up"; }
for s in init "${SERVICES[@]}" start; do podman container exists "$(cname "$s")" || fail "podman-compose created no $s container"; done

log "init: phase 0 ($DSM_WARMUP_STEPS warm-up steps) and the data"
podman start "$(cname init)" > /dev/null 2>> "$WORK/podman.log"
await_exit "$(cname init)" 900
podman logs "$(cname init)" 2>&1 | grep -E "^(model|phase 0|data):" | sed 's/^/    /'

log "services: ${SERVICES[*]}"
for s in "${SERVICES[@]}"; do podman start "$(cname "$s")" > /dev/null 2>> "$WORK/podman.log"; done
mapfile -t service_containers < <(for s in "${SERVICES[@]}"; do cname "$s"; done)
await_healthy "${service_containers[@]}" 300
log "every service healthy"

log "start: data imported, run started"
podman start "$(cname start)" > /dev/null 2>> "$WORK/podman.log"
await_exit "$(cname start)" 300
podman logs "$(cname start)" 2>&1 | sed 's/^/    /'

# ---------------------------------------------------------------- a worker killed mid-phase 1
worker="$(cname worker)"
until=$((SECONDS + 900))
while true; do
  read -r run_state phase ndone total error <<< "$(state progress)"
  [[ "$run_state" == 4 || "$run_state" == 5 ]] && fail "the run ended $run_state before phase 1 got going: $error"
  if [[ "$phase" == 2 ]] && ((total > 0 && ndone >= 16 && ndone + 32 < total)); then break; fi
  ((SECONDS < until)) || fail "phase 1 did not get going within 900 s (state $run_state phase $phase $ndone/$total)"
  sleep 0.5
done
log "phase 1 at $ndone/$total: the worker's process killed (SIGKILL)"
kill -KILL "$(podman inspect --format '{{.State.Pid}}' "$worker")"
until=$((SECONDS + 60))
while (($(podman inspect --format '{{.RestartCount}}' "$worker") < 1)); do
  ((SECONDS < until)) || fail "compose did not restart the killed worker within 60 s"
  sleep 0.5
done
await_healthy "$worker" 300
log "worker restarted by its restart policy and healthy again"

until=$((SECONDS + 1800))
while true; do
  read -r run_state phase ndone total error <<< "$(state progress)"
  [[ "$run_state" == 4 || "$run_state" == 5 ]] && fail "the run ended (state $run_state) in phase $phase: $error"
  if [[ "$run_state" == 3 ]] || ((phase > 2)); then break; fi
  ((SECONDS < until)) || fail "phase 1 did not finish within 1800 s ($ndone/$total)"
  sleep 2
done
log "phase 1 finished (the run is in phase $phase now)"
state phase1 "$group_size" "$verifier_epochs" | sed 's/^/    /' || fail "phase 1 lost or doubled work (above)"

# The learner counted exactly the groups the coordinator recorded as
# acknowledged, none as a duplicate.
state learner "http://$(ip_of "$(cname learner)"):9102/metrics" | sed 's/^/    /' ||
  fail "the learner's counters disagree with state.db (above)"

# ---------------------------------------------------------------- Prometheus
until=$((SECONDS + 120))
while true; do
  read -r up all <<< "$(targets 2>/dev/null || echo "0 0")"
  # coordinator, learner, one worker, Prometheus itself
  if ((all >= 4 && up == all)); then break; fi
  ((SECONDS < until)) || fail "Prometheus: $up of $all targets up after 120 s"
  sleep 3
done
log "prometheus: all $all targets up"

# ---------------------------------------------------------------- scale the worker to 2 and back
cat > "$WORK/scale-2.yml" <<'EOF'
services:
  worker:
    deploy:
      replicas: 2
EOF
log "worker scaled to 2"
compose -f "$WORK/scale-2.yml" up --no-start --no-build worker || true  # the existing ones are reported as there
worker2="$(cname worker 2)"
podman container exists "$worker2" || fail "podman-compose created no second worker"
podman start "$worker2" > /dev/null 2>> "$WORK/podman.log"
await_healthy "$worker2" 300
# `await_workers N`: the coordinator has N workers connected and Prometheus scrapes N, all up.
await_workers() {
  local until=$((SECONDS + 120)) connected up all
  while true; do
    connected="$(metric "$(cname coordinator)" 9101 dsm_coordinator_workers_connected)"
    read -r up all <<< "$(targets dsm-worker 2>/dev/null || echo "0 0")"
    if ((connected == $1 && up == $1 && all == $1)); then return 0; fi
    ((SECONDS < until)) || fail "$1 worker(s): the coordinator sees $connected, Prometheus scrapes $up of $all"
    sleep 3
  done
}
await_workers 2
log "2 workers: both connected to the coordinator and scraped by Prometheus"
podman stop -t 45 "$worker2" > /dev/null
podman rm "$worker2" > /dev/null
await_workers 1
read -r run_state phase ndone total error <<< "$(state progress)"
[[ "$run_state" == 2 || "$run_state" == 3 ]] || fail "the run is in state $run_state: $error"
log "worker scaled back to 1; the run carries on (phase $phase, $ndone/$total)"
