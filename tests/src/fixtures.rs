//! Fixture projects that look like real ones, built by the tests from local files only (no
//! registry at test time): a Node package whose dependency `npm ci` installs from a vendored
//! tarball, a Python package tested with pytest in a venv its setup creates, and a Rust crate
//! tested with `cargo test --offline`. Each comes with the code its two tasks' workers write
//! (for fake-claude's `code` mode), the plan with each task's `verify` commands, and the
//! `--setup` and `--gate` a user would give.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::Sandbox;

/// A fixture project and what a run on it needs.
pub struct Fixture {
    pub repo: PathBuf,
    /// `$CLAUDE_FAKE_CODE`: `<task>/` holds what its worker writes (`<task>.broken/` a first,
    /// wrong try).
    pub code: PathBuf,
    pub plan: Value,
    pub setup: String,
    pub gate: String,
    /// What the run's environment needs to work without a registry (given with `--env`).
    pub offline: Vec<(String, String)>,
    /// Files the finished branch must hold, with a piece of their content.
    pub expect: Vec<(&'static str, &'static str)>,
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, body).expect("write a fixture file");
    }
}

/// Where this machine's Rust toolchain lives, for a sandbox whose HOME is elsewhere (rustup
/// finds it from `$HOME` otherwise); forwarded to the run like a user's shell would.
pub fn toolchain_env() -> Vec<(String, String)> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let var = |name: &str, default: String| std::env::var(name).unwrap_or(default);
    vec![
        (
            "RUSTUP_HOME".into(),
            var("RUSTUP_HOME", format!("{home}/.rustup")),
        ),
        (
            "CARGO_HOME".into(),
            var("CARGO_HOME", format!("{home}/.cargo")),
        ),
    ]
}

