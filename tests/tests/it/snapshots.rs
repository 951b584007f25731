//! What a user reads, pinned: the human output of the main commands, with ids, paths, commits
//! and times normalised. `cargo insta review` updates these after a deliberate change.

use orchestrator_tests::Sandbox;

fn settings(sb: &Sandbox) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&sb.root().display().to_string()), "[SANDBOX]");
    s.add_filter(r"r-[0-9a-f]{12}", "r-[ID]");
    s.add_filter(r"\b[0-9a-f]{40}\b", "[COMMIT]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[SHORT]");
    s.add_filter(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[TIME]");
    s.add_filter(r"\d+[smhd] ago", "[AGO]");
    s.add_filter(r"pid \d+", "pid [PID]");
    s.add_filter(r"\((queued|running)\)", "([ACTIVE])");
    s.add_filter(r"s-[0-9a-f]{12}", "s-[SESSION]");
    // Whether the idle planner had started before the pause is a race: drop that line.
    s.add_filter(r"(?m)^  sessions .*\n", "");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn the_cli_reads_well() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let start = sb
        .orchestrate_in(&repo, &["start", "Add OAuth login", "--max-cycles", "3"])
        .ok();
    let again = sb
        .orchestrate_in(&repo, &["start", "Something else"])
        .fails_with(2);
    sb.orchestrate_in(&repo, &["pause"]).ok();
    let status = sb.orchestrate_in(&repo, &["status"]).ok();
    let list = sb.orchestrate(&["list"]).ok();
    let bad = sb
        .orchestrate_in(&repo, &["start", "x", "--concurrency", "100"])
        .fails_with(2);
    settings(&sb).bind(|| {
        insta::assert_snapshot!("start", start.stdout);
        insta::assert_snapshot!("start_refused", again.stderr);
        insta::assert_snapshot!("status", status.stdout);
        insta::assert_snapshot!("list", list.stdout);
        insta::assert_snapshot!("bad_option", bad.stderr);
    });
}
