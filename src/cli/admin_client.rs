//! What `payhook events` and `payhook deliveries` share: a client of the admin API of a running
//! `payhook serve` (`PAYHOOK_ADMIN_URL`, `PAYHOOK_ADMIN_TOKEN`), tables sized to their content,
//! and progress for bulk operations.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

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

/// The admin API's refusal: its status, code and message.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct Refused {
    pub status: reqwest::StatusCode,
    pub code: String,
    pub message: String,
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

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path).await
    }

    /// One call; an answer that is not a success becomes an error with the API's code and
    /// message, and a connection failure says where payhook was looked for.
    async fn send(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
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
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let error = &json["error"];
            match (error["code"].as_str(), error["message"].as_str()) {
                (Some(code), Some(message)) => {
                    return Err(Refused {
                        status,
                        code: code.to_string(),
                        message: message.to_string(),
                    }
                    .into());
                }
                _ => bail!("{status} from {url}"),
            }
        }
        Ok(json)
    }

    /// Rows of a listing, following `next_cursor` until `limit` rows or the last page.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, Option<&str>)],
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
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
            let answer = self.get(&format!("{path}?{qs}")).await?;
            if let Some(data) = answer["data"].as_array() {
                rows.extend(data.iter().cloned());
            }
            match answer["next_cursor"].as_i64() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        Ok(rows)
    }
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

/// Columns sized to their widest cell; numbers right-aligned.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
    /// A line printed under a row (an error, the next attempt), indented.
    notes: Vec<Vec<String>>,
}

impl Table {
    /// `headers` whose name starts with `>` are right-aligned.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
        self.notes.push(Vec::new());
    }

    pub fn note(&mut self, note: String) {
        if let Some(last) = self.notes.last_mut() {
            last.push(note);
        }
    }

    pub fn print(&self, empty: &str) {
        if self.rows.is_empty() {
            println!("{empty}");
            return;
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == cells.len();
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if !last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    out.push_str("  ");
                }
            }
            out
        };
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        println!("{}", line(&headers));
        let indent = " ".repeat(widths[0] + 2);
        for (row, notes) in self.rows.iter().zip(&self.notes) {
            println!("{}", line(row));
            for note in notes {
                println!("{indent}{note}");
            }
        }
    }
}

/// A JSON field as a table cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time from the API as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn when(v: &Value) -> String {
    match v.as_str() {
        Some(t) => t.get(..19).unwrap_or(t).replace('T', " "),
        None => "-".into(),
    }
}

/// Progress of a bulk operation on stderr: one line rewritten in place on a terminal, a line
/// every tenth of the way otherwise (logs and pipes stay short).
pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    tty: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn tick(&mut self) {
        self.done += 1;
        let step = (self.total / 10).max(1);
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{} {}/{}", self.label, self.done, self.total);
            if self.done == self.total {
                let _ = writeln!(err);
            }
        } else if self.done.is_multiple_of(step) || self.done == self.total {
            let _ = writeln!(err, "{} {}/{}", self.label, self.done, self.total);
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