fn run(dir: &Path, home: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(toolchain_env())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `git init`, the files, one commit of everything git does not ignore.
fn repo(sb: &Sandbox, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = sb.root().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    sb.git(&dir, &["init", "-q", "-b", "main"]);
    write(&dir, files);
    dir
}

fn commit(sb: &Sandbox, dir: &Path) {
    sb.git(dir, &["add", "-A"]);
    sb.git(dir, &["commit", "-q", "-m", "The project as it is"]);
}

fn task(id: &str, title: &str, verify: &str, files: &[&str], deps: &[&str]) -> Value {
    json!({"id": id, "title": title, "description": format!("{title}, with tests."),
           "acceptance_criteria": [format!("{title} works and is tested")],
           "files": files, "depends_on": deps, "verify": [verify]})
}

/// A Node package: `slugify-local` from `vendor/*.tgz` (installed by `npm ci`), tests with
/// `node --test`, a `.env` the tests read (ignored, listed in `.worktreeinclude`).
pub fn node(sb: &Sandbox) -> Fixture {
    let home = sb.home();
    let dep = sb.root().join("slugify-src");
    write(
        &dep,
        &[
            (
                "package.json",
                r#"{"name": "slugify-local", "version": "1.0.0", "main": "index.js"}"#,
            ),
            (
                "index.js",
                "module.exports = (s) => s.toLowerCase().trim().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');\n",
            ),
        ],
    );
    let dir = repo(
        sb,
        "shop",
        &[
            (
                "package.json",
                r#"{"name": "shop", "version": "1.0.0", "private": true,
  "scripts": {"test": "node --test"},
  "dependencies": {"slugify-local": "file:vendor/slugify-local-1.0.0.tgz"}}
"#,
            ),
            (".gitignore", "node_modules/\n.env\n"),
            (".env", "GREETING=Hello\n"),
            (".worktreeinclude", ".env\n"),
            (
                "test/smoke.test.js",
                "const { test } = require('node:test');\nconst assert = require('node:assert');\n\
                 test('the dependency is installed', () => {\n  assert.equal(typeof require('slugify-local'), 'function');\n});\n",
            ),
        ],
    );
    std::fs::create_dir_all(dir.join("vendor")).expect("mkdir");
    let vendor = dir.join("vendor").display().to_string();
    run(
        &dep,
        &home,
        "npm",
        &["pack", "--silent", "--pack-destination", &vendor],
    );
    run(
        &dir,
        &home,
        "npm",
        &[
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
    );
    commit(sb, &dir);
    let code = sb.root().join("shop-code");
    let greet_test = "const { test } = require('node:test');\nconst assert = require('node:assert');\n\
         const { greet } = require('../src/greet');\n\
         test('greets with the configured greeting', () => {\n  assert.equal(greet('Ada'), 'Hello, Ada!');\n});\n";
    write(
        &code,
        &[
            (
                "slug/src/slug.js",
                "const slugify = require('slugify-local');\nexports.slug = (title) => slugify(title);\n",
            ),
            (
                "slug/test/slug.test.js",
                "const { test } = require('node:test');\nconst assert = require('node:assert');\n\
                 const { slug } = require('../src/slug');\n\
                 test('slugs a title', () => {\n  assert.equal(slug(' Hello, World '), 'hello-world');\n});\n",
            ),
            (
                "greet/src/greet.js",
                "const fs = require('node:fs');\nconst path = require('node:path');\n\
                 const env = fs.readFileSync(path.join(__dirname, '..', '.env'), 'utf8');\n\
                 const greeting = /GREETING=(.*)/.exec(env)[1].trim();\n\
                 exports.greet = (name) => `${greeting}, ${name}!`;\n",
            ),
            ("greet/test/greet.test.js", greet_test),
            (
                "greet.broken/src/greet.js",
                "exports.greet = (name) => `Hi ${name}`;\n",
            ),
            ("greet.broken/test/greet.test.js", greet_test),
        ],
    );
    let plan = json!({"summary": "Slugs and greetings", "tasks": [
        task("slug", "Add slug() on slugify-local", "node --test test/slug.test.js", &["src/slug.js", "test/slug.test.js"], &[]),
        task("greet", "Add greet() with the configured greeting", "node --test test/greet.test.js", &["src/greet.js", "test/greet.test.js"], &[]),
    ]});
    Fixture {
        repo: dir,
        code,
        plan,
        setup: "npm ci".into(),
        gate: "npm test".into(),
        offline: [
            ("npm_config_offline", "true"),
            ("npm_config_audit", "false"),
            ("npm_config_fund", "false"),
            ("npm_config_loglevel", "error"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        expect: vec![
            ("src/slug.js", "slugify-local"),
            ("src/greet.js", "GREETING"),
        ],
    }
}

/// A Python package (`src/` layout) tested with pytest in a `.venv` the setup creates and
/// fills from local wheels (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), the package installed with
/// `-e '.[test]'` (pytest is its test extra).
pub fn python(sb: &Sandbox) -> Fixture {
    let dir = repo(
        sb,
        "calc",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                 [project]\nname = \"calc\"\nversion = \"0.1.0\"\n\n\
                 [project.optional-dependencies]\ntest = [\"pytest\"]\n",
            ),
            ("src/calc/__init__.py", ""),
            (
                "tests/test_smoke.py",
                "import calc\n\n\ndef test_the_package_imports():\n    assert calc\n",
            ),
            (
                ".gitignore",
                ".venv/\n__pycache__/\n*.egg-info/\n.pytest_cache/\n",
            ),
        ],
    );
    commit(sb, &dir);
    let code = sb.root().join("calc-code");
    let add_test = "from calc.add import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n";
    write(
        &code,
        &[
            ("add/src/calc/add.py", "def add(a, b):\n    return a + b\n"),
            ("add/tests/test_add.py", add_test),
            (
                "add.broken/src/calc/add.py",
                "def add(a, b):\n    return a - b\n",
            ),
            ("add.broken/tests/test_add.py", add_test),
            ("mul/src/calc/mul.py", "def mul(a, b):\n    return a * b\n"),
            (
                "mul/tests/test_mul.py",
                "from calc.mul import mul\n\n\ndef test_mul():\n    assert mul(4, 5) == 20\n",
            ),
        ],
    );
    let plan = json!({"summary": "Arithmetic", "tasks": [
        task("add", "Add calc.add", ".venv/bin/python -m pytest -q tests/test_add.py", &["src/calc/add.py", "tests/test_add.py"], &[]),
        task("mul", "Add calc.mul", ".venv/bin/python -m pytest -q tests/test_mul.py", &["src/calc/mul.py", "tests/test_mul.py"], &[]),
    ]});
    let wheels = crate::deps::wheels().display().to_string();
    Fixture {
        repo: dir,
        code,
        plan,
        setup: "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'".into(),
        gate: ".venv/bin/python -m pytest -q".into(),
        // pip reads these: local wheels only (pytest, and setuptools for the build).
        offline: vec![
            ("PIP_NO_INDEX".into(), "1".into()),
            ("PIP_FIND_LINKS".into(), wheels),
        ],
        expect: vec![("src/calc/add.py", "a + b"), ("src/calc/mul.py", "a * b")],
    }
}

/// A Rust crate tested with `cargo test --offline`, with a path dependency (`helper/`) that an
/// incremental build does not compile again; `target/` ignored.
pub fn rust(sb: &Sandbox) -> Fixture {
    let dir = repo(
        sb,
        "mathx",
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"mathx\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\nhelper = { path = \"helper\" }\n",
            ),
            (
                "helper/Cargo.toml",
                "[package]\nname = \"helper\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            ),
            (
                "helper/src/lib.rs",
                "pub fn twice(x: i64) -> i64 {\n    2 * x\n}\n",
            ),
            ("src/lib.rs", "pub mod add;\npub mod mul;\n"),
            ("src/add.rs", "// Written by the add task.\n"),
            ("src/mul.rs", "// Written by the mul task.\n"),
            (".gitignore", "target/\n"),
        ],
    );
    let home = sb.home();
    run(&dir, &home, "cargo", &["generate-lockfile", "--offline"]);
    commit(sb, &dir);
    let code = sb.root().join("mathx-code");
    write(
        &code,
        &[
            (
                "add/src/add.rs",
                "pub fn add(a: i64, b: i64) -> i64 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(super::add(2, 3), 5);\n    }\n}\n",
            ),
            (
                "add.broken/src/add.rs",
                "pub fn add(a: i64, b: i64) -> i64 {\n    a - b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(super::add(2, 3), 5);\n    }\n}\n",
            ),
            (
                "mul/src/mul.rs",
                "pub fn mul(a: i64, b: i64) -> i64 {\n    a * b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn multiplies() {\n        assert_eq!(super::mul(4, 5), 20);\n    }\n}\n",
            ),
        ],
    );
    let plan = json!({"summary": "Arithmetic", "tasks": [
        task("add", "Add mathx::add::add", "cargo test -q add", &["src/add.rs"], &[]),
        task("mul", "Add mathx::mul::mul", "cargo test -q mul", &["src/mul.rs"], &[]),
    ]});
    Fixture {
        repo: dir,
        code,
        plan,
        setup: "cargo fetch".into(),
        // Not -q: the log shows what was compiled, so an incremental second run can be seen.
        gate: "cargo test".into(),
        offline: vec![("CARGO_NET_OFFLINE".into(), "true".into())],
        expect: vec![("src/add.rs", "a + b"), ("src/mul.rs", "a * b")],
    }
}
