#!/usr/bin/env bash
# End-to-end check of the NovaCron operator on a real cluster (kind, k3d or any other):
#
#   deploy/e2e.sh [--create kind|k3d] [--cluster NAME] [--mode local|image] [--image IMAGE]
#                 [--no-build] [--namespace NS] [--timeout SECONDS] [--replay] [--keep] [--dry-run]
#
# 1. with --create, creates a kind or k3d cluster named NAME (default novacron-e2e) unless one
#    exists, and uses it; otherwise uses the cluster of the current kubeconfig context;
# 2. applies the CRDs (deploy/crds/) and creates the namespace NS (default novacron-e2e);
# 3. runs the operator:
#    --mode local (default): builds it with cargo and runs it on this machine against the
#      kubeconfig, with leader election on a Lease in NS and a decision log;
#    --mode image: builds the image (docker build, unless --no-build), loads it into the kind or
#      k3d cluster, and installs the operator into NS with deploy/deploy.sh --image IMAGE --in-memory
#      (default novacron/operator:e2e; on another cluster the image must be pullable);
# 4. applies the seed MultiCloudVM (deploy/examples/seed-multicloudvm.yaml) and a MultiCloudVM
#    with a bad primary region; waits for the seed's Ready=True and the bad one's SpecValid=False;
# 5. checks the seed's status (finalizer, an instance at aws-us-east-1, primary provider aws, an
#    hourly cost, SpecValid=True), the bad one's message, that the operator holds the Lease, and
#    its /metrics (reconciles, leader, provider calls);
# 6. deletes the seed and checks that its finalizer let it go only after the operator deleted its
#    cloud instances (the operator's log and novacron_provider_calls_total{op="delete"});
# 7. with --replay (local mode), replays the operator's decision log with `sim replay`;
# 8. cleans up: the operator, NS (and, in image mode, the operator's ClusterRole and binding);
#    a cluster made by --create is deleted unless --keep.
#
# --dry-run contacts no cluster, builds nothing and changes nothing: it prints the commands it
# would run, in order. The operator only has its in-memory cloud today: no real VM is created.
# Exit status: 0 when every check passes, 1 on a failed check, 2 on bad arguments or a missing tool.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
create=""
cluster="novacron-e2e"
mode="local"
image="novacron/operator:e2e"
build=true
namespace="novacron-e2e"
timeout=180
replay=false
keep=false
dry_run=false
port=18080
finalizer="novacron.io/instances"

usage() {
  sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

bad_usage() {
  echo "e2e.sh: $*" >&2
  exit 2
}

say() {
  echo "==> $*" >&2
}

fail() {
  echo "e2e.sh: FAILED: $*" >&2
  exit 1
}

pass() {
  echo "    ok: $*" >&2
}

# Runs a command, or prints it with --dry-run.
run() {
  if $dry_run; then
    printf '+' >&2
    printf ' %q' "$@" >&2
    printf '\n' >&2
  else
    "$@"
  fi
}

value() {
  [ $# -ge 2 ] || bad_usage "$1 needs a value"
  printf '%s' "$2"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --create) create="$(value "$@")"; shift 2 ;;
    --create=*) create="${1#*=}"; shift ;;
    --cluster) cluster="$(value "$@")"; shift 2 ;;
    --cluster=*) cluster="${1#*=}"; shift ;;
    --mode) mode="$(value "$@")"; shift 2 ;;
    --mode=*) mode="${1#*=}"; shift ;;
    --image) image="$(value "$@")"; shift 2 ;;
    --image=*) image="${1#*=}"; shift ;;
    --namespace | -n) namespace="$(value "$@")"; shift 2 ;;
    --namespace=*) namespace="${1#*=}"; shift ;;
    --timeout) timeout="$(value "$@")"; shift 2 ;;
    --timeout=*) timeout="${1#*=}"; shift ;;
    --no-build) build=false; shift ;;
    --replay) replay=true; shift ;;
    --keep) keep=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) bad_usage "unknown argument '$1' (try --help)" ;;
  esac
done

case "$create" in
  "" | kind | k3d) ;;
  *) bad_usage "--create '$create': use kind or k3d" ;;
esac
case "$mode" in
  local | image) ;;
  *) bad_usage "--mode '$mode': use local or image" ;;
esac
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] \
  || bad_usage "--namespace '$namespace' is not a valid namespace name"
[[ "$cluster" =~ ^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$ ]] \
  || bad_usage "--cluster '$cluster' must be lower-case letters, digits and '-' (at most 32)"
