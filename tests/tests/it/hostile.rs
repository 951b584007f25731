//! A hostile repository: one that commits `.orchestrator` (or a folder in it) as a symlink,
//! or tracks files there, cannot make the daemon write outside the project. Such a project is
//! refused at `start` with the fix; a link that appears during a run stops the mirror from
//! writing through it (said once in the log), never the run.

use std::path::{Path, PathBuf};

use orchestrator_tests::Sandbox;
use serde_json::json;

/// Every file under `dir` with its contents, to compare before and after.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn outside(sb: &Sandbox) -> PathBuf {
    let d = sb.root().join("outside");
    std::fs::create_dir_all(d.join("tasks")).expect("mkdir");
    std::fs::write(d.join("keep.txt"), "the user's own file\n").expect("write");
    std::fs::write(d.join("tasks").join("a.json"), "not yours\n").expect("write");
    d
}

#[test]
fn a_repository_that_commits_the_mirror_folder_as_a_link_is_refused() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let target = outside(&sb);
    let before = files(&target);
    std::os::unix::fs::symlink(&target, repo.join(".orchestrator")).expect("symlink");
    sb.git(&repo, &["add", ".orchestrator"]);
    sb.git(&repo, &["commit", "-q", "-m", "a link"]);
    let out = sb
        .orchestrate_in(&repo, &["start", "Add a widget"])
        .fails_with(2);
    let said = out.to_string();
    assert!(said.contains(".orchestrator is a symlink"), "{said}");
    assert!(said.contains("rm "), "names the fix: {said}");
    assert_eq!(
        files(&target),
        before,
        "nothing written outside the project"
    );
    assert_eq!(
        sb.orchestrate(&["list", "--json"]).ok().json()["runs"],
        json!([])
    );

    // Tracked files under .orchestrator/ are refused too (the mirror would rewrite them).
    let other = sb.repo("tracked");
    std::fs::create_dir_all(other.join(".orchestrator/tasks")).expect("mkdir");
    std::fs::write(other.join(".orchestrator/tasks/a.json"), "{}\n").expect("write");
    sb.git(&other, &["add", "-f", ".orchestrator"]);
    sb.git(&other, &["commit", "-q", "-m", "tracked mirror"]);
    let out = sb
        .orchestrate_in(&other, &["start", "Add a widget"])
        .fails_with(2);
    let said = out.to_string();
    assert!(
        said.contains("tracks files under .orchestrator/") && said.contains("git rm -r --cached"),
        "{said}"
    );
}

#[test]
fn links_that_appear_during_a_run_are_never_written_through_and_the_run_goes_on() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let target = outside(&sb);
    let run = sb.start_run(&repo, "Add a widget");
    let before = files(&target);
    // Each folder the board writes to is swapped for a link to the outside folder.
    let mirror = repo.join(".orchestrator");
    for sub in ["tasks", "messages", "logs"] {
        std::fs::remove_dir_all(mirror.join(sub)).expect("remove");
        std::os::unix::fs::symlink(&target, mirror.join(sub)).expect("symlink");
    }
    let planner = sb.session(&run, "planner");
    planner.ok(
        "submit_plan",
        json!({"summary": "One", "tasks": [{"id": "a", "title": "Build a", "description": "Do a",
               "acceptance_criteria": ["a works"]}]}),
    );
    planner.ok("send_message", json!({"to": "all", "body": "hello"}));
    sb.orchestrate_in(&repo, &["pause"]).ok();
    assert_eq!(files(&target), before, "nothing written through the links");
    for sub in ["tasks", "messages", "logs"] {
        assert!(
            std::fs::symlink_metadata(mirror.join(sub))
                .expect("still there")
                .file_type()
                .is_symlink(),
            "{sub} is left as it was"
        );
    }
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["status"], "paused", "the run went on: {status}");
    let log = sb.orchestrate_in(&repo, &["log", "-n", "100"]).ok().stdout;
    assert_eq!(
        log.matches("The mirror stopped writing into the project")
            .count(),
        1,
        "said once: {log}"
    );
    assert!(log.contains("is a symlink"), "{log}");
}
