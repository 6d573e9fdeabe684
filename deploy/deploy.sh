#!/usr/bin/env bash
# Installs the NovaCron operator with kubectl, in one command:
#
#   deploy/deploy.sh (--providers FILE | --in-memory) [--namespace NS] [--image IMAGE] [--examples]
#                    [--monitoring] [--dry-run]
#
# 1. checks the prerequisites: kubectl, a reachable cluster, Kubernetes >= 1.25 (the CRDs carry
#    CEL validation rules);
# 2. applies the CRDs (deploy/crds/) and waits until they are established;
# 3. creates the namespace (default novacron-system, Pod Security "restricted"), the ConfigMap
#    novacron-providers with the operator's providers file, and the provider Secrets from the
#    environment or files:
#      novacron-aws    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN]
#      novacron-azure  AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID
#      novacron-gcp    key.json: the service-account key file named by GOOGLE_APPLICATION_CREDENTIALS
#    (a cloud whose variables are unset gets no Secret; a partial set is an error);
# 4. applies the RBAC (deploy/rbac/) and the operator (deploy/operator.yaml) and waits until the
#    operator is ready;
# 5. with --examples, applies deploy/examples/ into the namespace; with --monitoring, the
#    ServiceMonitor, the PrometheusRule and the Grafana dashboard (a ConfigMap labelled
#    grafana_dashboard=1) from deploy/monitoring/, which need the Prometheus Operator's CRDs;
# 6. prints what to do next.
#
# The clouds: --providers FILE is the operator's providers file (start from
# deploy/providers/example.yaml); its members may name only the Secrets above in credentialsSecret
# (the ones the Deployment mounts). --in-memory installs deploy/providers/in-memory.yaml instead:
# in-memory clouds, no real VM, to try the operator out. One of the two is required.
#
# --dry-run contacts no cluster and changes nothing: it prints every manifest it would apply, in
# order, on stdout (Secret values redacted); progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
namespace="novacron-system"
image=""
examples=false
monitoring=false
dry_run=false
min_minor=25
providers_file=""
in_memory=false
default_image="novacron/operator:0.1.0"

usage() {
  sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

say() {
  echo "==> $*" >&2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace | -n)
      [ $# -ge 2 ] || die "--namespace needs a value"
      namespace="$2"
      shift 2
      ;;
    --namespace=*)
      namespace="${1#*=}"
      shift
      ;;
    --image)
      [ $# -ge 2 ] || die "--image needs a value"
      image="$2"
      shift 2
      ;;
    --image=*)
      image="${1#*=}"
      shift
      ;;
    --providers)
      [ $# -ge 2 ] || die "--providers needs a file"
      providers_file="$2"
      shift 2
      ;;
    --providers=*)
      providers_file="${1#*=}"
      shift
      ;;
    --in-memory)
      in_memory=true
      shift
      ;;
    --examples)
      examples=true
      shift
      ;;
    --monitoring)
      monitoring=true
      shift
      ;;
    --dry-run)
      dry_run=true
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      die "unknown argument '$1' (try --help)"
      ;;
  esac
done

# A DNS label: also keeps the sed substitutions below safe.
if ! [[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]]; then
  die "--namespace '$namespace' is not a valid namespace name (lower-case letters, digits and '-', at most 63)"
fi
if [ -n "$image" ] && ! [[ "$image" =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]]; then
  die "--image '$image' is not an image reference"
fi

# The clouds: exactly one of --providers FILE and --in-memory.
if $in_memory && [ -n "$providers_file" ]; then
  die "give --providers FILE or --in-memory, not both"
fi
if $in_memory; then
  providers_file="${here}/providers/in-memory.yaml"
elif [ -z "$providers_file" ]; then
  die "name the clouds: --providers FILE (the operator's providers file; start from deploy/providers/example.yaml), or --in-memory to try the operator on in-memory clouds (no real VM is created)"
fi
[ -r "$providers_file" ] || die "--providers: cannot read ${providers_file}"
grep -q '^providers:' "$providers_file" || die "--providers ${providers_file}: not a providers file (no top-level 'providers:' list)"
# The Deployment mounts these three Secrets only: a member naming another would stop the operator.
mounted="novacron-aws novacron-azure novacron-gcp"
named="$(sed -n "s/^[[:space:]-]*credentialsSecret:[[:space:]]*[\"']\{0,1\}\([^\"'#[:space:]]*\).*/\1/p" "$providers_file" | sort -u)"
for s in $named; do
  case " $mounted " in
    *" $s "*) ;;
    *) die "--providers ${providers_file}: credentialsSecret ${s} is not one the Deployment mounts (${mounted}); rename it, or install with Helm, which mounts any Secret its values name" ;;
  esac
