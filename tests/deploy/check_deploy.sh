#!/usr/bin/env bash
# Checks of the deployment files (Dockerfile, docker-compose.yml, deploy/).
#   tests/deploy/check_deploy.sh SOURCE_DIR DSM_BINARY CHECK
# CHECK: configs | compose | prometheus | grafana | kustomize.
# Exit 0 pass, 1 fail (with what failed), 77 skipped (a tool is missing; the
# reason is printed).
set -euo pipefail
export LC_ALL=C
SRC="$1"
DSM="$2"
CHECK="$3"
cd "$SRC"
PY=/usr/bin/python3
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIPPED: $*"; exit 77; }
need_yaml() { "$PY" -c 'import yaml' 2>/dev/null || skip "$PY has no yaml module: install Debian's python3-yaml"; }

# `dsm config show FILE` flattened to "a.b.c: value" lines.
flat_config() {
  "$DSM" config show "$1" > "$WORK/show.yaml" || fail "dsm config show $1"
  "$PY" - "$WORK/show.yaml" <<'EOF'
import sys, yaml
def walk(prefix, v):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(f"{prefix}.{k}" if prefix else str(k), x)
    else:
        print(f"{prefix}: {v!r}")
walk("", yaml.safe_load(open(sys.argv[1])))
EOF
}

# Two configs must agree on every key except the allowed ones.
same_config_except() {
  local a="$1" b="$2"; shift 2
  flat_config "$a" > "$WORK/a.txt"
  flat_config "$b" > "$WORK/b.txt"
  local allowed
  allowed="$(printf '%s\n' "$@")"
  local differing
  differing="$({ diff <(sort "$WORK/a.txt") <(sort "$WORK/b.txt") || true; } | sed -n 's/^[<>] \([^:]*\):.*/\1/p' | sort -u)"
  local bad
  bad="$(comm -23 <(echo "$differing" | sed '/^$/d') <(echo "$allowed" | sort -u))"
  [[ -z "$bad" ]] || fail "$b differs from $a in keys other than {$*}: $(echo $bad)"
  echo "ok: $b = $a except {$*}"
}

