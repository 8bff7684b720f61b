//! What `payhook events`, `deliveries` and `reconcile` share: a client of the admin API of a
//! running `payhook serve` (`PAYHOOK_ADMIN_URL`, `PAYHOOK_ADMIN_TOKEN`) that reads its answers
//! into the types of [`crate::admin_types`] (or as plain JSON, for `--json`).

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::admin_types::Page;
use crate::config::Settings;

/// Where the admin API is and how to print: shared by the subcommands that use it.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin API of the running payhook [default: http://PAYHOOK_ADMIN_LISTEN].
    #[arg(long, global = true, env = "PAYHOOK_ADMIN_URL", value_name = "URL")]
    admin_url: Option<String>,
    /// Print the admin API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The admin API's refusal: its status, code, message and hint, and which payhook said it.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code} from the admin API at {from}: {message}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct Refused {
    pub status: reqwest::StatusCode,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    pub from: String,
}

/// Whether `e` is the admin API's refusal with `code`.
pub fn refused_with(e: &anyhow::Error, code: &str) -> bool {
    e.downcast_ref::<Refused>().is_some_and(|r| r.code == code)
}

pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(settings: &Settings, args: &AdminArgs) -> anyhow::Result<Self> {
        let base = match &args.admin_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                // A wildcard bind is reached on loopback.
                let mut addr = settings.admin_listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let http = crate::net::client_builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(AdminClient {
            base,
            token: settings
                .admin_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            http,
        })
    }

    /// `GET path`, its answer read as `T` (`serde_json::Value` keeps it as the API wrote it).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::GET, path).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::POST, path).await
    }

    /// One call; an answer that is not a success becomes an error with the API's code and
    /// message, a connection failure says where payhook was looked for, and an answer that is not
    /// the expected shape names the field and the URL.
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the admin API at {}: {}; is `payhook serve` running? \
                 (PAYHOOK_ADMIN_URL or --admin-url says where)",
                self.base,
                crate::net::describe(&e)
            )
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("reading the admin API's answer")?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<Refusal>(&body) {
                Ok(Refusal { error }) => Refused {
                    status,
                    code: error.code,
                    message: error.message,
                    hint: error.hint,
                    from: self.base.clone(),
                }
                .into(),
                Err(_) => anyhow::anyhow!("{status} from {url}"),
            });
        }
        decode(&url, &body)
    }

    /// `GET path` of a long-lived answer (the event stream): no time limit on the body, only on
    /// connecting; a refusal is an error like [`AdminClient::get`]'s.
    pub async fn open_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let http = crate::net::client_builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?;
        let mut request = http.get(&url).header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the admin API at {}: {}",
                self.base,
                crate::net::describe(&e)
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(match serde_json::from_slice::<Refusal>(&body) {
            Ok(Refusal { error }) => Refused {
                status,
                code: error.code,
                message: error.message,
                hint: error.hint,
                from: self.base.clone(),
            }
            .into(),
            Err(_) => anyhow::anyhow!("{status} from {url}"),
        })
    }

    /// Rows of a listing, following `next_cursor` until `limit` rows or the last page.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<&str>)],
        limit: usize,
    ) -> anyhow::Result<Vec<T>> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        while rows.len() < limit {
            let page = (limit - rows.len()).min(500).to_string();
            let mut params: Vec<(&str, &str)> = query
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect();
            params.push(("limit", &page));
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let qs = query_string(&params);
            let page: Page<T> = self.get(&format!("{path}?{qs}")).await?;
            rows.extend(page.data);
            match page.next_cursor {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        Ok(rows)
    }
}

/// The admin API's refusal as it writes it: `{"error":{"code","message",...}}`.
#[derive(Deserialize)]
struct Refusal {
    error: RefusalDetail,
}

#[derive(Deserialize)]
struct RefusalDetail {
    code: String,
    message: String,
    #[serde(default)]
    hint: Option<String>,
}

/// A successful answer read as `T`; when it is not that shape (another payhook version, a proxy's
/// page), the error names the field (e.g. data[0]: missing field `status`) and the URL.
fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> anyhow::Result<T> {
    let json = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(json).map_err(|e| {
        anyhow::anyhow!("the admin API's answer from {url} is not what this payhook reads: {e}")
    })
}

/// `k=v&k=v`, percent-encoded.
pub fn query_string(params: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a static URL");
    url.query_pairs_mut().extend_pairs(params);
    url.query().unwrap_or_default().to_string()
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a static URL");
    url.path_segments_mut().expect("a base URL").push(s);
    url.path().trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_types::{EventRow, ReconcilePage};

    const URL: &str = "http://127.0.0.1:3004/admin/api/events?limit=50";

    #[test]
    fn an_answer_missing_a_field_names_the_field_and_the_url() {
        let body = br#"{"data":[{"id":1,"source":"stripe","event_id":"evt_1","type":"t",
            "attempts":1,"last_error":null,"received_at":"2026-11-22T21:44:50Z"}],
            "next_cursor":null}"#;
        let e = decode::<Page<EventRow>>(URL, body).unwrap_err().to_string();
        assert!(e.contains(URL), "{e}");
        assert!(e.contains("data[0]: missing field `status`"), "{e}");
    }

    #[test]
    fn a_field_of_another_type_or_an_unknown_status_is_named_too() {
        let e = decode::<ReconcilePage>(URL, br#"{"listed":"two"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed: invalid type"), "{e}");
        let body = br#"{"data":[{"id":1,"source":"stripe","event_id":"evt_1","type":"t",
            "status":"lost","attempts":1,"received_at":"x"}],"next_cursor":null}"#;
        let e = decode::<Page<EventRow>>(URL, body).unwrap_err().to_string();
        assert!(e.contains("data[0].status: unknown variant `lost`"), "{e}");
        // Not JSON at all (a proxy's HTML page) is said the same way.
        let e = decode::<Page<EventRow>>(URL, b"<html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains(URL) && e.contains("expected value"), "{e}");
    }

    #[test]
    fn fields_the_cli_does_not_read_are_skipped_and_absent_options_are_none() {
        let body = br#"{"id":7,"source":"stripe","event_id":"evt_7","type":"t",
            "status":"processed","attempts":1,"received_at":"x","headers":{},"body":"{}",
            "something_new":true}"#;
        let row = decode::<EventRow>(URL, body).unwrap();
        assert_eq!((row.id, row.last_error, row.booking_id), (7, None, None));
    }
}
