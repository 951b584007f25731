//! Validation of a submitted plan. Every rejection says exactly what to change, because the
//! reader is a model that will fix the plan and submit it again.

use std::collections::{HashMap, HashSet};

use schemars::JsonSchema;
use serde::Deserialize;

pub const MAX_TASKS: usize = 200;
pub const MAX_ID: usize = 64;
pub const MAX_TITLE: usize = 200;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_LIST: usize = 50;
pub const MAX_ITEM: usize = 500;
/// Verify commands per task.
pub const MAX_VERIFY: usize = 5;

/// A plan as the planner submits it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The approach in a few paragraphs: what will be built and how the tasks fit together.
    pub summary: String,
    /// The tasks, 1 to 200. Workers run independent tasks in parallel, each in its own worktree.
    pub tasks: Vec<TaskInput>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// Short unique id: letters, digits, `-`, `_`, `.` (e.g. "t1", "api-auth").
    pub id: String,
    /// One line naming the outcome.
    pub title: String,
    /// Everything a worker needs to do it without asking: what, where, constraints.
    pub description: String,
    /// Checkable statements that are true when the task is done.
    pub acceptance_criteria: Vec<String>,
    /// Ids of tasks that must be done before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Files or areas the task will touch (helps avoid conflicting parallel edits).
    #[serde(default)]
    pub files: Vec<String>,
    /// Shell commands, run in the worker's worktree, that pass when the acceptance criteria
    /// hold (e.g. "npm test -- auth", "pytest tests/test_auth.py -q"); at most 5. The
    /// orchestrator runs them when the worker completes and refuses the completion while one
    /// fails. Give them wherever the project has a way to check.
    #[serde(default)]
    pub verify: Vec<String>,
    /// The model for this task's worker, one of the models the run allows (the prompt lists
    /// them); omit it for the workers' model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How hard its worker thinks (low, medium, high, xhigh, max); omit it for the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<orchestrator_proto::Effort>,
    /// The CLI of its worker (claude or codex), when the run uses Codex workers; omit it for
    /// the run's workers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<orchestrator_proto::Agent>,
}

/// Every problem found, one line each, so the planner can fix them all in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanProblems(pub Vec<String>);

impl std::fmt::Display for PlanProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "The plan was not accepted. Fix these and call submit_plan again:"
        )?;
        for p in &self.0 {
            writeln!(f, "- {p}")?;
        }
        Ok(())
    }
}

fn text(problems: &mut Vec<String>, what: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        problems.push(format!("{what} is empty; write it out"));
    } else if value.len() > max {
        problems.push(format!(
            "{what} is {} bytes; keep it under {max}",
            value.len()
        ));
    }
}

