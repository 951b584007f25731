//! The binaries under test, built once per test process with escargot (cargo's own build, so
//! they are never stale) into the workspace's target dir, side by side — the layout
//! `orchestrate` relies on to find `orchestratord` next to itself.
//!
//! They are built with `--workspace --bins`, the same package selection (hence the same
//! unified features) as `cargo test --workspace`, and without `--target`: so in a normal test
//! run cargo finds them already built instead of compiling the dependency tree a second time.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Paths of the built binaries.
#[derive(Debug)]
pub struct Bins {
    pub orchestrate: PathBuf,
    pub orchestratord: PathBuf,
    /// The fast tier's stand-in for `claude` (see `src/bin/fake_claude.rs`).
    pub fake_claude: PathBuf,
    /// The fast tier's stand-in for `codex` (see `src/bin/fake_codex.rs`).
    pub fake_codex: PathBuf,
    /// The benchmark's no-op MCP server (see `src/bin/noop_mcp.rs`).
    pub noop_mcp: PathBuf,
}

fn build() -> Bins {
    let messages = escargot::CargoBuild::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .arg("--workspace")
        .bins()
        .current_release()
        .exec()
        .unwrap_or_else(|e| panic!("cannot build the binaries: {e}"));
    let (mut client, mut daemon, mut fake, mut codex, mut noop) = (None, None, None, None, None);
    for m in messages {
        let m = m.unwrap_or_else(|e| panic!("cargo build failed: {e}"));
        if let Ok(escargot::format::Message::CompilerArtifact(a)) = m.decode()
            && let Some(exe) = a.executable
        {
            match a.target.name.as_ref() {
                "orchestrate" => client = Some(exe.to_path_buf()),
                "orchestratord" => daemon = Some(exe.to_path_buf()),
                "fake-claude" => fake = Some(exe.to_path_buf()),
                "fake-codex" => codex = Some(exe.to_path_buf()),
                "orchestrator-noop-mcp" => noop = Some(exe.to_path_buf()),
                _ => {}
            }
        }
    }
    Bins {
        orchestrate: client.expect("cargo built orchestrate"),
        orchestratord: daemon.expect("cargo built orchestratord"),
        fake_claude: fake.expect("cargo built fake-claude"),
        fake_codex: codex.expect("cargo built fake-codex"),
        noop_mcp: noop.expect("cargo built orchestrator-noop-mcp"),
    }
}

/// Builds (or finds up to date) both binaries; later calls return the same paths.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(build)
}