done
providers_sum="$(sha256sum "$providers_file" | cut -d' ' -f1)"

# The manifests name the namespace novacron-system and the image novacron/operator:0.1.0; the
# Deployment carries the providers file's checksum, so that a changed file restarts the pods.
render() {
  local out
  out="$(sed -e "s/novacron-system/${namespace}/g" \
    -e "s/novacron.io\/providers-checksum: \"none\"/novacron.io\/providers-checksum: \"${providers_sum}\"/" "$@")"
  if [ -n "$image" ]; then
    out="${out//image: ${default_image}/image: ${image}}"
  fi
  printf '%s\n' "$out"
}

# The ConfigMap novacron-providers with the providers file (key providers.yaml).
providers_configmap() {
  echo "---"
  echo "# Source: ${providers_file#"${here}/"}"
  echo "apiVersion: v1"
  echo "kind: ConfigMap"
  echo "metadata:"
  echo "  name: novacron-providers"
  echo "  namespace: ${namespace}"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: novacron"
  echo "data:"
  echo "  providers.yaml: |"
  sed 's/^/    /' "$providers_file"
}

# Prints a file list as one multi-document stream.
documents() {
  local f
  for f in "$@"; do
    echo "---"
    echo "# Source: ${f#"${here}/"}"
    render "$f"
  done
}

# Applies (or, with --dry-run, prints) a stream of manifests read from stdin.
apply() {
  if $dry_run; then
    cat
  else
    kubectl apply --server-side --field-manager=novacron-deploy --force-conflicts -f - >&2
  fi
}

# One Secret from the named variables; prints nothing when none is set.
secret_from_env() {
  local name="$1"
  shift
  local required=() optional=() v any=false missing=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
      shift
      optional=("$@")
      break
    fi
    required+=("$1")
    shift
  done
  for v in "${required[@]}" "${optional[@]}"; do
    if [ -n "${!v:-}" ]; then any=true; fi
  done
  $any || return 0
  for v in "${required[@]}"; do
    if [ -z "${!v:-}" ]; then missing+=("$v"); fi
  done
  [ ${#missing[@]} -eq 0 ] || die "Secret ${name}: set ${missing[*]} too (or unset the others)"
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: ${name}"
  echo "  namespace: ${namespace}"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: novacron"
  echo "type: Opaque"
  echo "data:"
  for v in "${required[@]}" "${optional[@]}"; do
    if [ -n "${!v:-}" ]; then
      if $dry_run; then
        echo "  ${v}: \"<redacted>\""
      else
        echo "  ${v}: $(printf '%s' "${!v}" | base64 | tr -d '\n')"
      fi
    fi
  done
}

secret_from_file() {
  local name="$1" key="$2" file="$3"
  [ -n "$file" ] || return 0
  [ -r "$file" ] || die "Secret ${name}: cannot read ${file}"
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: ${name}"
  echo "  namespace: ${namespace}"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: novacron"
  echo "type: Opaque"
  echo "data:"
  if $dry_run; then
    echo "  ${key}: \"<redacted: ${file}>\""
  else
    echo "  ${key}: $(base64 <"$file" | tr -d '\n')"
  fi
}

# --- 1. prerequisites -------------------------------------------------------------------------
if $dry_run; then
  say "dry run: no cluster is contacted, the manifests that would be applied follow"
  command -v kubectl >/dev/null 2>&1 || say "note: kubectl is not on PATH; a real run needs it"
else
  command -v kubectl >/dev/null 2>&1 || die "kubectl is not on PATH (https://kubernetes.io/docs/tasks/tools/)"
  version_json="$(kubectl version -o json 2>/dev/null)" || true
  server="$(printf '%s' "$version_json" | tr -d ' \n' \
    | sed -n 's/.*"serverVersion":{[^}]*"major":"\([0-9]*\)[^"]*","minor":"\([0-9]*\).*/\1 \2/p')"
  [ -n "$server" ] || die "cannot reach the cluster of the current kubeconfig context ($(kubectl config current-context 2>/dev/null || echo none)); check 'kubectl cluster-info'"
  read -r major minor <<<"$server"
  say "cluster: Kubernetes ${major}.${minor} (context $(kubectl config current-context 2>/dev/null || echo '?'))"
  if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt "$min_minor" ]; }; then
    die "Kubernetes ${major}.${minor} is too old: the CRDs' validation rules need 1.${min_minor} or later"
  fi
  if $monitoring && ! kubectl api-resources --api-group=monitoring.coreos.com -o name 2>/dev/null | grep -q '^servicemonitors'; then
    die "--monitoring needs the Prometheus Operator's CRDs (monitoring.coreos.com ServiceMonitor, PrometheusRule)"
  fi
fi

# Provider Secrets, built (and checked) before anything is applied.
secrets="$(
  secret_from_env novacron-aws AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY -- AWS_SESSION_TOKEN
  secret_from_env novacron-azure AZURE_TENANT_ID AZURE_CLIENT_ID AZURE_CLIENT_SECRET AZURE_SUBSCRIPTION_ID
  secret_from_file novacron-gcp key.json "${GOOGLE_APPLICATION_CREDENTIALS:-}"
)"

