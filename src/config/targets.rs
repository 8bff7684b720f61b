//! Where ledger changes are delivered: `[[targets]]`, and the `booking-service` target `BOOKING_SERVICE_URL` makes.

use super::*;

/// What a target receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// The booking service contract: `PUT {url}/api/v1/bookings/{bookingId}/payment-status`.
    BookingStatus,
    /// payhook's own events, `POST {url}`, signed with the Standard Webhooks scheme.
    Events,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BookingStatus => "booking-status",
            TargetKind::Events => "events",
        }
    }
}

/// One notification target and its delivery policy.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub name: String,
    pub kind: TargetKind,
    pub url: String,
    /// Bearer token sent to a `booking-status` target.
    pub token: Option<Secret>,
    /// `whsec_...` signing secret of an `events` target.
    pub secret: Option<Secret>,
    /// The payhook events an `events` target receives; empty: all of them.
    pub events: Vec<String>,
    /// Wait before each attempt: the first entry before the first attempt, and so on; a
    /// notification still failing after the last entry is dead.
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    /// Notifications in flight at once (each for a different booking).
    pub concurrency: usize,
    /// Attempts within the circuit's window (20 s) before its failure rate is judged: at least
    /// this many, half of them or more failing, open it.
    pub circuit_failures: u32,
    /// How long an open circuit waits before its first probe; doubles while probes fail, up to
    /// 10 s (or this, if longer).
    pub circuit_open: Duration,
}

/// The name of the target `BOOKING_SERVICE_URL` enables.
pub const BOOKING_SERVICE_TARGET: &str = "booking-service";

/// The default retry schedule: about 0 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h.
pub const DEFAULT_RETRY_SCHEDULE: [&str; 11] = [
    "0s", "5s", "30s", "2m", "10m", "30m", "1h", "3h", "6h", "12h", "24h",
];

/// The `booking-service` target `BOOKING_SERVICE_URL` would make, with its defaults.
pub fn booking_service_target(
    url: &str,
    token: Option<&Secret>,
) -> Result<TargetSettings, ConfigError> {
    let mut targets = targets_from(Vec::new(), Some(url), token)?;
    Ok(targets.remove(0))
}

/// Builds the targets: every `[[targets]]` entry, and `booking-service` from `BOOKING_SERVICE_URL`
/// (whose URL, when a `[[targets]]` entry has that name too, replaces the entry's).
pub(super) fn targets_from(
    files: Vec<TargetFile>,
    booking_service_url: Option<&str>,
    internal_token: Option<&Secret>,
) -> Result<Vec<TargetSettings>, ConfigError> {
    let mut files = files;
    if let Some(url) = booking_service_url
        && !files
            .iter()
            .any(|f| f.name.as_deref() == Some(BOOKING_SERVICE_TARGET))
    {
        files.push(TargetFile {
            name: Some(BOOKING_SERVICE_TARGET.into()),
            kind: Some(TargetKind::BookingStatus),
            url: Some(url.to_string()),
            ..TargetFile::default()
        });
    }
    let mut targets: Vec<TargetSettings> = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let key = |field: &str| format!("targets[{i}].{field}");
        let name = file
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ConfigError::new(key("name"), "required"))?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?}: use letters, digits, - and _"),
            ));
        }
        if targets.iter().any(|t| t.name == name) {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let kind = file.kind.ok_or_else(|| {
            ConfigError::new(key("kind"), "required: \"booking-status\" or \"events\"")
        })?;
        // BOOKING_SERVICE_URL names the booking-service target's URL, and env wins over the file.
        let env_url = booking_service_url.filter(|_| name == BOOKING_SERVICE_TARGET);
        let url = env_url
            .map(str::to_string)
            .or(file.url)
            .ok_or_else(|| ConfigError::new(key("url"), "required"))?;
        check_http_url(&url, &key("url"))?;
        let token = super::secrets::inline_or_file(
            file.token.map(|t| vec![t]),
            file.token_file,
            &key("token"),
        )?
        .and_then(|t| t.into_iter().next())
        .map(Secret::new)
        .or_else(|| (kind == TargetKind::BookingStatus).then(|| internal_token.cloned())?);
        let secret = super::secrets::inline_or_file(
            file.secret.map(OneOrMore::into_vec),
            file.secret_file,
            &key("secret"),
        )?;
        let secret = match (kind, secret) {
            (TargetKind::Events, None) => {
                return Err(ConfigError::new(
                    key("secret"),
                    "required for an events target (whsec_ followed by base64, as Standard Webhooks defines)",
                ));
            }
            (TargetKind::Events, Some(secrets)) => {
                if secrets.is_empty()
                    || secrets
                        .iter()
                        .any(|s| crate::providers::standard::signing_key(s).is_none())
                {
                    return Err(ConfigError::new(
                        key("secret"),
                        "expected whsec_ followed by a base64 key of 24 to 64 bytes (or a list \
                         of them during a rotation, the new one first)",
                    ));
                }
                // Kept as Standard Webhooks writes several: separated by spaces.
                Some(Secret::new(secrets.join(" ")))
            }
            (TargetKind::BookingStatus, Some(_)) => {
                return Err(ConfigError::new(
                    key("secret"),
                    "only events targets sign; a booking-status target takes a token",
                ));
            }
            (TargetKind::BookingStatus, None) => None,
        };
        let events = file.events.unwrap_or_default();
        if let Some(bad) = events
            .iter()
            .find(|e| !crate::domain::steps::event_names().any(|name| name == e.as_str()))
        {
            return Err(ConfigError::new(
                key("events"),
                format!(
                    "unknown event {bad:?}; payhook sends {}",
                    crate::domain::steps::event_names()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if kind == TargetKind::BookingStatus && !events.is_empty() {
            return Err(ConfigError::new(
                key("events"),
                "a booking-status target receives booking statuses; events filters an events target",
            ));
        }
        targets.push(TargetSettings {
            name,
            kind,
            // An events target is posted to at its URL as given; a booking-status target's
            // paths are added to its base.
            url: match kind {
                TargetKind::BookingStatus => url.trim_end_matches('/').to_string(),
                TargetKind::Events => url,
            },
            token,
            secret,
            events,
            retry_schedule: match file.retry_schedule {
                Some(list) if list.is_empty() => {
                    return Err(ConfigError::new(
                        key("retry_schedule"),
                        "needs at least one entry",
                    ));
                }
                Some(list) => list
                    .iter()
                    .map(|d| parse_duration(&key("retry_schedule"), d))
                    .collect::<Result<_, _>>()?,
                None => default_retry_schedule(),
            },
            timeout: parse_duration_or(&key("timeout"), file.timeout, "5s")?,
            concurrency: positive(&key("concurrency"), file.concurrency, 32)?,
            circuit_failures: positive(
                &key("circuit_failures"),
                file.circuit_failures.map(|n| n as usize),
                10,
            )? as u32,
            circuit_open: parse_duration_or(&key("circuit_open"), file.circuit_open, "2s")?,
        });
    }
    Ok(targets)
}

pub(super) fn default_retry_schedule() -> Vec<Duration> {
    DEFAULT_RETRY_SCHEDULE
        .iter()
        .map(|d| parse_duration("", d).expect("the default schedule parses"))
        .collect()
}
