//! `POST /v1/ui/login`: a one-time login URL for the web dashboard, handed to a browser by
//! `orchestrate ui`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiLogin {
    /// Open this run's page rather than the runs page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiLoginUrl {
    /// Works once, within `expires_in_secs`: it sets the browser's session cookie.
    pub url: String,
    pub expires_in_secs: u64,
}
