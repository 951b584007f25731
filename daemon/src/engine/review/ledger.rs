//! The findings ledger: each finding a review raises gets a stable id (`P<n>` for plan
//! concerns, `F<n>` for code findings). A finding raised again — Codex names its id, or it has
//! the same title at the same file — is the same entry with its `raised` count bumped; entries
//! a round does not raise are resolved. The counts are what stop a review from looping.

use super::verdict::RawFinding;
use crate::store::reviews::{FindingRow, FindingStatus, ReviewKind};
use orchestrator_proto::EscalationKind;

/// The ledger after one review: every entry of its kind, changed or not, plus the ids this
/// round raised, in Codex's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub ledger: Vec<FindingRow>,
    pub raised: Vec<String>,
}

impl Round {
    /// The entries this round raised.
    pub fn raised_rows(&self) -> impl Iterator<Item = &FindingRow> {
        self.raised
            .iter()
            .filter_map(|id| self.ledger.iter().find(|f| &f.id == id))
    }

    /// The blocking entries this round raised.
    pub fn blocking(&self) -> Vec<&FindingRow> {
        self.raised_rows().filter(|f| f.blocking()).collect()
    }
}

fn words(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_of(location: Option<&str>) -> Option<&str> {
    location.map(|l| l.split(':').next().unwrap_or(l))
}

/// Applies one review's findings to the ledger of `kind`.
pub fn apply(kind: ReviewKind, ledger: &[FindingRow], found: &[RawFinding], review: u64) -> Round {
    let mut next: Vec<FindingRow> = ledger.to_vec();
    let mut raised: Vec<String> = Vec::new();
    let mut counter = ledger
        .iter()
        .filter_map(|f| f.id.strip_prefix(kind.prefix())?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    for f in found {
        let location = f.location();
        let by_ref = f.reference.as_deref().map(str::trim).and_then(|r| {
            next.iter()
                .position(|e| e.id.eq_ignore_ascii_case(r) && !raised.contains(&e.id))
        });
        let by_title = || {
            let (t, file) = (words(&f.title), file_of(location.as_deref()));
            next.iter().position(|e| {
                !raised.contains(&e.id)
                    && words(&e.title) == t
                    && (file.is_none()
                        || file_of(e.location.as_deref()).is_none()
                        || file == file_of(e.location.as_deref()))
            })
        };
        match by_ref.or_else(by_title) {
            Some(i) => {
                let e = &mut next[i];
                e.raised += 1;
                e.last_review = review;
                e.status = FindingStatus::Open;
                e.priority = f.priority.as_str().into();
                e.body = f.body.clone();
                if location.is_some() {
                    e.location = location;
                }
                raised.push(e.id.clone());
            }
            None => {
                counter += 1;
                let id = format!("{}{counter}", kind.prefix());
                next.push(FindingRow {
                    id: id.clone(),
                    kind,
                    priority: f.priority.as_str().into(),
                    title: f.title.trim().into(),
                    body: f.body.clone(),
                    location,
                    first_review: review,
                    last_review: review,
                    raised: 1,
                    status: FindingStatus::Open,
                });
                raised.push(id);
            }
        }
    }
    for e in &mut next {
        if !raised.contains(&e.id) {
            e.status = FindingStatus::Resolved;
        }
    }
    Round {
        ledger: next,
        raised,
    }
}

/// What a code review means for the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Nothing blocking is left: the run is done.
    Done,
    /// Another cycle fixes these (blocking) findings.
    Cycle(Vec<String>),
    /// A human is needed: `kind`, the question, the evidence.
    Escalate {
        kind: orchestrator_proto::EscalationKind,
        question: String,
        evidence: String,
    },
}

/// Raised this many times, a blocking finding escalates: its second recurrence.
pub const ESCALATE_AT: u32 = 3;

/// Decides after a code review in `cycle` of at most `max_cycles`.
pub fn decide(round: &Round, cycle: u32, max_cycles: u32) -> Next {
    let blocking = round.blocking();
    if blocking.is_empty() {
        return Next::Done;
    }
    let stuck: Vec<&&FindingRow> = blocking
        .iter()
        .filter(|f| f.raised >= ESCALATE_AT)
        .collect();
    if !stuck.is_empty() {
        let mut evidence = String::new();
        for f in &stuck {
            evidence.push_str(&format!(
                "{} [{}] {}{} — raised by {} reviews despite {} fix cycles. Codex still says: {}\n",
                f.id,
                f.priority,
                f.title,
                f.location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default(),
                f.raised,
                f.raised - 1,
                f.body.trim()
            ));
        }
        let ids: Vec<&str> = stuck.iter().map(|f| f.id.as_str()).collect();
        return Next::Escalate {
            kind: EscalationKind::ReviewNotConverging,
            question: format!(
                "Codex keeps raising {} after fix attempts. Should the workers fix it another way \
                 (say how), or is it acceptable as it is?",
                ids.join(", ")
            ),
            evidence,
        };
    }
    let ids: Vec<String> = blocking.iter().map(|f| f.id.clone()).collect();
    if cycle >= max_cycles {
        let evidence = blocking
            .iter()
            .map(|f| format!("{} [{}] {}: {}", f.id, f.priority, f.title, f.body.trim()))
            .collect::<Vec<_>>()
            .join("\n");
        return Next::Escalate {
            kind: EscalationKind::MaxCycles,
            question: format!(
                "The run used all {max_cycles} cycles and Codex still reports blocking findings \
                 ({}). Run another cycle with your guidance, or stop here?",
                ids.join(", ")
            ),
            evidence,
        };
    }
    Next::Cycle(ids)
}

#[cfg(test)]
mod tests {
    use super::super::verdict::Priority;
    use super::*;

    fn raw(reference: Option<&str>, p: Priority, title: &str, file: Option<&str>) -> RawFinding {
        RawFinding {
            reference: reference.map(str::to_owned),
            priority: p,
            title: title.into(),
            body: format!("body of {title}"),
            file: file.map(str::to_owned),
            line: Some(7),
        }
    }

    #[test]
    fn ids_are_stable_and_recurrences_are_counted() {
        let r1 = apply(
            ReviewKind::Code,
            &[],
            &[
                raw(None, Priority::P1, "Unchecked unwrap", Some("src/a.rs")),
                raw(None, Priority::P3, "Typo in doc", None),
            ],
            1,
        );
        assert_eq!(r1.raised, ["F1", "F2"]);
        assert_eq!(decide(&r1, 1, 5), Next::Cycle(vec!["F1".into()]));

        // Same problem by title (different case and punctuation), a new one, F2 gone.
        let r2 = apply(
            ReviewKind::Code,
            &r1.ledger,
            &[
                raw(None, Priority::P1, "unchecked unwrap!", Some("src/a.rs")),
                raw(None, Priority::P0, "Data race", Some("src/b.rs")),
            ],
            2,
        );
        assert_eq!(r2.raised, ["F1", "F3"]);
        let f1 = r2.ledger.iter().find(|f| f.id == "F1").expect("F1");
        assert_eq!((f1.raised, f1.status), (2, FindingStatus::Open));
        let f2 = r2.ledger.iter().find(|f| f.id == "F2").expect("F2");
        assert_eq!(f2.status, FindingStatus::Resolved);
        assert_eq!(
            decide(&r2, 2, 5),
            Next::Cycle(vec!["F1".into(), "F3".into()])
        );

        // Codex names F1 by its id: the second recurrence escalates with the evidence.
        let r3 = apply(
            ReviewKind::Code,
            &r2.ledger,
            &[raw(Some("F1"), Priority::P1, "Panics on bad input", None)],
            3,
        );
        assert_eq!(r3.raised, ["F1"]);
        match decide(&r3, 3, 5) {
            Next::Escalate { kind, evidence, .. } => {
                assert_eq!(kind, EscalationKind::ReviewNotConverging);
                assert!(
                    evidence.contains("F1") && evidence.contains("3 reviews"),
                    "{evidence}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_blocking_rounds_are_done_and_the_last_cycle_escalates() {
        let r = apply(
            ReviewKind::Code,
            &[],
            &[raw(None, Priority::P2, "Naming", None)],
            1,
        );
        assert_eq!(decide(&r, 1, 1), Next::Done);
        let r = apply(
            ReviewKind::Code,
            &[],
            &[raw(None, Priority::P0, "Broken build", None)],
            1,
        );
        assert!(matches!(
            decide(&r, 2, 2),
            Next::Escalate {
                kind: EscalationKind::MaxCycles,
                ..
            }
        ));
    }

    #[test]
    fn one_entry_is_matched_once_and_plan_ids_have_their_prefix() {
        let r = apply(
            ReviewKind::Plan,
            &[],
            &[
                raw(None, Priority::P1, "Same", None),
                raw(None, Priority::P1, "Same", None),
            ],
            1,
        );
        assert_eq!(r.raised, ["P1", "P2"]);
    }
}
