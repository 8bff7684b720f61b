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
    page(
        StatusCode::OK,
        include_str!("../../../assets/return.html").to_string(),
    )
}

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
    let amount = money::format(session.amount, &session.currency);
    let description = session
        .description
        .clone()
        .unwrap_or_else(|| format!("Booking {}", session.booking_id));
    let notice = match session.status.as_str() {
        "open" => String::new(),
        "complete" => "<p class=\"notice\">This session is already paid.</p>".into(),
        other => format!("<p class=\"notice\">This session is {}.</p>", escape(other)),
    };
    let html = include_str!("../../../assets/sandbox.html")
        .replace("{{amount}}", &escape(&amount))
        .replace("{{description}}", &escape(&description))
        .replace("{{booking_id}}", &escape(&session.booking_id))
        .replace("{{session_id}}", &escape(&session.id))
        .replace(
            "{{email_row}}",
            &session
                .customer_email
                .as_deref()
                .map(|e| format!("<dt>Email</dt><dd>{}</dd>", escape(e)))
                .unwrap_or_default(),
        )
        .replace(
            "{{expires_at}}",
            &rfc3339(Some(session.expires_at)).unwrap_or_default(),
        )
        .replace("{{notice}}", &notice)
        .replace(
            "{{disabled}}",
            if session.status == "open" {
                ""
            } else {
                "disabled"
            },
        );
    page(StatusCode::OK, html)
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
        (status = 404, description = "No such session or action, or the sandbox is off", content_type = "text/html", body = String),
        (status = 409, description = "The session is no longer open", content_type = "text/html", body = String),
        (status = 502, description = "payhook could not store the provider's events", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be reached", content_type = "text/html", body = String),
    )
)]
pub async fn sandbox_action(
    State(state): State<Arc<AppState>>,
    Path(ActionPath { session_id, action }): Path<ActionPath>,
) -> Response {
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
    page(
        status,
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>payhook sandbox</title>\
             <body style=\"font-family:system-ui;max-width:32rem;margin:3rem auto\">\
             <h1>Sandbox checkout</h1><p id=\"error\">{}</p></body>",
            escape(message)
        ),
    )
}

pub(super) fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

/// Text for HTML: the five characters that could end it.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_what_ends_text_or_attributes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
