//! The verdict Codex must return: the JSON Schema handed to `codex exec --output-schema`, and
//! its lenient-but-checked parsing (a fenced block is unwrapped; anything else that does not
//! fit the schema is a malformed verdict, which the review retries once).

use serde::Deserialize;

/// The schema, in the strict form OpenAI structured outputs accept: every property required,
/// no additional properties, optional values as `null`.
pub const SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["verdict", "summary", "findings"],
  "properties": {
    "verdict": {"type": "string", "enum": ["approve", "revise"]},
    "summary": {"type": "string"},
    "findings": {
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["ref", "priority", "title", "body", "file", "line"],
        "properties": {
          "ref": {"type": ["string", "null"]},
          "priority": {"type": "string", "enum": ["P0", "P1", "P2", "P3"]},
          "title": {"type": "string"},
          "body": {"type": "string"},
          "file": {"type": ["string", "null"]},
          "line": {"type": ["integer", "null"]}
        }
      }
    }
  }
}
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub verdict: Decision,
    pub summary: String,
    pub findings: Vec<RawFinding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Revise,
}

/// A finding as Codex states it; the ledger gives it its stable id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFinding {
    /// The ledger id of the same problem raised before, if Codex says it is one.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub priority: Priority,
    pub title: String,
    pub body: String,
    pub file: Option<String>,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P0 => "P0",
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
        }
    }
}

impl RawFinding {
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_deref()?.trim();
        if file.is_empty() {
            return None;
        }
        Some(match self.line {
            Some(l) => format!("{file}:{l}"),
            None => file.to_owned(),
        })
    }
}

/// Parses Codex's last message. Why it is not a verdict, otherwise.
pub fn parse(text: &str) -> Result<Verdict, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(t);
    if t.is_empty() {
        return Err("Codex returned an empty message instead of a verdict".into());
    }
    let v: Verdict = serde_json::from_str(t).map_err(|e| {
        let shown: String = t.chars().take(200).collect();
        format!("Codex's answer is not a verdict of the requested schema ({e}): {shown}")
    })?;
    const MAX_FINDINGS: usize = 50;
    if v.findings.len() > MAX_FINDINGS {
        return Err(format!(
            "Codex returned {} findings; at most {MAX_FINDINGS} are accepted",
            v.findings.len()
        ));
    }
    if let Some(f) = v.findings.iter().find(|f| f.title.trim().is_empty()) {
        return Err(format!("a finding has an empty title: {f:?}"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_a_conforming_verdict_parses() {
        let _: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
        let v = parse(
            "```json\n{\"verdict\":\"revise\",\"summary\":\"s\",\"findings\":[{\"ref\":null,\
             \"priority\":\"P1\",\"title\":\"t\",\"body\":\"b\",\"file\":\"src/a.rs\",\"line\":3}]}\n```",
        )
        .expect("parses");
        assert_eq!(v.verdict, Decision::Revise);
        assert_eq!(v.findings[0].location().as_deref(), Some("src/a.rs:3"));
    }

    #[test]
    fn malformed_verdicts_say_why() {
        assert!(parse("").expect_err("malformed").contains("empty"));
        assert!(
            parse("looks good to me")
                .expect_err("malformed")
                .contains("not a verdict")
        );
        let unknown = r#"{"verdict":"approve","summary":"s","findings":[],"extra":1}"#;
        assert!(parse(unknown).is_err());
        let bad_priority = r#"{"verdict":"approve","summary":"s","findings":[{"ref":null,"priority":"high","title":"t","body":"b","file":null,"line":null}]}"#;
        assert!(parse(bad_priority).is_err());
    }

    proptest::proptest! {
        /// Whatever codex writes as its last message, parsing it never panics.
        #[test]
        fn any_text_is_a_verdict_or_a_reason(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_json_shape_is_a_verdict_or_a_reason(
            verdict in "[a-z]{0,10}",
            priority in "[A-Z0-9]{0,3}",
            line in proptest::prelude::any::<i64>(),
        ) {
            let text = format!(
                "{{\"verdict\":\"{verdict}\",\"summary\":\"s\",\"findings\":[{{\"ref\":null,\"priority\":\"{priority}\",\"title\":\"t\",\"body\":\"b\",\"file\":null,\"line\":{line}}}]}}"
            );
            let _ = parse(&text);
        }
    }
}
