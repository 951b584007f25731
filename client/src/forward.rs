//! Which variables of the user's shell a run's sessions get beyond the ones always forwarded
//! (`orchestrator_proto::env`): `--env NAME`, `[agents] forward_env` of the config file (the
//! daemon's file; the CLI reads this one key), and the `env_key` of the Codex provider that
//! `$CODEX_HOME/config.toml` selects — a review fails without it, whatever it is called
//! (`AZURE_OPENAI_API_KEY`, `OPENROUTER_API_KEY`, …).

use std::path::PathBuf;

/// The extra names, deduplicated, `--env` first.
pub fn names(given: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let extra = given
        .iter()
        .cloned()
        .chain(configured())
        .chain(codex_provider().and_then(|p| p.env_key));
    for n in extra {
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// `[agents] forward_env` of the config file, if it has one.
fn configured() -> Vec<String> {
    let Some(path) = orchestrator_proto::locate::config_file() else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(v) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    v.get("agents")
        .and_then(|a| a.get("forward_env"))
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The Codex provider `$CODEX_HOME/config.toml` selects (its profile's, else the top level's).
#[derive(Debug, PartialEq)]
pub struct CodexProvider {
    pub name: String,
    pub env_key: Option<String>,
    pub config: PathBuf,
}

pub fn codex_provider() -> Option<CodexProvider> {
    let home = std::env::var_os("CODEX_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))?;
    let config = home.join("config.toml");
    let text = std::fs::read_to_string(&config).ok()?;
    provider_of(&text, config)
}

fn provider_of(text: &str, config: PathBuf) -> Option<CodexProvider> {
    let v = text.parse::<toml::Table>().ok()?;
    let profile = v
        .get("profile")
        .and_then(|p| p.as_str())
        .and_then(|p| v.get("profiles")?.get(p));
    let name = profile
        .and_then(|p| p.get("model_provider"))
        .or_else(|| v.get("model_provider"))
        .and_then(|n| n.as_str())?
        .to_owned();
    let env_key = v
        .get("model_providers")
        .and_then(|m| m.get(&name))
        .and_then(|p| p.get("env_key"))
        .and_then(|k| k.as_str())
        .map(str::to_owned);
    Some(CodexProvider {
        name,
        env_key,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_providers_key_is_found_through_a_profile_too() {
        let top = "model_provider = \"azure\"\n[model_providers.azure]\nenv_key = \"AZURE_OPENAI_API_KEY\"\n";
        let p = provider_of(top, "c".into()).expect("a provider");
        assert_eq!(p.env_key.as_deref(), Some("AZURE_OPENAI_API_KEY"));
        let profiled = "profile = \"work\"\nmodel_provider = \"openai\"\n[profiles.work]\n\
                        model_provider = \"or\"\n[model_providers.or]\nenv_key = \"OPENROUTER_API_KEY\"\n";
        let p = provider_of(profiled, "c".into()).expect("a provider");
        assert_eq!(p.name, "or");
        assert_eq!(p.env_key.as_deref(), Some("OPENROUTER_API_KEY"));
        assert!(provider_of("model = \"x\"\n", "c".into()).is_none());
    }
}
