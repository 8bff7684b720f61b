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