# --- 2. CRDs ----------------------------------------------------------------------------------
say "CRDs (deploy/crds/)"
documents "$here"/crds/*.yaml | apply
if ! $dry_run; then
  kubectl wait --for=condition=Established --timeout=60s -f "$here/crds/" >&2
fi

# --- 3. namespace and Secrets -----------------------------------------------------------------
say "namespace ${namespace}"
documents "$here/namespace.yaml" | apply

say "providers file ${providers_file#"${here}/"} (ConfigMap novacron-providers)"
providers_configmap | apply
created="$(printf '%s\n' "$secrets" | sed -n 's/^  name: //p' | tr '\n' ' ')"
if [ -n "$secrets" ]; then
  say "provider Secrets: ${created}"
  printf '%s\n' "$secrets" | apply
else
  say "no provider credentials in the environment: no Secret created"
fi
for s in $named; do
  case " $created " in
    *" $s "*) ;;
    *) say "note: the providers file names Secret ${s}, not created from this environment: it must exist in ${namespace}" ;;
  esac
done

# --- 4. RBAC and the operator -----------------------------------------------------------------
say "RBAC (deploy/rbac/) and the operator (deploy/operator.yaml)"
documents "$here"/rbac/*.yaml "$here/operator.yaml" | apply
if ! $dry_run; then
  kubectl -n "$namespace" rollout status deployment/novacron-operator --timeout=180s >&2
fi

# --- 5. examples and monitoring ---------------------------------------------------------------
if $examples; then
  say "examples (deploy/examples/) in ${namespace}"
  # The examples name no namespace: they go where -n says.
  if $dry_run; then
    documents "$here"/examples/*.yaml
  else
    documents "$here"/examples/*.yaml | kubectl -n "$namespace" apply -f - >&2
  fi
fi

if $monitoring; then
  say "monitoring (deploy/monitoring/): ServiceMonitor, PrometheusRule, Grafana dashboard"
  {
    documents "$here/monitoring/servicemonitor.yaml" "$here/monitoring/prometheusrule.yaml"
    echo "---"
    echo "# Source: monitoring/grafana-dashboard.json"
    echo "apiVersion: v1"
    echo "kind: ConfigMap"
    echo "metadata:"
    echo "  name: novacron-operator-dashboard"
    echo "  namespace: ${namespace}"
    echo "  labels:"
    echo "    app.kubernetes.io/part-of: novacron"
    echo "    grafana_dashboard: \"1\""
    echo "data:"
    echo "  novacron-operator.json: |"
    sed 's/^/    /' "$here/monitoring/grafana-dashboard.json"
  } | apply
fi

# --- 6. next steps ----------------------------------------------------------------------------
if $dry_run; then
  say "dry run done: nothing was applied"
  exit 0
fi
cat >&2 <<EOF

NovaCron operator is running in namespace ${namespace}.

  kubectl -n ${namespace} get pods,svc                    # the operator
  kubectl -n ${namespace} logs deploy/novacron-operator    # what it decides
  kubectl apply -n ${namespace} -f ${here}/examples/seed-multicloudvm.yaml
  kubectl get mcvm -A                                      # STRATEGY PRIMARY SERVING COST/H READY
  kubectl -n ${namespace} port-forward svc/novacron-operator 8080 & curl -s localhost:8080/metrics

$(if $in_memory; then echo "The operator runs on in-memory clouds (--in-memory): no real VM is created."; else echo "The operator creates VMs in the clouds of ${providers_file}."; fi)
Uninstall: delete the MultiCloudVMs first (their finalizer removes their cloud VMs), then
  kubectl delete -f ${here}/operator.yaml -f ${here}/rbac/ && kubectl delete -f ${here}/crds/
EOF
