//! `GET /v1/runs/{id}/reviews`: what each Codex review of a run concluded, and the ledger of
//! its findings (open, fixed, recurring) under their stable ids.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One review: of the plan or of a cycle's code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub id: u64,
    /// `plan` or `code`.
    pub kind: String,
    pub cycle: u32,
    /// `approved`, `changes` or `failed`.
    pub outcome: String,
    pub summary: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One finding of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// `P3` (plan) or `F7` (code).
    pub id: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The reviews that first and last raised it.
    pub first_review: u64,
    pub last_review: u64,
    /// How many reviews raised it: 2 or more is a recurring finding.
    pub raised: u32,
    /// `open` or `resolved`.
    pub status: String,
    /// P0 and P1 block.
    pub blocking: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewList {
    pub reviews: Vec<Review>,
    pub findings: Vec<Finding>,
}
