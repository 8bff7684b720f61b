//! Outbound HTTP: one way to build a client, with TLS (rustls on the ring provider, verified
//! against the system's roots), so targets and providers may be `https://`.

/// A client builder with payhook's user agent and TLS ready.
pub fn client_builder() -> reqwest::ClientBuilder {
    // The first call installs ring as the process's rustls provider; later calls find it there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("payhook/", env!("CARGO_PKG_VERSION")))
}
