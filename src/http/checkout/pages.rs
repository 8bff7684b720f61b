//! The pages: the return page customers land on, and the sandbox provider's hosted page and its buttons.

use super::*;

/// `GET /checkout/return`: the page a customer lands on after paying. It asks payhook, never
/// trusts its own URL, and polls with a growing interval.
#[utoipa::path(
    get,
    path = "/checkout/return",
    tag = "pages",
    params(
        ("session_id" = Option<String>, Query, description = "The session to show"),
        ("canceled" = Option<String>, Query, description = "`1` when the customer canceled"),
    ),
    responses((status = 200, description = "The return page", content_type = "text/html", body = String))
)]
pub async fn return_page() -> Response {
    let mut response = page(StatusCode::OK, RETURN_PAGE.to_string());
    // Its one script, by its digest: nothing injected into the page could run.
    static POLICY: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let script = RETURN_PAGE
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map_or("", |(script, _)| script);
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
        HeaderValue::from_str(&format!(
            "{PAGE_POLICY}; script-src 'sha256-{digest}'; connect-src 'self'"
        ))
        .expect("a header value")
    });
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    response
}

const RETURN_PAGE: &str = include_str!("../../../assets/return.html");

/// What payhook's pages may load: their own inline styles and images, nothing else; no page may
/// frame them. (The return page adds its script and its polls.)
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/// `GET /sandbox/checkout/{id}`: the sandbox provider's hosted payment page.
#[utoipa::path(
    get,
    path = "/sandbox/checkout/{session_id}",
    tag = "pages",
    params(("session_id" = String, Path)),
    responses(
        (status = 200, description = "The payment page: Pay, Decline, Cancel", content_type = "text/html", body = String),
        (status = 404, description = "No such session, or the sandbox is off", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be reached", content_type = "text/html", body = String),
    )
)]
pub async fn sandbox_page(
    State(state): State<Arc<AppState>>,
    Path(session_id): Path<String>,
) -> Response {
    let Some(sandbox) = state.provider.sandbox() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The sandbox provider is off: payhook is using Stripe.",
        );
    };
    let session = match sandbox.session(&session_id).await {
        Ok(s) => s,
        Err(e) => return sandbox_error(e),
    };
    let amount = Money::new(session.amount, session.currency.as_str()).to_string();
    let description = session
        .description
        .clone()
        .unwrap_or_else(|| format!("Booking {}", session.booking_id));
    let lapsed = session.lapsed(chrono::Utc::now().timestamp());
    let notice = match session.status.as_str() {
        "open" if lapsed => Some("This session has expired.".to_string()),
        "open" => None,
        "complete" => Some("This session is already paid.".to_string()),
        other => Some(format!("This session is {other}.")),
    };
    let html = SandboxPage {
        amount: &amount,
        description: &description,
        notice,
        booking_id: &session.booking_id,
        email: session.customer_email.as_deref(),
        session_id: &session.id,
        expires_at: rfc3339(Some(session.expires_at)).unwrap_or_default(),
        open: session.status == "open" && !lapsed,
    };
    render(StatusCode::OK, &html)
}

/// The sandbox's hosted page (`assets/sandbox.html`); askama escapes every value.
#[derive(askama::Template)]
#[template(path = "sandbox.html")]
struct SandboxPage<'a> {
    amount: &'a str,
    description: &'a str,
    notice: Option<String>,
    booking_id: &'a str,
    email: Option<&'a str>,
    session_id: &'a str,
    expires_at: String,
    /// Pay and Decline are offered only while the session is open.
    open: bool,
}

/// A page that says what went wrong (`assets/sandbox-error.html`).
#[derive(askama::Template)]
#[template(path = "sandbox-error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// A rendered template as a page; a template that cannot render is payhook's fault, said plainly.
fn render(status: StatusCode, template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct ActionPath {
    session_id: String,
    action: String,
}

/// `POST /sandbox/checkout/{id}/{pay|decline|cancel}`: the hosted page's buttons; 303 to the
/// success or cancel URL once payhook has stored what happened.
#[utoipa::path(
    post,
    path = "/sandbox/checkout/{session_id}/{action}",
    tag = "pages",
    params(
        ("session_id" = String, Path),
        ("action" = String, Path, description = "pay, decline or cancel"),
    ),
    responses(
        (status = 303, description = "Done: to the session's success or cancel URL"),
        (status = 403, description = "Posted by a page of another site", content_type = "text/html", body = String),
        (status = 404, description = "No such session or action, or the sandbox is off", content_type = "text/html", body = String),
        (status = 409, description = "The session is no longer open", content_type = "text/html", body = String),
        (status = 502, description = "payhook could not store the provider's events", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be reached", content_type = "text/html", body = String),
    )
)]
pub async fn sandbox_action(
    State(state): State<Arc<AppState>>,
    Path(ActionPath { session_id, action }): Path<ActionPath>,
    headers: axum::http::HeaderMap,
) -> Response {
    if from_another_site(&headers, &state.public_url) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The sandbox's buttons answer its own checkout page, not a page of another site.",
        );
    }
    let Some(sandbox) = state.provider.sandbox() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The sandbox provider is off: payhook is using Stripe.",
        );
    };
    let result = match action.as_str() {
        "pay" => sandbox.pay(&session_id).await,
        "decline" => sandbox.decline(&session_id).await,
        "cancel" => sandbox.cancel(&session_id).await,
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Unknown action: use pay, decline or cancel.",
            );
        }
    };
    match result {
        Ok(to) => {
            tracing::info!(action, "sandbox checkout action");
            Redirect::to(&to.0).into_response()
        }
        Err(e) => sandbox_error(e),
    }
}

/// A form of another site posting to the sandbox's buttons (cross-site request forgery): the
/// browser says so (`Sec-Fetch-Site: cross-site`), or its `Origin` is neither the host asked
/// for (directly or through a proxy's `X-Forwarded-Host`) nor `PAYHOOK_PUBLIC_URL`'s.
fn from_another_site(headers: &axum::http::HeaderMap, public_url: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    let Some(origin) = text("origin").filter(|o| *o != "null") else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, host)| host);
    let public_host = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| {
            rest.split('/').next().unwrap_or(rest)
        });
    let same = |host: Option<&str>| host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host));
    !(same(text("host")) || same(text("x-forwarded-host")) || same(Some(public_host)))
}

pub(super) fn sandbox_error(e: SandboxError) -> Response {
    let status = match &e {
        SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
        SandboxError::NotAllowed(_) => StatusCode::CONFLICT,
        SandboxError::NotDelivered(_) => StatusCode::BAD_GATEWAY,
        SandboxError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "sandbox checkout action failed");
    }
    error_page(status, &e.to_string())
}

pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    render(status, &ErrorPage { message })
}

pub(super) fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The return page's address holds the session id, the capability to read the session.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_wherever_they_land() {
        let hostile = "<script>\"a\" & 'b'</script>";
        let html = SandboxPage {
            amount: "20.00 EUR",
            description: hostile,
            notice: Some(hostile.to_string()),
            booking_id: hostile,
            email: Some(hostile),
            session_id: "cs_test_\"><img src=x>",
            expires_at: String::new(),
            open: false,
        }
        .to_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert_eq!(
            html.matches(" disabled>").count(),
            2,
            "a closed session offers no button"
        );
        let error = ErrorPage { message: hostile }.to_string();
        assert!(!error.contains("<script>"), "{error}");
    }
}