[[ "$image" =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || bad_usage "--image '$image' is not an image reference"
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || bad_usage "--timeout '$timeout' must be a number of seconds"
if $replay && [ "$mode" != local ]; then
  bad_usage "--replay needs --mode local (the decision log is written on this machine)"
fi

need() {
  $dry_run && return 0
  command -v "$1" >/dev/null 2>&1 || bad_usage "$1 is not on PATH ($2)"
}

need kubectl "https://kubernetes.io/docs/tasks/tools/"
need curl "apt-get install curl"
[ -z "$create" ] || need "$create" "https://kind.sigs.k8s.io or https://k3d.io"
if [ "$mode" = local ]; then
  need cargo "https://rustup.rs"
elif $build; then
  need docker "https://docs.docker.com/engine/install/"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/novacron-e2e.XXXXXX")"
operator_pid=""
forward_pid=""
created_cluster=false
installed=false
finished=false

cleanup() {
  local status=$?
  trap - EXIT
  if ! $dry_run; then
    if ! $finished; then
      say "cleaning up after a failure (operator log: $work/operator.log)"
      # Let the operator release the finalizers while it still runs.
      kubectl -n "$namespace" delete multicloudvms --all --timeout=60s >/dev/null 2>&1 || true
    fi
    [ -z "$forward_pid" ] || kill "$forward_pid" 2>/dev/null || true
    if [ -n "$operator_pid" ]; then
      kill "$operator_pid" 2>/dev/null || true
      wait "$operator_pid" 2>/dev/null || true
    fi
    # A MultiCloudVM whose finalizer nobody can release any more would hold the namespace.
    for o in $(kubectl -n "$namespace" get multicloudvms -o name 2>/dev/null); do
      say "removing the finalizer of $o (no operator left to delete its instances)"
      kubectl -n "$namespace" patch "$o" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
    kubectl delete namespace "$namespace" --ignore-not-found --timeout=120s >/dev/null 2>&1 || true
    if $installed; then
      kubectl delete -f "$here/rbac/clusterrole.yaml" -f "$here/rbac/clusterrolebinding.yaml" \
        --ignore-not-found >/dev/null 2>&1 || true
    fi
    if $created_cluster && ! $keep; then
      say "deleting the $create cluster $cluster"
      case "$create" in
        kind) kind delete cluster --name "$cluster" >/dev/null 2>&1 || true ;;
        k3d) k3d cluster delete "$cluster" >/dev/null 2>&1 || true ;;
      esac
    fi
  fi
  if [ $status -eq 0 ]; then
    rm -rf "$work"
  else
    echo "e2e.sh: logs kept in $work" >&2
  fi
  exit $status
}
trap cleanup EXIT

# kubectl get ... -o jsonpath=...: prints the value (nothing with --dry-run).
field() {
  if $dry_run; then
    run kubectl -n "$namespace" get "$1" -o "jsonpath=$2"
  else
    kubectl -n "$namespace" get "$1" -o "jsonpath=$2"
  fi
}

# Checks that "$2" (what was found) equals "$3" (what is wanted), naming it "$1".
expect() {
  $dry_run && return 0
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  pass "$1 = $3"
}

# The operator's /metrics.
metrics() {
  if $dry_run; then
    run curl -fsS "http://127.0.0.1:${port}/metrics"
  else
    curl -fsS "http://127.0.0.1:${port}/metrics"
  fi
}

# The value of one sample (exact name and labels) in /metrics, 0 if absent.
sample() {
  printf '%s\n' "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

# The operator's log so far.
operator_log() {
  if [ "$mode" = local ]; then
    cat "$work/operator.log"
  else
    kubectl -n "$namespace" logs "pod/$leader" 2>/dev/null || true
  fi
}

# --- 1. the cluster ---------------------------------------------------------------------------
! $dry_run || say "dry run: no cluster is contacted, nothing is built or changed; the commands follow"
if [ -n "$create" ]; then
  exists=false
  if ! $dry_run; then
    case "$create" in
      kind) kind get clusters 2>/dev/null | grep -qx "$cluster" && exists=true ;;
      k3d) k3d cluster list "$cluster" >/dev/null 2>&1 && exists=true ;;
    esac
  fi
  if $exists; then
    say "using the existing $create cluster $cluster"
  else
    say "creating a $create cluster $cluster"
    case "$create" in
      kind) run kind create cluster --name "$cluster" --wait 120s >&2 ;;
      k3d) run k3d cluster create "$cluster" --wait >&2 ;;
    esac
    created_cluster=true
  fi
  case "$create" in
    kind) run kubectl config use-context "kind-$cluster" >&2 ;;
    k3d) run kubectl config use-context "k3d-$cluster" >&2 ;;
  esac
