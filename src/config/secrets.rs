//! Secrets given as files (`NAME_FILE`, the Docker and systemd convention), and the shortest secret accepted.

use super::*;

/// The shortest signing secret accepted: `whsec_` and 6 more.
pub(super) const MIN_SECRET_LEN: usize = 12;

/// Variables that hold secrets. Each can be given as `NAME_FILE`, a file holding the value (the
/// Docker and Kubernetes secrets convention): never both, and a file named is always used.
pub const SECRET_VARIABLES: &[&str] = &[
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_SECRET_KEY",
    "INTERNAL_SERVICE_TOKEN",
    "PAYHOOK_ADMIN_TOKEN",
    "DATABASE_URL",
];

/// `env` with each `NAME_FILE` of [`SECRET_VARIABLES`] read into `NAME` (trailing newlines
/// trimmed). Naming both forms, or a file that cannot be read or is empty, is an error naming the
/// variable and the file.
pub fn secrets_from_files(
    env: &HashMap<String, String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut env = env.clone();
    for name in SECRET_VARIABLES {
        let file_key = format!("{name}_FILE");
        let Some(path) = env.get(&file_key).map(|p| p.trim().to_string()) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if env.get(*name).is_some_and(|v| !v.trim().is_empty()) {
            return Err(ConfigError::new(
                file_key,
                format!("{name} is set too: set one of {name} and {name}_FILE, not both"),
            ));
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(&file_key, format!("cannot read {path}: {e}")))?;
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        if value.trim().is_empty() {
            return Err(ConfigError::new(&file_key, format!("{path} is empty")));
        }
        env.insert(name.to_string(), value);
    }
    Ok(env)
}

/// The secrets in the file a `*_file` key of `payhook.toml` names (`token_file`, `secret_file`,
/// `secrets_file`): one a line (several during a rotation, the new one first), blank lines and
/// surrounding spaces ignored. A file that cannot be read or holds none is an error naming the
/// key and the path, never the content.
pub(super) fn secrets_in_file(key: &str, path: &str) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {path}: {e}")))?;
    let secrets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::new(key, format!("{path} is empty")));
    }
    Ok(secrets)
}

/// A value given in `payhook.toml` either as itself (`key`) or in a file (`key_file`): one of
/// the two, not both.
pub(super) fn inline_or_file(
    inline: Option<Vec<String>>,
    file: Option<String>,
    key: &str,
) -> Result<Option<Vec<String>>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{key}_file"),
            format!("{key} is set too: give one of {key} and {key}_file, not both"),
        )),
        (inline, None) => Ok(inline),
        (None, Some(path)) => secrets_in_file(&format!("{key}_file"), path.trim()).map(Some),
    }
}
