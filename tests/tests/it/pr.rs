//! Pull requests against a local bare remote and a recording stand-in `gh`: `start --pr
//! --draft` pushes the completed run's branch and opens the pull request with the body written
//! from the run; `orchestrate pr` without `gh` prints the body; a push the remote refuses is
//! reported with git's words and never forced.

use std::path::Path;

use orchestrator_tests::Sandbox;
use orchestrator_tests::sandbox::path_without_codex;
use serde_json::json;

use crate::execution::{task, wait_final};

/// A `gh` that records its arguments and the body file's text, and prints a PR URL.
fn fake_gh(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.root().join("gh-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let record = sb.root().join("gh-called");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" > {rec}\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --body-file ]; then cat \"$2\" > {rec}.body; fi\n  shift\ndone\necho https://github.com/acme/app/pull/7\n",
        rec = record.display()
    );
    let gh = dir.join("gh");
    std::fs::write(&gh, script).expect("write gh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn with_remote(sb: &Sandbox, repo: &Path) -> std::path::PathBuf {
    let bare = sb.root().join("remote.git");
    sb.git(
        sb.root(),
        &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
    );
    sb.git(
        repo,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    sb.git(repo, &["push", "-q", "origin", "main"]);
    bare
}

#[test]
fn start_pr_pushes_the_branch_and_opens_a_pull_request_with_the_run_in_its_body() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let bare = with_remote(&sb, &repo);
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        json!({"summary": "One module", "tasks": [task("only", &[], &["only.txt"])]}).to_string(),
    )
    .expect("plan");
    let gh = fake_gh(&sb);
    let path = format!(
        "{}:{}",
        gh.display(),
        path_without_codex().to_string_lossy()
    );
    let script = format!("plan:{}", plan.display());
    sb.orchestrate_env(
        &repo,
        &["start", "Add a greeting", "--skip-codex", "--pr", "--draft"],
        &[("CLAUDE_FAKE_SCRIPT", &script), ("PATH", &path)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let branch = run["branch"].as_str().expect("branch");
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert!(
        log.contains(&format!(
            "Pushed {branch} to origin; pull request: https://github.com/acme/app/pull/7"
        )),
        "{log}"
    );
    let pushed = sb.git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(pushed.trim(), sb.git(&repo, &["rev-parse", branch]).trim());
    let called = std::fs::read_to_string(sb.root().join("gh-called")).expect("gh ran");
    assert!(
        called.contains(&format!(
            "pr create --head {branch} --base main --title Add a greeting --body-file"
        )) && called.trim_end().ends_with("--draft"),
        "{called}"
    );
    let body = std::fs::read_to_string(sb.root().join("gh-called.body")).expect("the body");
    assert!(
        body.starts_with("Add a greeting")
            && body.contains("### Plan\n\nOne module")
            && body.contains("- [x] **only** Build only")
            && body.contains("### Codex review\n\nSkipped")
            && body.contains("### Cost"),
        "{body}"
    );

    // Without gh: the branch is pushed (already), the body printed to open it by hand.
    let out = sb.orchestrate_in(&repo, &["pr"]).ok().stdout;
    assert!(
        out.contains("gh is not installed") && out.contains("### Tasks"),
        "{out}"
    );

    // A remote whose branch went elsewhere refuses the push: said, never forced.
    let other = sb.root().join("other");
    sb.git(
        sb.root(),
        &[
            "clone",
            "-q",
            bare.to_str().expect("utf-8"),
            other.to_str().expect("utf-8"),
        ],
    );
    sb.git(&other, &["checkout", "-q", branch]);
    std::fs::write(other.join("theirs.txt"), "theirs\n").expect("write");
    sb.git(&other, &["add", "theirs.txt"]);
    sb.git(&other, &["commit", "-qm", "Theirs"]);
    sb.git(&other, &["push", "-q", "origin", branch]);
    let before = sb.git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    let refused = sb.orchestrate_in(&repo, &["pr"]).fails_with(2).stderr;
    assert!(
        refused.contains("git push to origin failed")
            && refused.contains("nothing is ever force-pushed"),
        "{refused}"
    );
    let after = sb.git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(before, after, "the remote keeps its commits");
}
