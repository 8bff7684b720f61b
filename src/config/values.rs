//! Reading one value: from the environment first, then the file, remembering which key gave it, and the parsers every section shares (URLs, booleans, secrets, networks, durations).

use super::*;

/// Looks a value up in the environment first, then in the file, remembering which key supplied it.
pub(super) struct Values<'a> {
    pub(super) env: &'a HashMap<String, String>,
    /// The configuration file, as errors name it.
    pub(super) file: &'a str,
}

impl Values<'_> {
    pub(super) fn raw(&self, env_key: &str) -> Option<&str> {
        self.env
            .get(env_key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub(super) fn string(
        &self,
        env_key: &str,
        file_key: &str,
        file_value: Option<String>,
    ) -> Option<(String, String)> {
        match self.raw(env_key) {
            Some(value) => Some((value.to_string(), env_key.to_string())),
            None => file_value
                .filter(|s| !s.trim().is_empty())
                .map(|value| (value, format!("{} {file_key}", self.file))),
        }
    }

    pub(super) fn addr(
        &self,
        env_key: &str,
        file_key: &str,
        file_value: Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let (value, key) = self
            .string(env_key, file_key, file_value)
            .unwrap_or_else(|| (default.to_string(), env_key.to_string()));
        value.parse().map_err(|_| {
            ConfigError::new(
                key,
                format!("{value:?} is not a socket address (expected IP:PORT, e.g. {default})"),
            )
        })
    }
}

pub(super) fn check_http_url(url: &str, key: &str) -> Result<(), ConfigError> {
    let valid = reqwest::Url::parse(url)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false);
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{:?} is not an http(s) URL", crate::app::redact_url(url)),
        ))
    }
}

/// A true-or-false setting (`true`/`false`, `1`/`0`, `yes`/`no`), when it is set.
pub(super) fn boolean(set: Option<(String, String)>) -> Result<Option<bool>, ConfigError> {
    let Some((text, key)) = set else {
        return Ok(None);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(ConfigError::new(
            key,
            format!("{text:?} is not true or false"),
        )),
    }
}

pub(super) fn parse_secret_list(key: &str, raw: Vec<String>) -> Result<Vec<Secret>, ConfigError> {
    raw.into_iter()
        .map(|s| s.trim().to_string())
        .enumerate()
        .map(|(i, s)| {
            if s.is_empty() {
                Err(ConfigError::new(
                    key,
                    format!("secret #{} is empty (check for a stray comma)", i + 1),
                ))
            } else if !s.starts_with("whsec_") {
                Err(ConfigError::new(
                    key,
                    format!(
                        "secret #{} does not start with whsec_: copy the endpoint's signing secret (whsec_...), not an API key",
                        i + 1
                    ),
                ))
            } else if s.len() < MIN_SECRET_LEN {
                Err(ConfigError::new(
                    key,
                    format!(
                        "secret #{} is {} characters long, too short for a signing secret (at least {MIN_SECRET_LEN}; Stripe's are whsec_ and 32 more): was it cut when copied?",
                        i + 1,
                        s.len()
                    ),
                ))
            } else {
                Ok(Secret::new(s))
            }
        })
        .collect()
}

pub(super) fn parse_cidr(key: &str, value: &str) -> Result<IpNet, ConfigError> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                key,
                format!("{value:?} is not an IP network (e.g. 10.0.0.0/8)"),
            )
        })
}

pub(super) fn positive(
    key: &str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(key, "must be greater than 0")),
        Some(v) => Ok(v),
    }
}

pub(super) fn parse_duration_or(
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    parse_duration(key, value.as_deref().unwrap_or(default))
}

/// A duration as `humantime` reads it: `250ms`, `30s`, `5m`, `1h 30m`, `2 days`.
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::new(
            key,
            format!("{text:?} is not a duration ({e}); write e.g. \"30s\", \"5m\" or \"1h 30m\""),
        )
    })
}