fn list(problems: &mut Vec<String>, what: &str, items: &[String], required: bool) {
    if required && items.iter().all(|i| i.trim().is_empty()) {
        problems.push(format!("{what} is empty; give at least one"));
    }
    if items.len() > MAX_LIST {
        problems.push(format!(
            "{what} has {} entries; keep it to {MAX_LIST}",
            items.len()
        ));
    }
    if items.iter().any(|i| i.len() > MAX_ITEM) {
        problems.push(format!(
            "{what} has an entry over {MAX_ITEM} bytes; shorten it"
        ));
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why git could not hold a branch named after `id` (`<branch>--<id>.<attempt>`), if it
/// cannot: git's ref-name rules for the characters `valid_id` allows.
fn git_unfit(id: &str) -> Option<&'static str> {
    if id.starts_with('.') {
        Some("an id must not start with '.'")
    } else if id.ends_with('.') {
        Some("an id must not end with '.'")
    } else if id.contains("..") {
        Some("an id must not contain '..'")
    } else if id.ends_with(".lock") {
        Some("an id must not end with '.lock'")
    } else {
        None
    }
}

/// A close id git can hold.
fn suggest(id: &str) -> String {
    let mut s = id.replace("..", "-").trim_matches('.').to_owned();
    while s.contains("..") {
        s = s.replace("..", "-");
    }
    if let Some(stem) = s.strip_suffix(".lock") {
        s = format!("{stem}-lock");
    }
    if s.is_empty() { "task-1".into() } else { s }
}

/// Checks a plan against the rules, the ids already used by the run, the models it allows and
/// whether it allows Codex workers.
pub fn validate(
    plan: &PlanInput,
    existing: &HashSet<String>,
    models: &[&str],
    codex: bool,
) -> Result<(), PlanProblems> {
    let mut p = Vec::new();
    text(&mut p, "summary", &plan.summary, MAX_TEXT);
    if plan.tasks.is_empty() {
        p.push("tasks is empty; a plan has 1 to 200 tasks".into());
    }
    if plan.tasks.len() > MAX_TASKS {
        p.push(format!(
            "the plan has {} tasks; merge related work into at most {MAX_TASKS}",
            plan.tasks.len()
        ));
    }
    let mut seen = HashSet::new();
    for (i, t) in plan.tasks.iter().enumerate() {
        task_problems(&mut p, i, t, &mut seen, existing);
        if t.agent == Some(orchestrator_proto::Agent::Codex) && !codex {
            p.push(format!(
                "task {:?}: this run has no Codex workers (it was not started with \
                 --worker-agent codex or --on-limit codex); remove \"agent\"",
                t.id
            ));
        }
        if let Some(m) = &t.model
            && !models.contains(&m.as_str())
        {
            p.push(match models {
                [] => format!(
                    "task {:?}: this run gives no choice of model; remove \"model\" (its worker \
                     runs the run's model)",
                    t.id
                ),
                _ => format!(
                    "task {:?}: model {m:?} is not one this run allows ({}); use one of them or \
                     remove \"model\"",
                    t.id,
                    models.join(", ")
                ),
            });
        }
    }
    dependency_problems(&mut p, plan, existing);
    if let Some(cycle) = find_cycle(plan) {
        p.push(format!(
            "the dependencies form a cycle ({}); break it so the tasks can run in some order",
            cycle.join(" -> ")
        ));
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(PlanProblems(p))
    }
}

/// What is wrong with the `i`th task on its own (its id, texts and lists).
fn task_problems<'a>(
    p: &mut Vec<String>,
    i: usize,
    t: &'a TaskInput,
    seen: &mut HashSet<&'a str>,
    existing: &HashSet<String>,
) {
    let name = if t.id.is_empty() {
        format!("task #{}", i + 1)
    } else {
        format!("task {:?}", t.id)
    };
    if !valid_id(&t.id) {
        p.push(format!(
            "{name}: id must be 1-{MAX_ID} characters of letters, digits, '-', '_' or '.'"
        ));
    } else if let Some(why) = git_unfit(&t.id) {
        p.push(format!(
            "{name}: {why} (the id names the task's git branch); use e.g. {:?}",
            suggest(&t.id)
        ));
    } else if !seen.insert(t.id.as_str()) {
        p.push(format!(
            "{name}: the id is used twice; give each task its own id"
        ));
    } else if existing.contains(&t.id) {
        p.push(format!(
            "{name}: the id already belongs to a task of an earlier plan in this run; choose a new id"
        ));
    }
    text(p, &format!("{name}: title"), &t.title, MAX_TITLE);
    text(p, &format!("{name}: description"), &t.description, MAX_TEXT);
    list(
        p,
        &format!("{name}: acceptance_criteria"),
        &t.acceptance_criteria,
        true,
    );
    list(p, &format!("{name}: files"), &t.files, false);
    list(p, &format!("{name}: depends_on"), &t.depends_on, false);
    list(p, &format!("{name}: verify"), &t.verify, false);
    if t.verify.len() > MAX_VERIFY {
        p.push(format!(
            "{name}: verify has {} commands; give at most {MAX_VERIFY} (join related checks in one command)",
            t.verify.len()
        ));
    }
    if t.verify.iter().any(|c| c.trim().is_empty()) {
        p.push(format!("{name}: verify has an empty command; remove it"));
    }
}

/// Dependencies on the task itself or on no task of this plan or an earlier one.
fn dependency_problems(p: &mut Vec<String>, plan: &PlanInput, existing: &HashSet<String>) {
    let ids: HashSet<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
    for t in &plan.tasks {
        for d in &t.depends_on {
            if d == &t.id {
                p.push(format!(
                    "task {:?} depends on itself; remove {d:?} from its depends_on",
                    t.id
                ));
            } else if !ids.contains(d.as_str()) && !existing.contains(d) {
                p.push(format!(
                    "task {:?} depends on {d:?}, which is not a task of this plan; fix the id or add the task",
                    t.id
                ));
            }
        }
    }
}

