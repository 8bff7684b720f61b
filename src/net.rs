//! Outbound HTTP: one way to build a client, with TLS (rustls on the ring provider, verified
//! against the system's roots), so targets and providers may be `https://`.

/// A client builder with payhook's user agent and TLS ready.
pub fn client_builder() -> reqwest::ClientBuilder {
    // The first call installs ring as the process's rustls provider; later calls find it there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("payhook/", env!("CARGO_PKG_VERSION")))
}

/// A transport error in a sentence (reqwest's own `Display` omits the causes).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The whole chain: the useful part (refused, certificate, DNS) is often several levels down.
    let mut text = kind.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