case "$CHECK" in
  configs)
    # Every YAML config dsm ships passes `dsm config check`.
    shopt -s nullglob
    files=(configs/*.yaml deploy/compose/tiny.yaml deploy/k8s/base/dsm.yaml deploy/k8s/overlays/cpu/dsm.yaml)
    ((${#files[@]} >= 5)) || fail "expected at least 5 configs, found ${files[*]}"
    for f in "${files[@]}"; do
      out="$("$DSM" config check "$f" 2>&1)" || fail "dsm config check $f: $out"
      echo "ok: dsm config check $f"
    done
    # A broken copy is refused (the check itself can fail).
    sed 's/^  threads: 4 .*$/  threads: 0/' configs/t4-qwen2.5-math-1.5b.yaml > "$WORK/bad.yaml"
    if out="$("$DSM" config check "$WORK/bad.yaml" 2>&1)"; then fail "a config with runtime.threads 0 passed"; fi
    [[ "$out" == *"runtime.threads: 0 is out of range"* ]] || fail "unexpected error for runtime.threads 0: $out"
    need_yaml
    # The container copies of a config only differ where containers need it.
    same_config_except configs/tiny.yaml deploy/compose/tiny.yaml \
      server.host server.allow_insecure model.path run.runs_dir learner.checkpoint_dir
    # Kubernetes: the learner's bulk endpoint on a fixed port its Service exposes.
    same_config_except deploy/compose/tiny.yaml deploy/k8s/overlays/cpu/dsm.yaml learner.bulk_port
    same_config_except configs/t4-qwen2.5-math-1.5b.yaml deploy/k8s/base/dsm.yaml learner.bulk_port
    # The T4 config is what the issue asks: fp16, LoRA, a model folder under /models.
    flat_config configs/t4-qwen2.5-math-1.5b.yaml > "$WORK/t4.txt"
    grep -qx "model.dtype: 'float16'" "$WORK/t4.txt" || fail "t4 config: model.dtype is not float16"
    grep -qx "model.path: '/models/qwen2.5-math-1.5b'" "$WORK/t4.txt" || fail "t4 config: model.path"
    grep -qx "server.host: '0.0.0.0'" "$WORK/t4.txt" || fail "t4 config: server.host"
    ;;

  compose)
    command -v docker-compose >/dev/null || skip "docker-compose not installed (Debian package docker-compose)"
    need_yaml
    docker-compose -f docker-compose.yml config > "$WORK/gpu.yaml" 2> "$WORK/err.txt" ||
      fail "docker-compose config: $(cat "$WORK/err.txt")"
    docker-compose -f docker-compose.yml --env-file deploy/compose/cpu.env config > "$WORK/cpu.yaml" 2> "$WORK/err.txt" ||
      fail "docker-compose --env-file deploy/compose/cpu.env config: $(cat "$WORK/err.txt")"
    echo "ok: docker-compose config (GPU and CPU variants)"
    "$PY" - "$WORK/gpu.yaml" "$WORK/cpu.yaml" configs/t4-qwen2.5-math-1.5b.yaml deploy/compose/tiny.yaml <<'EOF'
import sys, yaml
gpu, cpu = (yaml.safe_load(open(p))["services"] for p in sys.argv[1:3])
t4, tiny = (yaml.safe_load(open(p)) for p in sys.argv[3:5])
errors = []
dsm = {"coordinator": "coordinator", "learner": "learner", "worker": "worker",
       "verifier": "verifier", "meta-verifier": "meta_verifier"}
model_services = {"learner", "worker", "verifier", "meta-verifier"}
def gpus(svc):
    devs = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    return [d for d in devs if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]
for name in list(dsm) + ["prometheus", "grafana"]:
    for variant, services in (("gpu", gpu), ("cpu", cpu)):
        if name not in services:
            errors.append(f"{variant}: no service {name}")
for variant, services, config, cfg_path in (("gpu", gpu, t4, "configs/t4-qwen2.5-math-1.5b.yaml"),
                                           ("cpu", cpu, tiny, "deploy/compose/tiny.yaml")):
    for name, key in dsm.items():
        svc = services.get(name, {})
        if svc.get("restart") != "unless-stopped":
            errors.append(f"{variant}: {name}: restart is {svc.get('restart')!r}, not unless-stopped")
        if name in model_services and variant == "gpu" and len(gpus(svc)) != 1:
            errors.append(f"gpu: {name}: no nvidia GPU reservation")
        if (name not in model_services or variant == "cpu") and gpus(svc):
            errors.append(f"{variant}: {name}: reserves a GPU")
        cmd = svc.get("command", [])
        if cmd[:1] != ["serve"] or "--config" not in cmd or cmd[cmd.index("--config") + 1] != cfg_path:
            errors.append(f"{variant}: {name}: command {cmd} does not serve {cfg_path}")
        port = config["services"][key]["port"]
        test = (svc.get("healthcheck") or {}).get("test", [])
        if test[:3] != ["CMD", "dsm", "health"] or test[3] != f"127.0.0.1:{port}":
            errors.append(f"{variant}: {name}: healthcheck {test} does not ask 127.0.0.1:{port}")
        if name in ("worker", "verifier", "meta-verifier") and svc.get("ports"):
            errors.append(f"{variant}: {name}: fixed host ports {svc['ports']} break --scale")
    worker = services.get("worker", {})
    if "learner:%d" % config["services"]["learner"]["port"] not in worker.get("command", []):
        errors.append(f"{variant}: worker: --learner is not learner:{config['services']['learner']['port']}")
    if "coordinator:%d" % config["services"]["coordinator"]["port"] not in worker.get("command", []):
        errors.append(f"{variant}: worker: --coordinator is not coordinator:{config['services']['coordinator']['port']}")
    mounts = {name: [v if isinstance(v, str) else "%s:%s" % (v.get("source"), v.get("target"))
                     for v in services.get(name, {}).get("volumes", [])] for name in dsm}
    def mounted(name, target):
        return any(m.split(":")[1] == target for m in mounts[name])
    if not mounted("coordinator", config["run"]["runs_dir"]):
        errors.append(f"{variant}: coordinator: no volume at run.runs_dir {config['run']['runs_dir']}")
    if not mounted("learner", config["learner"]["checkpoint_dir"]):
        errors.append(f"{variant}: learner: no volume at learner.checkpoint_dir")
    for name in model_services:
        if not mounted(name, "/models") or not config["model"]["path"].startswith("/models/"):
            errors.append(f"{variant}: {name}: the model folder {config['model']['path']} is not on the /models mount")
    # The run around the services: `init` (dsm prepare) before them, `start`
    # (dsm start) once they are healthy, the coordinator running the pipeline.
    ports = {k: config["services"][k]["port"] for k in ("coordinator", "learner", "verifier", "meta_verifier")}
    init, start = services.get("init", {}), services.get("start", {})
    def writable(svc, target):
        return any(isinstance(v, str) and v.split(":")[1] == target and not v.endswith(":ro")
                   for v in svc.get("volumes", []))
    if init.get("command") != ["prepare", cfg_path, "--data", "/data"]:
        errors.append(f"{variant}: init: command {init.get('command')} is not prepare {cfg_path} --data /data")
    if init.get("restart") not in (None, "no"):
        errors.append(f"{variant}: init: a one-shot service restarts ({init.get('restart')})")
    for target in ("/models", "/data", config["run"]["runs_dir"]):
        if not writable(init, target):
            errors.append(f"{variant}: init: {target} is not mounted writable")
    if start.get("command") != ["start", cfg_path, "--coordinator", f"coordinator:{ports['coordinator']}",
                                "--data", "/data"]:
        errors.append(f"{variant}: start: command {start.get('command')} does not start {cfg_path}")
    if start.get("restart") not in (None, "no"):
        errors.append(f"{variant}: start: a one-shot service restarts ({start.get('restart')})")
    want_deps = {"start": {"init": "service_completed_successfully", "coordinator": "service_healthy",
                           "learner": "service_healthy", "worker": "service_healthy"},
                 "learner": {"init": "service_completed_successfully"},
                 "worker": {"init": "service_completed_successfully"}}
    for name, deps in want_deps.items():
        got = services.get(name, {}).get("depends_on", {})
        for dep, condition in deps.items():
            if (got.get(dep) or {}).get("condition") != condition:
                errors.append(f"{variant}: {name}: does not wait for {dep} ({condition})")
    cmd = services.get("coordinator", {}).get("command", [])
    want = ["--pipeline", "--learner", f"learner:{ports['learner']}", "--verifier", f"worker:{ports['verifier']}",
            "--meta-verifier", f"worker:{ports['meta_verifier']}"]
    if cmd[4:] != want:
        errors.append(f"{variant}: coordinator: {cmd[4:]} is not {want}")
if "profiles" not in gpu.get("verifier", {}):
    errors.append("gpu: verifier: not behind a profile, yet the worker hosts it by default")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF
    echo "ok: services, GPU reservations, health checks, ports and volumes agree with the configs"
    ;;

  prometheus)
    command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus)"
    promtool check config deploy/prometheus/prometheus.yml || fail "promtool check config prometheus.yml"
    promtool check rules deploy/prometheus/alerts.yml || fail "promtool check rules alerts.yml"
    (cd deploy/prometheus && promtool test rules alerts_test.yml) || fail "promtool test rules alerts_test.yml"
    # Debian's Prometheus is built without Kubernetes discovery: check the
    # rest of the Kubernetes scrape config (relabelling) with a static target.
    need_yaml
    "$PY" - deploy/prometheus/prometheus-k8s.yml "$WORK/prometheus-k8s.yml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for job in c["scrape_configs"]:
    assert job.pop("kubernetes_sd_configs"), job["job_name"]
    job["static_configs"] = [{"targets": ["10.0.0.1:9103"]}]
yaml.safe_dump(c, open(sys.argv[2], "w"))
EOF
    cp deploy/prometheus/alerts.yml "$WORK/"
    promtool check config "$WORK/prometheus-k8s.yml" || fail "promtool check config prometheus-k8s.yml"
    # Scrape ports are the configs' metrics ports.
    "$PY" - deploy/prometheus/prometheus.yml configs/t4-qwen2.5-math-1.5b.yaml configs/tiny.yaml <<'EOF'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
jobs = {j["job_name"]: j for j in p["scrape_configs"]}
errors = []
for path in sys.argv[2:]:
    services = yaml.safe_load(open(path))["services"]
    for key, host in (("coordinator", "coordinator"), ("learner", "learner"), ("worker", "worker"),
                      ("verifier", "verifier"), ("meta_verifier", "meta-verifier")):
        job = jobs.get("dsm-" + host)
        if job is None:
            errors.append(f"no job dsm-{host}"); continue
        port = services[key]["metrics_port"]
        targets = [t for s in job.get("static_configs", []) for t in s["targets"]]
        dns = job.get("dns_sd_configs", [])
        if targets != [f"{host}:{port}"] and not (dns and dns[0]["names"] == [host] and dns[0]["port"] == port):
            errors.append(f"job dsm-{host} does not scrape {host}:{port} ({path})")
if jobs["dsm-worker"].get("dns_sd_configs", [{}])[0].get("type") != "A":
    errors.append("dsm-worker: not DNS A-record discovery (scaled workers)")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF
    echo "ok: prometheus.yml, prometheus-k8s.yml, alerts.yml and their unit tests"
    ;;

  grafana)
    need_yaml
    "$PY" - <<'EOF'
import glob, json, sys, yaml
errors = []
ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
uids = {d["uid"] for d in ds}
prov = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/dsm.yml"))["providers"][0]
if prov["options"]["path"] != "/etc/dashboards/dsm":
    errors.append("dashboards provider path is not /etc/dashboards/dsm (docker-compose.yml mounts it there)")
files = sorted(glob.glob("deploy/grafana/dashboards/*.json"))
if len(files) < 2:
    errors.append(f"expected the training and cluster dashboards, found {files}")
seen = set()
for f in files:
    d = json.load(open(f))
    if d["uid"] in seen: errors.append(f"{f}: duplicate uid {d['uid']}")
    seen.add(d["uid"])
    ids = set()
    for p in d["panels"]:
        if p["id"] in ids: errors.append(f"{f}: duplicate panel id {p['id']}")
        ids.add(p["id"])
        if p["type"] == "row": continue
        if not p.get("description"): errors.append(f"{f}: panel {p['title']!r} has no description")
        for t in p.get("targets", []):
            if t["datasource"]["uid"] not in uids:
                errors.append(f"{f}: panel {p['title']!r}: datasource {t['datasource']['uid']} is not provisioned")
            if not t.get("expr"): errors.append(f"{f}: panel {p['title']!r}: empty expr")
for e in errors: print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF
    echo "ok: grafana provisioning and dashboards"
    ;;

  kustomize)
    command -v kubectl >/dev/null || skip "kubectl not installed"
    need_yaml
    for k in deploy/k8s deploy/k8s/base deploy/k8s/overlays/gpu deploy/k8s/overlays/cpu; do
      kubectl kustomize "$k" > "$WORK/$(echo "$k" | tr / _).yaml" 2> "$WORK/err.txt" ||
        fail "kubectl kustomize $k: $(cat "$WORK/err.txt")"
      echo "ok: kubectl kustomize $k"
    done
    "$PY" - "$WORK" <<'EOF'
import sys, yaml
w = sys.argv[1]
load = lambda k: [d for d in yaml.safe_load_all(open(f"{w}/{k}.yaml")) if d]
errors = []
metrics = {"coordinator": 9101, "learner": 9102, "worker": 9103, "verifier": 9104, "meta-verifier": 9105}
for k, want_gpu in (("deploy_k8s", True), ("deploy_k8s_base", False), ("deploy_k8s_overlays_gpu", True),
                    ("deploy_k8s_overlays_cpu", False)):
    docs = load(k)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for want in [("Namespace", "dsm"), ("StatefulSet", "coordinator"), ("StatefulSet", "learner"),
                 ("Deployment", "worker"), ("Deployment", "verifier"), ("Deployment", "meta-verifier"),
                 ("Service", "learner-ranks"), ("PersistentVolumeClaim", "dsm-models"),
                 ("NetworkPolicy", "dsm-ingress")]:
        if want not in kinds: errors.append(f"{k}: no {want[0]} {want[1]}")
    if not any(kd == "ConfigMap" and n.startswith("dsm-config-") for kd, n in kinds):
        errors.append(f"{k}: no generated ConfigMap dsm-config")
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] == "StatefulSet" and name == "coordinator" and not d["spec"].get("volumeClaimTemplates"):
            errors.append(f"{k}: coordinator has no persistent volume")
        if d["kind"] == "Service" and name == "learner-ranks" and d["spec"].get("clusterIP") != "None":
            errors.append(f"{k}: learner-ranks is not headless")
        if d["kind"] not in ("Deployment", "StatefulSet"): continue
        if d["metadata"].get("namespace") != "dsm": errors.append(f"{k}: {name} not in namespace dsm")
        pod = d["spec"]["template"]
        ann = pod["metadata"].get("annotations", {})
        c = pod["spec"]["containers"][0]
        port = {p["name"]: p["containerPort"] for p in c["ports"]}.get("metrics")
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port) \
                or port != metrics[name]:
            errors.append(f"{k}: {name}: prometheus.io annotations {ann} do not match metrics port {port}")
        gpu = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        holds_model = name != "coordinator"
        if want_gpu and holds_model and gpu != "1": errors.append(f"{k}: {name}: no nvidia.com/gpu limit")
        if (not want_gpu or not holds_model) and gpu: errors.append(f"{k}: {name}: has a GPU limit")
        if want_gpu and holds_model and pod["spec"].get("nodeSelector", {}).get("nvidia.com/gpu.present") != "true":
            errors.append(f"{k}: {name}: no GPU node selector")
        if not any(c.get(p, {}).get("exec", {}).get("command", [None])[0:2] == ["dsm", "health"]
                   for p in ("readinessProbe",)):
            errors.append(f"{k}: {name}: readiness probe is not `dsm health`")
        want_image = "dsm:cuda" if want_gpu else ("dsm:cpu" if k.endswith("cpu") else "dsm:latest")
        if c["image"] != want_image: errors.append(f"{k}: {name}: image {c['image']}, want {want_image}")
for e in errors: print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF
    echo "ok: workloads, GPU limits, scrape annotations, probes, volumes"
    ;;

  *)
    fail "unknown check $CHECK (configs | compose | prometheus | grafana | kustomize)"
    ;;
esac
