//! `deploy/e2e.sh`, the end-to-end check for users with a real cluster. No cluster can be started
//! here, so this checks what can be checked without one: shellcheck is clean; `--dry-run` plans
//! the steps in order for each mode; bad arguments exit 2; and the real kubectl accepts every
//! kubectl command line of the plans (each fails on the refused connection, not on its flags).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/e2e.sh")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

fn e2e(args: &[&str]) -> Output {
    Command::new("bash").arg(script()).args(args).output().expect("bash runs")
}

/// The commands a dry run prints (`+ cmd`, each word quoted for bash as `printf %q` does).
fn raw_plan(args: &[&str]) -> Vec<String> {
    let out = e2e(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "e2e.sh {args:?}: {stderr}");
    stderr.lines().filter_map(|l| l.strip_prefix("+ ")).map(str::to_owned).collect()
}

/// The same, unquoted (`\{` is `{`), for reading.
fn plan(args: &[&str]) -> Vec<String> {
    let unquote = |c: &str| {
        let mut out = String::new();
        let mut chars = c.chars();
        while let Some(ch) = chars.next() {
            out.push(if ch == '\\' { chars.next().unwrap_or(ch) } else { ch });
        }
        out
    };
    raw_plan(args).iter().map(|c| unquote(c)).collect()
}

