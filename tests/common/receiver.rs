//! Real HTTP servers on loopback for the notification tests: a scripted receiver that records
//! every request, and the example booking service.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use payhook::booking_service::BookingService;

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query string, if any.
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// A JSON body to answer with.
    pub body: Option<serde_json::Value>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: None,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            body: Some(body),
            ..Reply::status(status)
        }
    }
}

/// Chooses the answer to the `n`th request (from 0).
pub type Script = Arc<dyn Fn(usize, &Recorded) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// The number of requests recorded, sent on each arrival: waiting costs no polling.
    arrived: tokio::sync::watch::Sender<usize>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    pub async fn start(
        script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, script)
    }

    pub fn start_on(
        listener: tokio::net::TcpListener,
        script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            url: format!("http://{addr}"),
            addr,
            requests: Arc::default(),
            arrived: tokio::sync::watch::Sender::new(0),
            script: Arc::new(Mutex::new(Arc::new(script))),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.answer(method, uri, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    async fn answer(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let recorded = Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        };
        let reply = {
            let mut requests = self.requests.lock().unwrap();
            let script = self.script.lock().unwrap().clone();
            let reply = script(requests.len(), &recorded);
            requests.push(recorded);
            self.arrived.send_replace(requests.len());
            reply
        };
        tokio::time::sleep(reply.delay).await;
        let status = StatusCode::from_u16(reply.status).unwrap();
        let mut response = match reply.body {
            Some(body) => (status, axum::Json(body)).into_response(),
            None => status.into_response(),
        };
        if let Some(after) = reply.retry_after {
            response
                .headers_mut()
                .insert("retry-after", after.parse().unwrap());
        }
        response
    }

    pub fn set_script(&self, script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let mut arrived = self.arrived.subscribe();
        let waited = tokio::time::timeout(within, arrived.wait_for(|count| *count >= n)).await;
        let got = self.requests();
        assert!(
            waited.is_ok(),
            "{} of {n} requests arrived in {within:?}: {got:#?}",
            got.len()
        );
        got
    }
}

/// The example booking service on `listener`, requiring `token`.
pub fn booking_service_on(
    listener: tokio::net::TcpListener,
    token: &str,
) -> (Arc<BookingService>, String) {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = BookingService::new(Some(token.to_string()), false);
    tokio::spawn(payhook::booking_service::serve(listener, service.clone()));
    (service, url)
}

pub async fn booking_service(token: &str) -> (Arc<BookingService>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    booking_service_on(listener, token)
}

/// Polls `check` every 10 ms until it holds, failing after `within` with `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
