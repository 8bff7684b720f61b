//! The provider's recent answers about sessions, and when the session route asks for one.

use super::*;

/// The provider's recent answers about sessions, so a polling page does not poll Stripe.
pub struct ProviderAnswers {
    /// How long a session may stay open in the ledger before the status route asks the
    /// provider, and how long the provider's answer is reused (`stripe.ask_provider_after`).
    ask_after: Duration,
    answers: Mutex<HashMap<String, (Instant, SessionState)>>,
}

impl ProviderAnswers {
    pub fn new(ask_after: Duration) -> ProviderAnswers {
        ProviderAnswers {
            ask_after,
            answers: Mutex::default(),
        }
    }

    pub(super) fn fresh(&self, id: &str) -> Option<SessionState> {
        let answers = self.answers.lock().expect("not poisoned");
        answers
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ask_after)
            .map(|(_, s)| s.clone())
    }

    pub(super) fn keep(&self, id: &str, state: SessionState) {
        let mut answers = self.answers.lock().expect("not poisoned");
        answers.retain(|_, (at, _)| at.elapsed() < self.ask_after);
        answers.insert(id.to_string(), (Instant::now(), state));
    }

    /// Whether a session created at `created_at` (unix seconds) has waited for its webhook long
    /// enough that the provider is asked.
    pub(super) fn old_enough(&self, created_at: i64) -> bool {
        let waited_ms = chrono::Utc::now().timestamp_millis() - created_at * 1000;
        waited_ms >= self.ask_after.as_millis() as i64
    }
}