/// Index of the first planned command that starts with `prefix`.
fn step(plan: &[String], prefix: &str) -> usize {
    plan.iter().position(|c| c.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` in {plan:#?}"))
}

#[test]
fn e2e_script_is_shellcheck_clean() {
    let shellcheck = on_path("shellcheck").unwrap_or_else(|| {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "shellcheck"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "shellcheck is missing and apt-get could not install it");
        on_path("shellcheck").expect("shellcheck installed")
    });
    let out = Command::new(shellcheck).arg(script()).output().expect("shellcheck runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn e2e_dry_run_plans_a_local_operator_then_the_checks_in_order() {
    let p = plan(&["--dry-run"]);
    let order = [
        "kubectl apply --server-side --field-manager=novacron-e2e -f ",
        "kubectl wait --for=condition=Established",
        "kubectl create namespace novacron-e2e",
        "cargo build --manifest-path ",
        // The operator elects itself on a Lease in the test namespace and logs its decisions.
        "kubectl -n novacron-e2e get lease/novacron-operator -o jsonpath={.spec.holderIdentity}",
        "kubectl -n novacron-e2e apply -f ",
        "kubectl -n novacron-e2e wait --for=condition=Ready multicloudvm/web",
        "kubectl -n novacron-e2e wait --for=condition=SpecValid=False multicloudvm/bad",
        "kubectl -n novacron-e2e get multicloudvm/web -o jsonpath={.metadata.finalizers[0]}",
        "curl -fsS http://127.0.0.1:18080/metrics",
        "kubectl -n novacron-e2e delete multicloudvm/web",
        "kubectl -n novacron-e2e delete multicloudvm/bad",
    ];
    let at: Vec<usize> = order.iter().map(|s| step(&p, s)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order: {at:?} in {p:#?}");
    let run = &p[step(&p, "cargo build") + 1];
    assert!(
        run.contains(
            "/debug/operator run --listen 127.0.0.1:18080 --lease-namespace novacron-e2e --leader-identity e2e-"
        ),
        "{run}"
    );
    assert!(run.contains(" --decision-log "), "{run}");
    assert!(!p.iter().any(|c| c.starts_with("kind ") || c.starts_with("docker ")), "{p:#?}");
    // --replay adds sim replay of the decision log, last.
    let p = plan(&["--dry-run", "--replay"]);
    assert!(p.last().is_some_and(|c| c.contains("-p sim -- replay ") && c.ends_with("/decisions.jsonl")), "{p:#?}");
}

#[test]
fn e2e_dry_run_plans_a_kind_cluster_and_the_image() {
    let p = plan(&[
        "--dry-run",
        "--create",
        "kind",
        "--mode",
        "image",
        "--namespace",
        "ops",
        "--image",
        "reg.example/op:1",
    ]);
    let order = [
        "kind create cluster --name novacron-e2e",
        "kubectl config use-context kind-novacron-e2e",
        "kubectl apply --server-side",
        "kubectl create namespace ops",
        "docker build -t reg.example/op:1 ",
        "kind load docker-image reg.example/op:1 --name novacron-e2e",
        "deploy.sh --namespace ops --image reg.example/op:1",
        "kubectl -n ops get lease/novacron-operator",
        "kubectl -n ops port-forward pod/<leader> 18080:8080",
        "kubectl -n ops wait --for=condition=Ready multicloudvm/web",
        "kubectl -n ops delete multicloudvm/web",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|s| {
            p.iter()
                .position(|c| c.starts_with(s) || c.contains(&format!("/{s}")))
                .unwrap_or_else(|| panic!("no `{s}` in {p:#?}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order: {at:?} in {p:#?}");
    assert!(!p.iter().any(|c| c.starts_with("cargo ")), "{p:#?}");
    let p = plan(&["--dry-run", "--create=k3d", "--mode=image", "--no-build", "--cluster", "lab"]);
    step(&p, "k3d cluster create lab --wait");
    step(&p, "k3d image import novacron/operator:e2e --cluster lab");
    assert!(!p.iter().any(|c| c.starts_with("docker ")), "--no-build: {p:#?}");
}

#[test]
fn e2e_bad_arguments_exit_2() {
    for (args, message) in [
        (&["--mode", "remote"][..], "--mode 'remote': use local or image"),
        (&["--create", "minikube"], "--create 'minikube': use kind or k3d"),
        (&["--replay", "--mode", "image"], "--replay needs --mode local"),
        (&["--namespace", "Bad_NS"], "--namespace 'Bad_NS' is not a valid namespace name"),
        (&["--timeout", "0"], "--timeout '0' must be a number of seconds"),
        (&["--cluster"], "--cluster needs a value"),
        (&["--frobnicate"], "unknown argument '--frobnicate'"),
    ] {
        let out = e2e(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let help = e2e(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("deploy/e2e.sh [--create kind|k3d]"));
}

/// Every kubectl command line of the plans, run by the real kubectl against a server that refuses
/// connections, fails on the connection (or, for `config use-context`, on the missing context),
/// never on a flag.
#[test]
fn e2e_kubectl_command_lines_are_accepted_by_kubectl() {
    let kubectl = on_path("kubectl").expect("kubectl on PATH (the machine image ships it)");
    let dead = tempfile::tempdir().expect("temp dir");
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let kubeconfig = dead.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\ncurrent-context: dead\n\
             users:\n- name: dead\n  user:\n    token: none\n"
        ),
    )
    .expect("kubeconfig");
    let mut calls: Vec<String> = Vec::new();
    for args in [&["--dry-run"][..], &["--dry-run", "--create", "kind", "--mode", "image"]] {
        calls.extend(raw_plan(args).into_iter().filter(|c| c.starts_with("kubectl ")));
    }
    assert!(calls.len() >= 20, "{calls:#?}");
    for call in calls {
        // The dry run prints the leader's pod as <leader>; its temp folder is gone (the bad
        // MultiCloudVM it writes there is the seed with another name and primary).
        let mut call = call.replace("pod/\\<leader\\>", "pod/novacron-operator-0");
        if let Some(tmp) = call.split_whitespace().find(|w| w.ends_with("/bad.yaml")) {
            let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-multicloudvm.yaml");
            call = call.replace(tmp, &seed.display().to_string());
        }
        let o = Command::new("bash")
            .arg("-c")
            .arg(call.replacen("kubectl", &kubectl.display().to_string(), 1))
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dead.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("kubectl runs");
        let err = String::from_utf8_lossy(&o.stderr);
        for usage in ["unknown flag", "unknown command", "unknown shorthand", "See 'kubectl", "invalid argument"] {
            assert!(!err.contains(usage), "{call}: {err}");
        }
        let fine = o.status.success() || err.contains("refused") || err.contains("no context exists with the name");
        assert!(fine, "{call}: {err}");
    }
}
