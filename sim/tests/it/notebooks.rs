//! The Jupyter notebooks in `notebooks/` run headless against results made by this build's `sim`,
//! so a change to the result tables that breaks a notebook fails here.
//!
//! The Python side installs itself: a virtual environment under the target directory
//! (`<target>/novacron-pyenv/<hash of notebooks/requirements.txt>`), created once with
//! `python3 -m venv` (or `$NOVACRON_PYTHON`) and reused by later runs; a lock file keeps two test
//! processes from installing into it at once. Each notebook then runs in a fresh kernel through
//! nbclient; a failing cell fails the test with the cell's traceback. The notebooks check the
//! columns they read themselves; here we check that every cell ran, none raised, each notebook drew
//! its figures, and the policy comparison really ran the simulator once per policy and seed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Seeds per policy in the policy comparison (its default is 10; four keep the test short).
const SEEDS: usize = 4;

/// Executes one notebook: `python -c RUNNER SOURCE EXECUTED WORKDIR TIMEOUT_S`. Writes the executed
/// notebook (with the outputs it got, also on failure) and exits 1 with the failing cell's
/// traceback, colour codes removed, when a cell raises.
const RUNNER: &str = r#"
import re, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

src, dst, cwd, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                        resources={"metadata": {"path": cwd}})
try:
    client.execute()
except CellExecutionError as e:
    print(re.sub(r"\x1b\[[0-9;]*m", "", str(e)), file=sys.stderr)
    sys.exit(1)
finally:
    nbformat.write(nb, dst)
"#;

/// One notebook, what it reads, and what its executed form must contain.
struct Case {
    file: &'static str,
    /// `NOVACRON_RESULTS`: a folder under the test's output directory.
    results: &'static str,
    /// Figures it must draw at least.
    images: usize,
    /// Text its outputs must contain.
    texts: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        file: "01-run-overview.ipynb",
        results: "burst",
        images: 5,
        texts: &["burst (policy cost-optimized, seed 42)"],
    },
    Case {
        file: "02-failover-timeline.ipynb",
        results: "provider-outage",
        images: 3,
        texts: &["provider-outage", "azure-eastus", "failback"],
    },
    Case { file: "03-policy-comparison.ipynb", results: "burst", images: 2, texts: &["cost-optimized", "balanced"] },
];

