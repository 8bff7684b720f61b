//! The shape of `payhook.toml`. Unknown keys are errors, so a typo does not silently fall back to a default.

use super::*;

/// The shape of `payhook.toml`. Unknown keys are errors, so a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    /// The file's path as given, for messages (`payhook.toml` when there is none).
    #[serde(skip)]
    pub(super) path: Option<String>,
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) database_url: Option<String>,
    pub(super) booking_service_url: Option<String>,
    pub(super) internal_service_token: Option<String>,
    pub(super) admin_token: Option<String>,
    pub(super) stripe: Option<StripeFile>,
    pub(super) ingest: Option<IngestFile>,
    pub(super) log: Option<LogFile>,
    pub(super) sqlite: Option<SqliteFile>,
    pub(super) processor: Option<ProcessorFile>,
    pub(super) retention: Option<RetentionFile>,
    pub(super) targets: Option<Vec<TargetFile>>,
    pub(super) sources: Option<Vec<sources::SourceFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetentionFile {
    pub(super) payloads: Option<String>,
    pub(super) batch: Option<usize>,
    pub(super) pause: Option<String>,
    pub(super) every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetFile {
    pub(super) name: Option<String>,
    pub(super) kind: Option<TargetKind>,
    pub(super) url: Option<String>,
    pub(super) token: Option<String>,
    /// A file holding the token (a Docker or systemd secret).
    pub(super) token_file: Option<String>,
    pub(super) secret: Option<OneOrMore>,
    /// A file holding the secret, or one a line during a rotation.
    pub(super) secret_file: Option<String>,
    pub(super) events: Option<Vec<String>>,
    pub(super) retry_schedule: Option<Vec<String>>,
    pub(super) timeout: Option<String>,
    pub(super) concurrency: Option<usize>,
    pub(super) circuit_failures: Option<u32>,
    pub(super) circuit_open: Option<String>,
}

/// One text, or a list of them (an events target's secrets during a rotation).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMore::One(one) => vec![one],
            OneOrMore::More(more) => more,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProcessorFile {
    pub(super) max_attempts: Option<usize>,
    pub(super) retry_initial_ms: Option<usize>,
    pub(super) retry_max_ms: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StripeFile {
    pub(super) webhook_secrets: Option<Vec<String>>,
    pub(super) secret_key: Option<String>,
    pub(super) api_base: Option<String>,
    pub(super) tolerance_secs: Option<u64>,
    pub(super) allowed_cidrs: Option<Vec<String>>,
    pub(super) reconcile_every: Option<String>,
    pub(super) reconcile_window: Option<String>,
    pub(super) ask_provider_after: Option<String>,
    pub(super) sandbox_thin_events: Option<bool>,
    pub(super) sandbox: Option<bool>,
    pub(super) routes: Option<Vec<String>>,
    pub(super) confirm: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestFile {
    pub(super) max_body_bytes: Option<usize>,
    pub(super) batch_max: Option<usize>,
    pub(super) writers: Option<usize>,
    pub(super) rate_limit_per_ip: Option<u32>,
    pub(super) retry_after_secs: Option<u64>,
    pub(super) read_timeout: Option<String>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFile {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SqliteFile {
    pub(super) synchronous: Option<SqliteSync>,
}

impl FileConfig {
    /// Parses the text of the file at `path` (named in errors).
    pub(super) fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = without_values(e.message());
            let key = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    match key_at(text, span.start) {
                        Some(key) => format!("{path} line {line} ({key})"),
                        None => format!("{path} line {line}"),
                    }
                }
                None => path.to_string(),
            };
            ConfigError::new(key, message)
        })
    }
}

/// The dotted key whose value starts at `at` (`stripe.webhook_secrets`), from the line's `key =`
/// and the table header above it; none when the error is not at a value.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text[..at].rfind('\n').map_or(0, |n| n + 1);
    let (key, _) = text[start..at].split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let table = text[..start].lines().rev().find_map(|line| {
        let line = line.trim();
        line.starts_with('[').then(|| {
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        })
    });
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// serde's message without the value it quotes (`invalid type: string "whsec_..."`): the value
/// may be a secret, and the key is named beside the message.
fn without_values(message: &str) -> String {
    if message.contains("did not match any variant of untagged enum") {
        return "not a value this key takes (docs/configuration.md lists each key's form)".into();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        let quoted = &rest[at + "string \"".len()..];
        // The value is written with Rust's escapes: its end is the first unescaped quote.
        let mut escaped = false;
        let end = quoted
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(quoted.len(), |(i, _)| i + 1);
        rest = &quoted[end..];
    }
    out.push_str(rest);
    out
}
