//! `GET /api/v1/checkout/sessions/{id}`: the session as the return page reads it, from the ledger, completed by what payhook created and, while the webhook is late, by the provider.

use super::*;

/// `GET /api/v1/checkout/sessions/{id}`: the ledger's word (what webhooks established), completed
/// by the session payhook created and, while the ledger still says open after a few seconds, by
/// the provider's own answer.
#[utoipa::path(
    get,
    path = "/api/v1/checkout/sessions/{session_id}",
    tag = "checkout",
    params(("session_id" = String, Path, description = "`cs_...`: the `session_id` of the success URL")),
    responses(
        (status = 200, description = "The session's state, as the return page shows it", body = SessionStatus),
        (status = 404, description = "Neither payhook nor the provider knows it (`session_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(session_id): Path<String>,
) -> Result<Json<SessionStatus>, ApiError> {
    let created = state.store.session(&session_id).await?;
    let mut payments = state
        .store
        .payments_where(PaymentKey::CheckoutSession, &session_id)
        .await?;
    if payments.is_empty()
        && let Some(pi) = created
            .as_ref()
            .and_then(|s| s.payment_intent_id.as_deref())
    {
        payments = state
            .store
            .payments_where(PaymentKey::PaymentIntent, pi)
            .await?;
    }
    let mut view = SessionView::new(&session_id, payments.first(), created.as_ref());
    if view.status.is_none() && created.is_none() && payments.is_empty() {
        // Unknown here: the provider may know it (a session the application created itself).
        // Only an id of the provider's form is asked about: this route is public, and each
        // question spends the account's API rate limit.
        let asked = if is_session_id(&session_id) {
            provider_state(&state, &session_id).await?
        } else {
            None
        };
        match asked {
            Some(p) => view.complete_with(&p),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "session_not_found",
                    "no checkout session with this id is known",
                )
                .hint("the id is the session_id of the success URL (cs_...)"));
            }
        }
    } else if view.is_open()
        && created
            .as_ref()
            .is_none_or(|s| state.provider_answers.old_enough(s.created_at))
        && let Some(p) = provider_state(&state, &session_id).await?
    {
        view.complete_with(&p);
    }
    Ok(Json(view.json()))
}

/// A Checkout Session id as Stripe writes them (`cs_test_...`, `cs_live_...`).
fn is_session_id(id: &str) -> bool {
    id.starts_with("cs_")
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The provider's answer (recent ones reused); none from a provider that cannot be reached.
pub(super) async fn provider_state(
    state: &AppState,
    id: &str,
) -> Result<Option<SessionState>, ApiError> {
    if let Some(known) = state.provider_answers.fresh(id) {
        return Ok(Some(known));
    }
    match state.provider.session_state(id).await {
        Ok(Some(answer)) => {
            state.provider_answers.keep(id, answer.clone());
            Ok(Some(answer))
        }
        Ok(None) => Ok(None),
        Err(crate::checkout::ProviderError::Store(e)) => Err(ApiError::from(e)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the provider about a session");
            Ok(None)
        }
    }
}

/// A checkout session as the return page reads it.
#[derive(Serialize, ToSchema)]
pub struct SessionStatus {
    session_id: String,
    booking_id: Option<String>,
    /// open, complete, expired.
    status: String,
    /// unpaid, processing, paid, failed, partially_refunded, refunded, disputed.
    payment_status: String,
    /// Minor units of `currency`.
    amount: Option<i64>,
    currency: Option<String>,
    amount_formatted: Option<String>,
    paid_at: Option<String>,
    /// `webhook` (the ledger established it), `provider` (the provider's API said so) or `none`.
    verified_by: &'static str,
    /// Where the customer can still pay, while the session is open and unpaid (after a decline,
    /// say): the way back from the return page.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout_url: Option<String>,
}

/// A payment status that settles nothing: the session can still be paid, and the provider's word,
/// when it says more, replaces it.
fn unsettled(payment_status: &str) -> bool {
    matches!(payment_status, "unpaid" | "failed")
}

/// What the status route says of a session.
pub(super) struct SessionView {
    session_id: String,
    booking_id: Option<String>,
    status: Option<String>,
    payment_status: String,
    amount: Option<i64>,
    currency: Option<String>,
    paid_at: Option<i64>,
    /// `webhook` when the ledger established it, `provider` when the provider's API said so.
    verified_by: &'static str,
    /// The provider's page for the session, when payhook created it.
    url: Option<String>,
}

impl SessionView {
    fn new(id: &str, payment: Option<&Payment>, created: Option<&Session>) -> SessionView {
        let ledger = payment.map(|p| &p.state);
        let ledger_status = ledger.map(|s| session_payment_status(s.status));
        // The ledger knows once a webhook said something; before, the provider's own record
        // (the sandbox's session row) may already say paid.
        // A failed attempt is not the session's last word either: the customer may have paid
        // since, and the provider's record say so before the webhook is applied.
        let provider = created
            .map(|s| s.payment_status.as_str())
            .filter(|p| *p != "unpaid");
        let (payment_status, verified_by) = match (ledger_status, provider) {
            (Some(s), _) if !unsettled(s) => (s, "webhook"),
            (_, Some(p)) => (p, "provider"),
            (Some(s), None) => (s, "webhook"),
            (None, None) => ("unpaid", "none"),
        };
        let payment_status = payment_status.to_string();
        let status = ledger
            .and_then(|s| s.checkout_status)
            .map(|c| c.as_str().to_string())
            .or_else(|| created.map(|s| s.status.clone()))
            .map(|s| {
                // A payment that went through completed its session, whichever event came first.
                if s == "open" && !unsettled(&payment_status) {
                    "complete".to_string()
                } else {
                    s
                }
            });
        SessionView {
            session_id: id.to_string(),
            booking_id: ledger
                .and_then(|s| s.booking_id.clone())
                .or_else(|| created.map(|s| s.booking_id.clone())),
            status,
            payment_status,
            amount: ledger
                .and_then(|s| s.amount)
                .or_else(|| created.map(|s| s.amount)),
            currency: ledger
                .and_then(|s| s.currency.clone())
                .or_else(|| created.map(|s| s.currency.clone())),
            paid_at: ledger.and_then(|s| s.paid_at),
            verified_by,
            url: created.map(|s| s.url.clone()).filter(|u| !u.is_empty()),
        }
    }

    /// Nothing settled it yet: a failed attempt leaves the session payable.
    fn is_open(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "open")
            && (unsettled(&self.payment_status) || self.payment_status == "processing")
    }

    /// The provider is ahead of the webhooks: its word fills in what the ledger does not know.
    fn complete_with(&mut self, p: &SessionState) {
        if !self.is_open() {
            return;
        }
        if p.status != "open" || p.payment_status != "unpaid" {
            self.verified_by = "provider";
        }
        self.status = Some(p.status.clone());
        if unsettled(&self.payment_status) && p.payment_status != "unpaid" {
            self.payment_status = p.payment_status.clone();
        }
    }

    fn json(self) -> SessionStatus {
        let payable =
            self.status.as_deref().is_none_or(|s| s == "open") && unsettled(&self.payment_status);
        SessionStatus {
            checkout_url: if payable { self.url.clone() } else { None },
            amount_formatted: Money::written(self.amount, self.currency.as_deref()),
            session_id: self.session_id,
            booking_id: self.booking_id,
            status: self.status.unwrap_or_else(|| "open".into()),
            payment_status: self.payment_status,
            amount: self.amount,
            currency: self.currency,
            paid_at: rfc3339(self.paid_at),
            verified_by: self.verified_by,
        }
    }
}