#[test]
fn notebooks_run_headless_on_fresh_results() {
    let python = pyenv();
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path();
    for (scenario, dir) in [("burst.toml", "burst"), ("provider-outage.toml", "provider-outage")] {
        let o = Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("run")
            .arg(crate::scenario_path(scenario))
            .arg("--out")
            .arg(out.join(dir))
            .arg("--quiet")
            .output()
            .expect("runs sim");
        assert!(o.status.success(), "sim run {scenario}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let notebooks = crate::root().join("notebooks");
    let jupyter_home = out.join("jupyter");
    let mut failures = Vec::new();
    for case in CASES {
        let executed = out.join(case.file);
        let o = Command::new(&python)
            .arg("-c")
            .arg(RUNNER)
            .arg(notebooks.join(case.file))
            .arg(&executed)
            .arg(&notebooks)
            .arg("300")
            .env("NOVACRON_RESULTS", out.join(case.results))
            .env("NOVACRON_SIM", env!("CARGO_BIN_EXE_sim"))
            .env("NOVACRON_SCENARIO", crate::scenario_path("burst.toml"))
            .env("NOVACRON_SEEDS", SEEDS.to_string())
            .env("NOVACRON_SWEEP_OUT", out.join("sweep"))
            .env_remove("NOVACRON_POLICIES")
            // Keep the kernels away from the user's Jupyter and matplotlib settings.
            .env("JUPYTER_CONFIG_DIR", jupyter_home.join("config"))
            .env("JUPYTER_DATA_DIR", jupyter_home.join("data"))
            .env("IPYTHONDIR", jupyter_home.join("ipython"))
            .env("MPLCONFIGDIR", python.parent().and_then(Path::parent).expect("venv").join("mplconfig"))
            .env_remove("MPLBACKEND")
            .env("PYDEVD_DISABLE_FILE_VALIDATION", "1")
            .output()
            .expect("runs python");
        if !o.status.success() {
            failures.push(format!("{} failed:\n{}", case.file, String::from_utf8_lossy(&o.stderr)));
            continue;
        }
        if let Err(e) = check_executed(&executed, case) {
            failures.push(format!("{}: {e}", case.file));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The comparison ran every policy `sim policies` lists, once per seed.
    let policies = Command::new(env!("CARGO_BIN_EXE_sim")).arg("policies").output().expect("sim policies");
    let policies = String::from_utf8_lossy(&policies.stdout).split_whitespace().count();
    let runs = std::fs::read_dir(out.join("sweep")).expect("sweep folder").count();
    assert!(policies >= 2, "sim policies lists {policies} policies");
    assert_eq!(runs, policies * SEEDS, "one results folder per policy and seed");
}

/// Every code cell ran, none raised, and the outputs hold the figures and text the case expects.
fn check_executed(path: &Path, case: &Case) -> Result<(), String> {
    let nb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let cells = nb["cells"].as_array().ok_or("no cells")?;
    let (mut images, mut text) = (0, String::new());
    for (i, cell) in cells.iter().enumerate().filter(|(_, c)| c["cell_type"] == "code") {
        if cell["execution_count"].is_null() {
            return Err(format!("code cell {i} did not run"));
        }
        for o in cell["outputs"].as_array().into_iter().flatten() {
            if o["output_type"] == "error" {
                return Err(format!("cell {i} raised {}: {}", o["ename"], o["evalue"]));
            }
            // A PNG of a real figure is tens of kilobytes; an empty axes is a few.
            if o["data"]["image/png"].as_str().is_some_and(|png| png.len() > 10_000) {
                images += 1;
            }
            for part in [&o["text"], &o["data"]["text/plain"]] {
                match part {
                    serde_json::Value::String(s) => text.push_str(s),
                    serde_json::Value::Array(lines) => {
                        lines.iter().filter_map(|l| l.as_str()).for_each(|l| text.push_str(l))
                    }
                    _ => {}
                }
            }
        }
    }
    if images < case.images {
        return Err(format!("drew {images} figures, expected at least {}", case.images));
    }
    for t in case.texts {
        if !text.contains(t) {
            return Err(format!("outputs do not mention {t:?}:\n{text}"));
        }
    }
    Ok(())
}

/// The Python interpreter of the notebooks' virtual environment, created on first use.
fn pyenv() -> PathBuf {
    let requirements_path = crate::root().join("notebooks/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path).expect("notebooks/requirements.txt");
    // CARGO_TARGET_TMPDIR is `<target>/tmp`: the environment lives beside it, outside the clone
    // when the target directory is, and survives `cargo test` runs.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned();
    let base = target.join("novacron-pyenv");
    std::fs::create_dir_all(&base).expect("create pyenv folder");
    let key = format!("{:016x}", fnv1a(requirements.as_bytes()));
    let dir = base.join(&key);
    let python = if cfg!(windows) { dir.join("Scripts/python.exe") } else { dir.join("bin/python") };
    let marker = dir.join("novacron-requirements.txt");

    let lock = File::create(base.join(format!("{key}.lock"))).expect("create lock file");
    lock.lock().expect("lock the environment");
    let ready = std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements)
        && Command::new(&python)
            .args(["-c", "import nbclient, polars, matplotlib"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        // Whatever is there is a half-made environment (an interrupted install) or a broken one.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the stale environment");
        }
        let base_python = std::env::var("NOVACRON_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        run(
            Command::new(&base_python).args(["-m", "venv"]).arg(&dir),
            &format!(
                "{base_python} -m venv (set NOVACRON_PYTHON to another Python 3.11+; on Debian, \
                 `apt-get install python3-venv` provides venv)"
            ),
        );
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check", "-r"])
                .arg(&requirements_path),
            "pip install -r notebooks/requirements.txt",
        );
        std::fs::write(&marker, &requirements).expect("write marker");
    }
    drop(lock);
    python
}

/// Runs a set-up command, failing the test with its output if it fails.
fn run(cmd: &mut Command, what: &str) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// 64-bit FNV-1a: a hash that stays the same across Rust releases, to name the environment.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
