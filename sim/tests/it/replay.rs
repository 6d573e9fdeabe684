//! `sim replay` on a decision log the operator wrote (`tests/fixtures/operator-decisions.jsonl`,
//! produced and checked by the operator's test `decision_log::the_controllers_decision_log_…`):
//! it replays identically; an altered decision exits 1 naming its line; a bad file exits 2 naming
//! the line and what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    crate::root().join("sim/tests/fixtures/operator-decisions.jsonl")
}

fn replay(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim")).arg("replay").arg(path).output().expect("sim runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The fixture's lines, with line `n` (1-based) changed by `edit`, written to a temp file.
fn edited(dir: &Path, n: usize, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let original = std::fs::read_to_string(fixture()).expect("the fixture");
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    let mut v: serde_json::Value = serde_json::from_str(&lines[n - 1]).expect("a JSON line");
    edit(&mut v);
    lines[n - 1] = v.to_string();
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = dir.join(format!("edited-{k}-line-{n}.jsonl"));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write");
    path
}

#[test]
fn replay_of_the_operators_decision_log_matches_every_decision() {
    let out = replay(&fixture());
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    // 36 lines: 1 header, 4 engine starts (web and api, then both again after the operator's
    // restart), 31 decisions with 24 actions between them.
    assert!(stdout.contains("4 engines (2 deployments), 31 decisions, 24 actions; every decision matches"), "{stdout}");
}

#[test]
fn replay_of_an_altered_decision_exits_1_naming_its_line() {
    let dir = tempfile::tempdir().expect("tmp");
    // Line 16: web's evaluation at 90 s fails over from aws-us-east-1 (region 0) to azure-eastus
    // (region 1). The log now says it went to gcp-us-central1 (region 2).
    let path = edited(dir.path(), 16, |v| {
        assert_eq!(v["actions"][0]["action"], "fail-over");
        assert_eq!(v["actions"][0]["to"], 1);
        v["actions"][0]["to"] = 2.into();
    });
    let out = replay(&path);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "mismatch: {}:16: deployment uid-web (default/web) at 1795996890000 ms, event timer-fired: action 1 differs (4 recorded, 4 replayed)",
            path.display()
        )
    );
    let detail: Vec<&str> = stdout.lines().skip(1).take(2).collect();
    assert_eq!(
        detail,
        [
            "  recorded: {\"action\":\"fail-over\",\"deployment\":0,\"from\":0,\"reason\":\"unhealthy\",\"to\":2}",
            "  replayed: {\"action\":\"fail-over\",\"deployment\":0,\"from\":0,\"reason\":\"unhealthy\",\"to\":1}"
        ]
    );
    // web's engine is not replayed further (its 3 decisions at 120 s, one action); api's match,
    // and so do the fresh engines of both after the operator's restart.
    assert_eq!(
        stdout.lines().last().unwrap_or_default(),
        format!(
            "replayed {}: 4 engines (2 deployments), 28 decisions, 23 actions; 1 of 4 engines diverged (3 later decisions of it not replayed)",
            path.display()
        )
    );
}

#[test]
fn replay_of_a_missing_action_exits_1() {
    let dir = tempfile::tempdir().expect("tmp");
    // Line 5: api's deployment is applied: one provision and the evaluation timer. Drop the timer.
    let path = edited(dir.path(), 5, |v| {
        let actions = v["actions"].as_array_mut().expect("actions");
        assert_eq!(actions.pop().map(|a| a["action"].clone()), Some("set-timer".into()));
    });
    let out = replay(&path);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(".jsonl:5: deployment uid-api (default/api) at 1795996800000 ms"), "{stdout}");
    assert!(
        stdout.contains(
            "action 2 differs (1 recorded, 2 replayed)\n  recorded: nothing\n  replayed: {\"action\":\"set-timer\""
        ),
        "{stdout}"
    );
}

#[test]
fn replay_of_a_bad_file_exits_2_naming_the_line_and_the_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let fixture = std::fs::read_to_string(fixture()).expect("the fixture");
    let header = fixture.lines().next().expect("a header").to_owned();
    let cases: Vec<(PathBuf, String)> = vec![
        (write(d, "not-json.jsonl", &format!("{header}\n{{\"kind\": \"engine\",\n")), "2: EOF while parsing a value (column 18)".into()),
        (
            write(d, "unknown-kind.jsonl", &format!("{header}\n{{\"kind\":\"verdict\"}}\n")),
            "2: unknown variant `verdict`, expected one of `header`, `engine`, `decision` (column 17)".into(),
        ),
        (
            edited(d, 2, |v| v["color"] = "blue".into()),
            "2: unknown field `color`, expected one of `deployment`, `object`, `at`".into(),
        ),
        (
            write(d, "no-header.jsonl", "{\"kind\":\"engine\",\"deployment\":\"u\",\"at\":0}\n"),
            "1: an engine line before any header line".into(),
        ),
        (write(d, "empty.jsonl", "\n"), "1: no header line: not a decision log (written by `operator run --decision-log FILE`)".into()),
        (
            edited(d, 1, |v| v["format"] = "other-log".into()),
            "1: format is \"other-log\"; a decision log's is \"novacron-decision-log\"".into(),
        ),
        (edited(d, 1, |v| v["version"] = 2.into()), "1: version 2: this sim reads versions 1 to 1".into()),
        (
            edited(d, 1, |v| v["catalog"]["offers"][0]["zone"] = 5.into()),
            "1: catalog: invalid catalog: offer #0 names a zone outside its region".into(),
        ),
        (
            edited(d, 1, |v| v["engine"]["max_attempts"] = 0.into()),
            "1: the engine refuses the header's settings: invalid engine setting: max_attempts must be at least 1".into(),
        ),
        (
            edited(d, 3, |v| v["deployment"] = "uid-nobody".into()),
            "3: deployment \"uid-nobody\" has no engine line before this decision (each engine starts with {\"kind\":\"engine\",\"deployment\":…})".into(),
        ),
        (
            edited(d, 6, |v| v["at"] = 1_795_996_700_000u64.into()),
            "6: time goes back for deployment \"uid-web\": 1795996700000 ms after 1795996800000 ms".into(),
        ),
        (
            edited(d, 13, |v| v["event"]["region"] = 7.into()),
            "13: event names region #7 but the catalog has 3 regions".into(),
        ),
    ];
    for (path, expected) in cases {
        let out = replay(&path);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert_eq!(stderr.trim_end(), format!("error: {}:{expected}", path.display()), "{}", path.display());
    }
    let missing = replay(&d.join("no-such.jsonl"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no-such.jsonl: cannot read:"), "{}", text(&missing.stderr));
}