/// A dependency cycle among the plan's own tasks, as a path that returns to its start.
fn find_cycle(plan: &PlanInput) -> Option<Vec<String>> {
    let deps: HashMap<&str, Vec<&str>> = plan
        .tasks
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.depends_on
                    .iter()
                    .map(String::as_str)
                    .filter(|d| *d != t.id)
                    .collect(),
            )
        })
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS: plans can be 200 deep.
    let mut state: HashMap<&str, u8> = HashMap::new();
    for start in plan.tasks.iter().map(|t| t.id.as_str()) {
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((node, next)) = stack.pop() {
            let children = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&child) = children.get(next) {
                stack.push((node, next + 1));
                match state.get(child).copied().unwrap_or(0) {
                    0 if deps.contains_key(child) => {
                        state.insert(child, 1);
                        stack.push((child, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        path.push(child.to_owned());
                        return Some(path);
                    }
                    _ => {}
                }
            } else {
                state.insert(node, 2);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deps: &[&str]) -> TaskInput {
        TaskInput {
            id: id.into(),
            title: format!("Do {id}"),
            description: "Details".into(),
            acceptance_criteria: vec!["It works".into()],
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            files: vec![],
            verify: vec![],
            model: None,
            effort: None,
            agent: None,
        }
    }

    fn plan(tasks: Vec<TaskInput>) -> PlanInput {
        PlanInput {
            summary: "Approach".into(),
            tasks,
        }
    }

    #[test]
    fn a_task_model_must_be_one_the_run_allows() {
        let mut t = task("a", &[]);
        t.model = Some("opus".into());
        t.effort = Some(orchestrator_proto::Effort::High);
        assert_eq!(problems(&plan(vec![t.clone()])), Vec::<String>::new());
        t.model = Some("gpt-9".into());
        assert_eq!(
            problems(&plan(vec![t.clone()])),
            [
                "task \"a\": model \"gpt-9\" is not one this run allows (sonnet, opus); use one \
              of them or remove \"model\""
            ]
        );
        let none = validate(&plan(vec![t]), &HashSet::new(), &[], false);
        let said = none.err().map(|e| e.0.join("")).unwrap_or_default();
        assert!(said.contains("gives no choice of model"), "{said}");
    }

    #[test]
    fn a_task_goes_to_codex_only_in_a_run_with_codex_workers() {
        let mut t = task("a", &[]);
        t.agent = Some(orchestrator_proto::Agent::Codex);
        let said = validate(&plan(vec![t.clone()]), &HashSet::new(), &[], false)
            .err()
            .map(|e| e.0.join(""))
            .unwrap_or_default();
        assert!(said.contains("--worker-agent codex"), "{said}");
        assert!(validate(&plan(vec![t.clone()]), &HashSet::new(), &[], true).is_ok());
        t.agent = Some(orchestrator_proto::Agent::Claude);
        assert!(validate(&plan(vec![t]), &HashSet::new(), &[], false).is_ok());
    }

    fn problems(p: &PlanInput) -> Vec<String> {
        validate(p, &HashSet::new(), &["sonnet", "opus"], false)
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
    }

    /// Every id the plan accepts names a branch git can hold (the ids `v1.` and `a..b` used to
    /// pass, then fail every dispatch); refused ones are listed with a usable suggestion.
    #[test]
    fn every_accepted_id_is_a_branch_git_can_hold() {
        let alphabet = ['a', '.', '-', '_', '1'];
        let mut ids: Vec<String> = vec!["v1.".into(), "a..b".into(), ".x".into(), "x.lock".into()];
        for len in 1..=3 {
            let mut idx = vec![0usize; len];
            loop {
                ids.push(idx.iter().map(|i| alphabet[*i]).collect());
                let mut k = 0;
                while k < len {
                    idx[k] += 1;
                    if idx[k] < alphabet.len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
                if k == len {
                    break;
                }
            }
        }
        let git_ok = |id: &str| {
            std::process::Command::new("git")
                .args(["check-ref-format", "--branch"])
                .arg(format!("orchestrate/feature--{id}.1"))
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let mut refused = 0;
        for id in &ids {
            let problems = problems(&plan(vec![task(id, &[])]));
            if problems.is_empty() {
                assert!(
                    git_ok(id),
                    "{id:?} was accepted but git cannot hold its branch"
                );
            } else {
                refused += 1;
                let s = suggest(id);
                assert!(
                    valid_id(&s) && git_unfit(&s).is_none() && git_ok(&s),
                    "{id:?} → {s:?}"
                );
            }
        }
        assert!(refused >= 4, "the known bad ids are refused");
        let p = problems(&plan(vec![task("v1.", &[]), task("a..b", &[])]));
        assert_eq!(p.len(), 2, "both listed at once: {p:?}");
        assert!(
            p[0].contains("must not end with '.'") && p[0].contains("\"v1\""),
            "{p:?}"
        );
    }

    #[test]
    fn a_good_plan_passes() {
        let p = plan(vec![
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["a", "b"]),
        ]);
        assert_eq!(problems(&p), Vec::<String>::new());
    }

    #[test]
    fn each_bad_shape_is_named() {
        let cases: Vec<(PlanInput, &str)> = vec![
            (plan(vec![]), "tasks is empty"),
            (
                plan((0..201).map(|i| task(&format!("t{i}"), &[])).collect()),
                "at most 200",
            ),
            (plan(vec![task("a", &[]), task("a", &[])]), "used twice"),
            (plan(vec![task("a b", &[])]), "id must be"),
            (
                plan(vec![task("a", &["zz"])]),
                "\"zz\", which is not a task",
            ),
            (plan(vec![task("a", &["a"])]), "depends on itself"),
            (
                plan(vec![
                    task("a", &["c"]),
                    task("b", &["a"]),
                    task("c", &["b"]),
                ]),
                "cycle (a -> c -> b -> a)",
            ),
            (
                {
                    let mut t = task("a", &[]);
                    t.acceptance_criteria.clear();
                    plan(vec![t])
                },
                "acceptance_criteria is empty",
            ),
            (
                {
                    let mut t = task("a", &[]);
                    t.title = " ".into();
                    plan(vec![t])
                },
                "title is empty",
            ),
            (
                {
                    let mut p = plan(vec![task("a", &[])]);
                    p.summary = "x".repeat(MAX_TEXT + 1);
                    p
                },
                "summary is 20001 bytes",
            ),
        ];
        for (p, needle) in cases {
            let found = problems(&p);
            assert!(
                found.iter().any(|f| f.contains(needle)),
                "expected {needle:?} in {found:?}"
            );
        }
    }

    #[test]
    fn ids_of_earlier_plans_are_taken_but_can_be_depended_on() {
        let existing: HashSet<String> = ["old".to_owned()].into();
        let p = plan(vec![task("old", &[])]);
        assert!(validate(&p, &existing, &[], false).is_err());
        let p = plan(vec![task("new", &["old"])]);
        assert!(validate(&p, &existing, &[], false).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// An id the plan accepts always makes a branch git accepts (checked by git itself).
        #[test]
        fn an_accepted_id_is_always_a_valid_branch(id in "[A-Za-z0-9._/@{}~^:?*\\[\\\\ -]{1,24}") {
            let accepted = validate(&plan(vec![task(&id, &[])]), &HashSet::new(), &[], false).is_ok();
            if accepted {
                let branch = format!("orchestrate/feature--{id}.1");
                let ok = std::process::Command::new("git")
                    .args(["check-ref-format", "--branch", &branch])
                    .output()
                    .expect("git")
                    .status
                    .success();
                proptest::prop_assert!(ok, "accepted {id:?}, but git refuses {branch:?}");
            }
        }

        /// Dependencies only on earlier tasks never form a cycle; one edge back to a later
        /// task that reaches the earlier one does, and the cycle found is made of real edges
        /// and returns to where it started.
        #[test]
        fn a_cycle_is_found_exactly_when_there_is_one(
            n in 2usize..12,
            edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
            back in (0usize..12, 0usize..12),
        ) {
            let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if b < a && !deps[a].contains(&ids[b]) {
                    deps[a].push(ids[b].clone());
                }
            }
            let build = |deps: &Vec<Vec<String>>| {
                let tasks = (0..n)
                    .map(|i| {
                        let d: Vec<&str> = deps[i].iter().map(String::as_str).collect();
                        task(&ids[i], &d)
                    })
                    .collect();
                plan(tasks)
            };
            proptest::prop_assert_eq!(find_cycle(&build(&deps)), None);
            // A chain from `hi` down to `lo` and an edge back from `lo` to `hi`.
            let (lo, hi) = (back.0 % n, back.1 % n);
            let (lo, hi) = (lo.min(hi), lo.max(hi).max(lo.min(hi) + 1).min(n - 1));
            proptest::prop_assume!(lo < hi);
            for i in lo + 1..=hi {
                if !deps[i].contains(&ids[i - 1]) {
                    deps[i].push(ids[i - 1].clone());
                }
            }
            deps[lo].push(ids[hi].clone());
            let with_cycle = build(&deps);
            let cycle = find_cycle(&with_cycle);
            proptest::prop_assert!(cycle.is_some(), "no cycle found in {deps:?}");
            let cycle = cycle.unwrap_or_default();
            proptest::prop_assert_eq!(cycle.first(), cycle.last(), "{:?}", cycle);
            for pair in cycle.windows(2) {
                let from = with_cycle.tasks.iter().find(|t| t.id == pair[0]);
                let real = from.is_some_and(|t| t.depends_on.contains(&pair[1]));
                proptest::prop_assert!(real, "{} -> {} is not an edge: {:?}", pair[0], pair[1], cycle);
            }
        }
    }
}
