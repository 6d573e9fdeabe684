//! What the operator logs: `RUST_LOG` (`info` without it), except that the cloud SDKs' runtimes
//! never log below `info`, whatever `RUST_LOG` asks. At `debug` the AWS SDK's runtime prints the
//! identity it resolved for a request (the access key id among it) when it resolves the endpoint,
//! and no credential may appear in a log.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, FilterFn};
use tracing_subscriber::layer::Filter;

/// Log targets capped at `info`: the AWS SDK's runtime and its configuration loader.
pub const CAPPED: [&str; 3] = ["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_config"];

fn capped(meta: &Metadata<'_>) -> bool {
    CAPPED.iter().any(|t| meta.target() == *t || meta.target().starts_with(&format!("{t}::")))
}

/// The filter of the operator's log: `rust_log` (the `RUST_LOG` syntax, such as
/// `operator=debug,kube=info`; `info` when absent or unreadable), with [`CAPPED`] at `info`.
pub fn filter<S: tracing::Subscriber>(rust_log: Option<&str>) -> impl Filter<S> + use<S> {
    let wanted = rust_log.and_then(|r| EnvFilter::try_new(r).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    wanted.and(FilterFn::new(|meta: &Metadata<'_>| !(capped(meta) && *meta.level() > Level::INFO)))
}
