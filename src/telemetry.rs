//! Traces over OpenTelemetry, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: a webhook's request, its inbox commit, the ledger
//! batch that applies it and each delivery attempt it causes, in one trace, exported over OTLP/HTTP
//! with protobuf. The later spans run in other tasks (and on PostgreSQL perhaps other instances),
//! so the trace continues through the store: each event row and each outbox row keeps the W3C
//! `traceparent` of the span that wrote it, and the next span starts as its child.
//!
//! Off, nothing is installed (no layer, no exporter, no span is created) and nothing is stored:
//! every place that traces asks [`enabled`] first, one relaxed atomic load.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of payhook's trace spans: the OpenTelemetry layer takes these (and the log
/// lines inside them, as span events); the log output leaves them out, so logs read the same with
/// tracing on.
pub const TARGET: &str = "payhook::trace";

/// The W3C header (and the stored form) of a span's context.
pub const TRACEPARENT: &str = "traceparent";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: set once at start-up, before any request.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// What the standard OpenTelemetry variables ask of payhook's exporter. The exporter itself
/// reads the endpoint, `OTEL_EXPORTER_OTLP_HEADERS` and the compression from the process's
/// environment; these are the choices payhook makes or checks first.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// How long one export request may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, ms) [10 s].
    pub timeout: Duration,
    /// `service.name`: `OTEL_SERVICE_NAME`, else a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`,
    /// else `payhook` (`None` when the variables name it: the SDK reads them).
    pub default_service_name: Option<&'static str>,
}

/// A variable that asks for something payhook cannot do, named with its value and what to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpError(String);

impl fmt::Display for OtlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OtlpError {}

/// The signal-specific variable if set, else the general one: (name, value).
fn either<'a>(
    env: &'a HashMap<String, String>,
    traces: &'static str,
    general: &'static str,
) -> Option<(&'static str, &'a str)> {
    [traces, general].into_iter().find_map(|name| {
        env.get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    })
}

impl OtlpSettings {
    /// Tracing's settings when an OTLP endpoint is set (and `OTEL_SDK_DISABLED` is not `true`,
    /// nor `OTEL_TRACES_EXPORTER` `none`); `None` leaves tracing off.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<OtlpSettings>, OtlpError> {
        let endpoint = either(
            env,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        );
        let disabled = env
            .get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if endpoint.is_none() || disabled {
            return Ok(None);
        }
        match env.get("OTEL_TRACES_EXPORTER").map(|v| v.trim()) {
            None | Some("" | "otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(OtlpError(format!(
                    "OTEL_TRACES_EXPORTER={other}: payhook exports traces over OTLP only; \
                     leave it unset, or set it to otlp (or none)"
                )));
            }
        }
        if let Some((name, protocol)) = either(
            env,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) && protocol != "http/protobuf"
        {
            let why = match protocol {
                "grpc" => "gRPC is not built into payhook",
                "http/json" => "OTLP/HTTP with JSON is not built into payhook",
                _ => "it is not an OTLP protocol",
            };
            return Err(OtlpError(format!(
                "{name}={protocol}: {why}; payhook exports traces over OTLP/HTTP with protobuf \
                 only: set {name}=http/protobuf (or leave it unset) and point the endpoint at the \
                 collector's OTLP/HTTP port (4318 by default)"
            )));
        }
        // The exporter would ignore a compression it lacks and send uncompressed, silently.
        if let Some((name, compression)) = either(
            env,
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ) && compression != "none"
        {
            return Err(OtlpError(format!(
                "{name}={compression}: payhook sends traces uncompressed (no compression is \
                 built in); leave it unset or set it to none"
            )));
        }
        let timeout = match either(
            env,
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            None => Duration::from_secs(10),
            Some((name, ms)) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(OtlpError(format!(
                        "{name}={ms}: not a timeout; give it in milliseconds, e.g. 10000"
                    )));
                }
            },
        };
        let named = env
            .get("OTEL_SERVICE_NAME")
            .is_some_and(|v| !v.trim().is_empty())
            || env.get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
                attrs
                    .split(',')
                    .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
            });
        Ok(Some(OtlpSettings {
            timeout,
            default_service_name: (!named).then_some("payhook"),
        }))
    }
}

