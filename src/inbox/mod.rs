//! The inbox: verify a webhook on its raw bytes, then persist it once per `(source, event_id)`.
//! Nothing is acknowledged before the row is committed (see [`writer`] for the group commit).

pub mod writer;

use std::net::IpAddr;
use std::time::Instant;

use axum::http::HeaderMap;
use bytes::Bytes;
use chrono::Utc;

use crate::providers::{EventMeta, Incoming, Source, Sources, VerifyError};
use crate::store::{NewEvent, StoreError};
pub use writer::{InboxWriter, IngestLoad, Written};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no webhook source is named {0:?}")]
    UnknownSource(String),
    #[error("{0} is not allowed to post to this source")]
    IpNotAllowed(IpAddr),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the provider is told once its event is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub event_id: String,
    pub event_type: String,
    pub duplicate: bool,
    /// Every event's id, when the request was a batch of several.
    pub batch: Vec<String>,
}

pub struct Inbox {
    sources: Sources,
    writer: InboxWriter,
}

impl Inbox {
    pub fn new(sources: Sources, writer: InboxWriter) -> Self {
        Self { sources, writer }
    }

    /// The source behind a route name, if it may be used from `peer`. Checked before the body is read.
    /// Whether a source of this name is configured.
    pub fn knows(&self, name: &str) -> bool {
        self.sources.get(name).is_some()
    }

    /// The source of this name, if any, whoever asks.
    pub fn find(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    pub fn source(&self, name: &str, peer: IpAddr) -> Result<&Source, IngestError> {
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| IngestError::UnknownSource(name.to_string()))?;
        if !source.allows(peer) {
            return Err(IngestError::IpNotAllowed(peer));
        }
        Ok(source)
    }

    /// Verifies and stores one webhook request; returns only after the row of every event it
    /// carries is durable (a batch is acknowledged whole or not at all: the provider sends it
    /// again, and what was stored is a duplicate then).
    pub async fn receive(
        &self,
        source: &Source,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Receipt, IngestError> {
        let started = Instant::now();
        let received_at = Utc::now();
        let request = Incoming {
            headers,
            body: &body,
            query,
        };
        let mut items = source.verify(&request, received_at.timestamp())?;
        let stored_headers = source.stored_headers(headers).to_string();
        let receipt = if items.len() == 1 {
            let item = items.pop().expect("one item");
            let payload = item.payload.map(Bytes::from).unwrap_or(body);
            let (receipt, outcome) = self
                .write(
                    &source.name,
                    item.meta,
                    payload,
                    stored_headers,
                    received_at,
                    "stored",
                )
                .await?;
            tracing::info!(source = %source.name, event_id = %receipt.event_id,
                event_type = %receipt.event_type, outcome,
                latency_us = started.elapsed().as_micros() as u64, "webhook received");
            receipt
        } else {
            // Every item is handed to the writer at once, so they share its next commits.
            let writes = items.into_iter().map(|item| {
                let payload = item
                    .payload
                    .map(Bytes::from)
                    .unwrap_or_else(|| body.clone());
                self.write(
                    &source.name,
                    item.meta,
                    payload,
                    stored_headers.clone(),
                    received_at,
                    "stored",
                )
            });
            let written = futures_util::future::try_join_all(writes).await?;
            let batch: Vec<String> = written.iter().map(|(r, _)| r.event_id.clone()).collect();
            let first = &written[0].0;
            tracing::info!(source = %source.name, events = batch.len(),
                new = written.iter().filter(|(r, _)| !r.duplicate).count(),
                latency_us = started.elapsed().as_micros() as u64, "webhook batch received");
            Receipt {
                event_id: first.event_id.clone(),
                event_type: first.event_type.clone(),
                duplicate: written.iter().all(|(r, _)| r.duplicate),
                batch,
            }
        };
        metrics::histogram!("payhook_ingest_seconds", "source" => source.name.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(receipt)
    }

    /// Stores an event payhook fetched itself from the provider's API (reconciliation), under
    /// `source`: read like a webhook's body, with no signature to check (the API answered
    /// payhook's own authenticated request), and a header saying where it came from.
    pub async fn store_fetched(&self, source: &str, body: Bytes) -> Result<Receipt, IngestError> {
        let meta = crate::providers::parse_event(&body, None)?;
        let origin = r#"{"x-payhook-origin":"fetched from the provider's API (reconcile)"}"#;
        let (receipt, outcome) = self
            .write(source, meta, body, origin.into(), Utc::now(), "reconciled")
            .await?;
        if !receipt.duplicate {
            tracing::info!(source, event_id = %receipt.event_id, event_type = %receipt.event_type,
                outcome, "missed event stored from the provider's API");
        }
        Ok(receipt)
    }

    /// Writes the event through the group-commit writer and counts it: `new_outcome` (or
    /// `duplicate`) by source and type, and in the per-minute rate when new.
    async fn write(
        &self,
        source: &str,
        meta: EventMeta,
        payload: Bytes,
        headers: String,
        received_at: chrono::DateTime<Utc>,
        new_outcome: &'static str,
    ) -> Result<(Receipt, &'static str), IngestError> {
        let event = NewEvent {
            source: source.to_string(),
            event_id: meta.event_id.clone(),
            event_type: meta.event_type.clone(),
            payload,
            headers,
            received_at,
            trace_context: None,
        };
        let written = if crate::telemetry::enabled() {
            traced_write(&self.writer, event).await?
        } else {
            self.writer.write(event).await?
        };
        let outcome = if written == Written::New {
            crate::metrics::count_stored();
            new_outcome
        } else {
            "duplicate"
        };
        metrics::counter!("payhook_webhooks_received_total", "source" => source.to_string(),
            "type" => crate::metrics::type_label(&meta.event_type), "outcome" => outcome)
        .increment(1);
        let receipt = Receipt {
            event_id: meta.event_id,
            event_type: meta.event_type,
            duplicate: written == Written::Duplicate,
            batch: Vec::new(),
        };
        Ok((receipt, outcome))
    }
}

/// The write, in an `inbox.commit` span (a child of the request's): from the hand-over to the
/// writer until the group commit holding the event is durable. The event keeps the span's
/// context, for the ledger's span to continue the trace.
async fn traced_write(writer: &InboxWriter, mut event: NewEvent) -> Result<Written, StoreError> {
    use tracing::Instrument;
    let span = tracing::info_span!(target: crate::telemetry::TARGET, "inbox.commit",
        payhook.source = %event.source, payhook.event_id = %event.event_id,
        payhook.event_type = %event.event_type, payhook.duplicate = tracing::field::Empty,
        otel.status_description = tracing::field::Empty);
    event.trace_context = crate::telemetry::traceparent(&span);
    let written = writer.write(event).instrument(span.clone()).await;
    match &written {
        Ok(w) => {
            span.record("payhook.duplicate", *w == Written::Duplicate);
        }
        Err(e) => {
            span.record("otel.status_description", e.to_string());
        }
    }
    written
}