fi
if ! $dry_run; then
  kubectl version >/dev/null 2>&1 \
    || fail "cannot reach the cluster of context $(kubectl config current-context 2>/dev/null || echo none)"
  say "cluster: context $(kubectl config current-context)"
fi

# --- 2. CRDs and namespace --------------------------------------------------------------------
say "CRDs (deploy/crds/) and namespace $namespace"
run kubectl apply --server-side --field-manager=novacron-e2e -f "$here/crds/" >&2
run kubectl wait --for=condition=Established --timeout=60s -f "$here/crds/" >&2
if $dry_run || ! kubectl get namespace "$namespace" >/dev/null 2>&1; then
  run kubectl create namespace "$namespace" >&2
fi

# --- 3. the operator --------------------------------------------------------------------------
leader=""
identity="e2e-$(hostname 2>/dev/null || echo local)-$$"
if [ "$mode" = local ]; then
  say "building and starting the operator on this machine (log: $work/operator.log)"
  run cargo build --manifest-path "$repo/Cargo.toml" -p operator --bin operator >&2
  target="${CARGO_TARGET_DIR:-$repo/target}"
  if $dry_run; then
    run "$target/debug/operator" run --listen "127.0.0.1:${port}" --lease-namespace "$namespace" \
      --leader-identity "$identity" --decision-log "$work/decisions.jsonl"
  else
    "$target/debug/operator" run --listen "127.0.0.1:${port}" --lease-namespace "$namespace" \
      --leader-identity "$identity" --decision-log "$work/decisions.jsonl" >"$work/operator.log" 2>&1 &
    operator_pid=$!
    for _ in $(seq 1 60); do
      curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1 && break
      kill -0 "$operator_pid" 2>/dev/null || fail "the operator exited: $(tail -n 20 "$work/operator.log")"
      sleep 1
    done
    curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1 || fail "/readyz never answered 200"
  fi
  leader="$identity"
else
  if $build; then
    say "building the image $image"
    run docker build -t "$image" "$repo" >&2
  fi
  case "$create" in
    kind) run kind load docker-image "$image" --name "$cluster" >&2 ;;
    k3d) run k3d image import "$image" --cluster "$cluster" >&2 ;;
    *) say "not a cluster made by --create: $image must be pullable by its nodes" ;;
  esac
  say "installing the operator into $namespace with deploy/deploy.sh"
  installed=true
  run "$here/deploy.sh" --namespace "$namespace" --image "$image" --in-memory >&2
fi

# The Lease: held by this run's operator (local) or by one of the operator's pods (image).
say "leader election"
holder=""
if $dry_run; then
  field lease/novacron-operator '{.spec.holderIdentity}'
else
  for _ in $(seq 1 30); do
    holder="$(kubectl -n "$namespace" get lease/novacron-operator -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true)"
    [ -n "$holder" ] && break
    sleep 1
  done
fi
if [ "$mode" = local ]; then
  expect "lease holder" "$holder" "$identity"
else
  $dry_run || [ -n "$holder" ] || fail "nobody holds the lease novacron-operator in $namespace"
  leader="$holder"
  $dry_run || pass "lease holder = $leader (a pod of the Deployment)"
  if ! $dry_run; then
    kubectl -n "$namespace" port-forward "pod/$leader" "${port}:8080" >"$work/port-forward.log" 2>&1 &
    forward_pid=$!
    for _ in $(seq 1 30); do
      curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && break
      sleep 1
    done
  else
    run kubectl -n "$namespace" port-forward "pod/<leader>" "${port}:8080"
  fi
fi

# --- 4. the seed MultiCloudVM and a bad one ---------------------------------------------------
say "applying the seed MultiCloudVM (web) and one with a bad primary region (bad)"
run kubectl -n "$namespace" apply -f "$here/examples/seed-multicloudvm.yaml" >&2
bad="$work/bad.yaml"
sed -e 's/^  name: web$/  name: bad/' -e 's/primary: "aws-us-east"/primary: "aws-us-wst"/' \
  "$here/examples/seed-multicloudvm.yaml" >"$bad"