/// The exporter's pipeline; [`Tracing::shutdown`] sends what is still queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Builds the exporter and its batch processor (`OTEL_BSP_*` honoured, a thread of its own)
    /// and turns tracing on. Exports are sent by payhook's HTTP client on `runtime`.
    pub fn start(settings: &OtlpSettings, runtime: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let client = Exporting {
            client: crate::net::client_builder()
                .timeout(settings.timeout)
                .build()?,
            runtime,
            failing: AtomicBool::new(false),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client)
            .build()
            .map_err(|e| anyhow::anyhow!("setting up the OTLP trace exporter: {e}"))?;
        let mut resource = opentelemetry_sdk::Resource::builder().with_attribute(
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        );
        if let Some(name) = settings.default_service_name {
            resource = resource.with_service_name(name);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        ON.store(true, Ordering::Relaxed);
        Ok(Tracing { provider })
    }

    /// The `tracing` layer that turns payhook's trace spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("payhook"))
            // Attributes are payhook's own; the source file, thread and busy time are noise here.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
    }

    /// Exports what is still queued (waiting for the export to finish) and stops the exporter.
    /// Called once payhook has stopped, on a thread outside the runtime, which must still be up.
    pub fn shutdown(self) {
        ON.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last traces could not be exported");
        }
    }
}

/// The OTLP exporter's HTTP client: payhook's own reqwest client (one TLS set-up, no second HTTP
/// stack), run on payhook's runtime because the batch processor exports from a thread of its own.
struct Exporting {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// The last export failed: said once, and once again when exports work again.
    failing: AtomicBool,
}

impl fmt::Debug for Exporting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exporting")
    }
}

#[async_trait::async_trait]
impl HttpClient for Exporting {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await?;
        let failed = match &sent {
            Ok((status, _)) if status.is_success() => None,
            Ok((status, _)) => Some(format!("the collector answered {status}")),
            Err(e) => Some(crate::net::describe(e)),
        };
        match failed {
            Some(why) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(error = %why, "traces cannot be exported to the OTLP endpoint")
            }
            None if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("traces are exported again")
            }
            _ => {}
        }
        let (status, body) = sent?;
        Ok(Response::builder().status(status).body(body)?)
    }
}

/// The W3C `traceparent` of `span`'s context, to store with a row or send with a request; `None`
/// when the span is not traced.
pub fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` (not yet started) a child of the span whose `traceparent` a row kept. A value
/// that is not a valid `traceparent` leaves `span` the root of a trace of its own.
pub fn continue_from(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_set() {
        assert_eq!(OtlpSettings::from_env(&env(&[])), Ok(None));
        assert_eq!(
            OtlpSettings::from_env(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
            Ok(None)
        );
        let on = OtlpSettings::from_env(&env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces",
        )]))
        .unwrap()
        .expect("on");
        assert_eq!(on.timeout, Duration::from_secs(10));
        assert_eq!(on.default_service_name, Some("payhook"));
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let vars = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), off]);
            assert_eq!(OtlpSettings::from_env(&vars), Ok(None), "{off:?}");
        }
    }

    #[test]
    fn grpc_json_and_compression_are_refused_at_start_up_naming_the_variable_and_what_to_set() {
        for (name, protocol) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ] {
            let vars = env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                (name, protocol),
            ]);
            let err = OtlpSettings::from_env(&vars).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}={protocol}: ")), "{err}");
            assert!(err.contains("=http/protobuf"), "{err}");
        }
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        let err = OtlpSettings::from_env(&vars).unwrap_err().to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_COMPRESSION=gzip: "),
            "{err}"
        );
        // The traces' own variable wins over the general one.
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]);
        assert!(OtlpSettings::from_env(&vars).unwrap().is_some());
    }

    #[test]
    fn the_timeout_and_the_service_name_follow_the_standard_variables() {
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "gateway"),
        ]);
        let s = OtlpSettings::from_env(&vars).unwrap().unwrap();
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(
            s.default_service_name, None,
            "the SDK reads OTEL_SERVICE_NAME"
        );
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, service.name=gw",
            ),
        ]);
        let s = OtlpSettings::from_env(&vars).unwrap().unwrap();
        assert_eq!(s.default_service_name, None);
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ]);
        let err = OtlpSettings::from_env(&vars).unwrap_err().to_string();
        assert!(err.starts_with("OTEL_EXPORTER_OTLP_TIMEOUT=10s: "), "{err}");
    }
}
