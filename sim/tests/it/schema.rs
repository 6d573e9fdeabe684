//! The tables' schemas match docs/results.md, the one place they are documented.

use polars::prelude::*;
use sim::run::RunOptions;

/// (column, type, nullable) rows of the markdown table under `## {table}`.
fn documented(table: &str) -> Vec<(String, String, bool)> {
    let doc = std::fs::read_to_string(crate::root().join("docs/results.md")).expect("docs/results.md");
    let section = doc.split(&format!("## {table}\n")).nth(1).expect("section exists");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| column"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let ty = cells[2];
            (cells[1].to_owned(), ty.trim_end_matches('?').to_owned(), ty.ends_with('?'))
        })
        .collect()
}

fn dtype_name(d: &DataType) -> &'static str {
    match d {
        DataType::UInt32 => "u32",
        DataType::UInt64 => "u64",
        DataType::Float64 => "f64",
        DataType::Boolean => "bool",
        DataType::String => "str",
        _ => "other",
    }
}

#[test]
fn parquet_schemas_match_the_documentation() {
    // burst.toml has spot prices; provider-outage.toml has a deployment that fails over.
    let dir = tempfile::tempdir().expect("tmp");
    for (file, tables) in [
        ("burst.toml", &["vms", "timeseries", "spot_prices"][..]),
        ("provider-outage.toml", &["failovers", "deployments"][..]),
    ] {
        let s = sim::scenario::load(&crate::scenario_path(file)).expect("valid");
        let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
        sim::output::write_all(dir.path(), &r, &s.catalog, Default::default()).expect("writes");
        for table in tables {
            let f = std::fs::File::open(dir.path().join(format!("{table}.parquet"))).expect("open");
            let df = ParquetReader::new(f).finish().expect("readable parquet");
            let actual: Vec<(String, String)> =
                df.columns().iter().map(|c| (c.name().to_string(), dtype_name(c.dtype()).to_owned())).collect();
            let doc = documented(&format!("{table}.parquet"));
            let expected: Vec<(String, String)> = doc.iter().map(|(n, t, _)| (n.clone(), t.clone())).collect();
            assert_eq!(actual, expected, "{table}.parquet differs from docs/results.md");
            for (name, _, nullable) in doc {
                let nulls = df.column(&name).expect("column").null_count();
                assert!(nullable || nulls == 0, "{table}.{name} has nulls but is documented as not nullable");
            }
            assert!(df.height() > 0, "{table} is empty");
        }
    }
}
