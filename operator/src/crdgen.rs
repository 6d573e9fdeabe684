//! Writes every NovaCron CRD to `deploy/crds/` (or the folder given as the first argument);
//! a test checks that the committed files equal this output.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("deploy").join("crds"));
    std::fs::create_dir_all(&dir)?;
    for (file, crd) in operator::crd::all() {
        std::fs::write(dir.join(file), operator::crd::to_yaml(&crd)?)?;
        println!("wrote {}", dir.join(file).display());
    }
    Ok(())
}
