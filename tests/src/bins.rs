//! The binaries under test, built once per test process with escargot (cargo's own build,
//! so they are never stale) into the workspace's target dir, side by side — the layout
//! `orchestrate` relies on to find `orchestratord` next to itself.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Paths of the built binaries.
#[derive(Debug)]
pub struct Bins {
    pub orchestrate: PathBuf,
    pub orchestratord: PathBuf,
}

fn build(package: &str, bin: &str) -> PathBuf {
    let built = escargot::CargoBuild::new()
        .package(package)
        .bin(bin)
        .current_release()
        .current_target()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .run()
        .unwrap_or_else(|e| panic!("cannot build {bin}: {e}"));
    built.path().to_path_buf()
}

/// Builds (or finds up to date) both binaries; later calls return the same paths.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| Bins {
        orchestratord: build("orchestrator-daemon", "orchestratord"),
        orchestrate: build("orchestrator-client", "orchestrate"),
    })
}