run kubectl -n "$namespace" apply -f "$bad" >&2
# The first reconcile adds the finalizer and creates the instance; Ready once the next one sees it
# run (the engine evaluates the deployment every 30 s).
run kubectl -n "$namespace" wait --for=condition=Ready "multicloudvm/web" "--timeout=${timeout}s" >&2
run kubectl -n "$namespace" wait --for=condition=SpecValid=False "multicloudvm/bad" "--timeout=${timeout}s" >&2

# --- 5. status, Lease, metrics ----------------------------------------------------------------
say "checking the status"
expect "web finalizer" "$(field multicloudvm/web '{.metadata.finalizers[0]}')" "$finalizer"
expect "web SpecValid" "$(field multicloudvm/web '{.status.conditions[?(@.type=="SpecValid")].status}')" "True"
expect "web primary provider" "$(field multicloudvm/web '{.status.primaryProvider}')" "aws"
expect "web active region" "$(field multicloudvm/web '{.status.activeRegion}')" "aws-us-east-1"
expect "web instance region" "$(field multicloudvm/web '{.status.cloudDeployments[0].region}')" "aws-us-east-1"
expect "web instance state" "$(field multicloudvm/web '{.status.cloudDeployments[0].state}')" "Running"
expect "web replicas serving" "$(field multicloudvm/web '{.status.health.serving}')" "1"
cost="$(field multicloudvm/web '{.status.totalCost.hourlyCost}')"
if ! $dry_run; then
  awk -v c="$cost" 'BEGIN { exit !(c > 0) }' || fail "web hourly cost: got '$cost', want more than 0"
  pass "web hourly cost = \$$cost/h"
fi
message="$(field multicloudvm/bad '{.status.conditions[?(@.type=="SpecValid")].message}')"
if ! $dry_run; then
  case "$message" in
    *'spec.deploymentStrategy.primary: no region named "aws-us-wst"'*) pass "bad SpecValid message names the field" ;;
    *) fail "bad SpecValid message: got '$message'" ;;
  esac
  [ -z "$(field multicloudvm/bad '{.status.cloudDeployments[*].instanceId}')" ] || fail "bad has instances"
  pass "bad has no instance"
fi

say "checking /metrics"
text="$(metrics)"
if ! $dry_run; then
  expect "novacron_leader" "$(sample "$text" novacron_leader)" "1"
  reconciles="$(sample "$text" 'novacron_reconciles_total{controller="multicloudvm"}')"
  [ "${reconciles%.*}" -ge 2 ] || fail "novacron_reconciles_total: got $reconciles, want at least 2"
  pass "novacron_reconciles_total = $reconciles"
  creates="$(sample "$text" 'novacron_provider_calls_total{op="create",result="ok"}')"
  [ "${creates%.*}" -ge 1 ] || fail "no successful create call in /metrics"
  pass "create calls = $creates"
fi

# --- 6. deletion through the finalizer --------------------------------------------------------
say "deleting web: its finalizer goes only after its cloud instances are deleted"
deletes_before="$(sample "$text" 'novacron_provider_calls_total{op="delete",result="ok"}')"
run kubectl -n "$namespace" delete multicloudvm/web "--timeout=${timeout}s" >&2
if ! $dry_run; then
  kubectl -n "$namespace" get multicloudvm/web >/dev/null 2>&1 && fail "web still exists"
  pass "web is gone"
  operator_log | grep -Eq "${namespace}/web: [1-9][0-9]* cloud instance\(s\) deleted, releasing the finalizer" \
    || fail "the operator's log does not say it deleted web's instances before releasing the finalizer"
  pass "the operator deleted web's instances, then released the finalizer"
  deletes="$(sample "$(metrics)" 'novacron_provider_calls_total{op="delete",result="ok"}')"
  [ "${deletes%.*}" -gt "${deletes_before%.*}" ] || fail "no delete call in /metrics ($deletes_before, then $deletes)"
  pass "delete calls: $deletes_before, then $deletes"
fi
run kubectl -n "$namespace" delete multicloudvm/bad "--timeout=${timeout}s" >&2

# --- 7. replay --------------------------------------------------------------------------------
if $replay; then
  say "replaying the operator's decision log with sim replay"
  run cargo run --manifest-path "$repo/Cargo.toml" -q -p sim -- replay "$work/decisions.jsonl" >&2
fi

finished=true
if $dry_run; then
  say "dry run done: then the operator, namespace $namespace$(if [ -n "$create" ] && ! $keep; then echo " and the $create cluster $cluster"; fi) would be deleted"
else
  say "all checks passed"
fi
