//! Bringing a store written by an older payhook to the current ledger model, once, on start.
//!
//! Model 2 (refunds and disputes as objects, captures, sessions that take no money, bookings of
//! several payments) reads more from each event than model 1 did. So, in batches: every stored
//! Stripe fact whose event still has its payload is read again from it; every payment is derived
//! again from its facts; a booking's duplicate payments are flagged; and events of the types
//! model 1 ignored (`refund.*`, `charge.captured`, ...) are put back in line for the processor,
//! which applies them (and notifies what they change) like new ones. Payloads already pruned by
//! retention keep the facts they gave.

use std::collections::HashSet;

use chrono::Utc;

use super::facts::{Interpretation, interpret_stripe};
use crate::domain::state::{Attention, derive, duplicates};
use crate::store::{Store, StoreError};

/// The setting that records which model the store's payments follow, and the current model. A
/// store written by a tool rather than by payhook (the benchmark's history) says it follows it.
pub const MODEL_SETTING: &str = "ledger_model";
pub const MODEL: &str = "2";

/// Rows per transaction.
const BATCH: i64 = 500;

/// Types model 1 stored as `ignored` that the ledger acts on now.
const NEWLY_ACTED_ON: &[&str] = &[
    "payment_intent.amount_capturable_updated",
    "charge.captured",
    "charge.expired",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.updated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

/// What the upgrade did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upgraded {
    pub facts_read_again: u64,
    pub payments_derived: u64,
    pub payments_dropped: u64,
    pub events_requeued: u64,
}

/// Upgrades the store if it follows an older model; `mapped` are the sources whose events are
/// read through a payload mapping (their facts are kept as they are). Returns `None` when the
/// store was already current.
pub async fn run(store: &Store, mapped: &HashSet<String>) -> Result<Option<Upgraded>, StoreError> {
    if store.setting(MODEL_SETTING).await?.as_deref() == Some(MODEL) {
        return Ok(None);
    }
    let mut done = Upgraded::default();
    // Facts, read again from their payloads.
    let mut after = 0;
    loop {
        let mut tx = store.begin_ledger().await?;
        let rows = tx.facts_with_payloads(after, BATCH).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            tx.rollback().await?;
            break;
        };
        for row in rows.iter().filter(|r| !mapped.contains(&r.source)) {
            match interpret_stripe(&row.event_type, &row.payload) {
                Interpretation::Fact(fact) => tx.rewrite_fact(row.id, Some(&fact)).await?,
                Interpretation::NoPayment(_) => tx.rewrite_fact(row.id, None).await?,
                // An event the current reader cannot read keeps the fact it gave.
                Interpretation::Ignored | Interpretation::Fetch | Interpretation::Invalid(_) => {
                    continue;
                }
            }
            done.facts_read_again += 1;
        }
        tx.commit().await?;
        after = last;
    }
    // Payments, derived again.
    let mut tx = store.begin_ledger().await?;
    done.payments_dropped = tx.drop_empty_payments().await?;
    tx.commit().await?;
    let mut after = 0;
    let now = Utc::now();
    loop {
        let mut tx = store.begin_ledger().await?;
        let ids = tx.payment_ids_after(after, BATCH).await?;
        let Some(&last) = ids.last() else {
            tx.rollback().await?;
            break;
        };
        let facts = tx.facts_of(&ids).await?;
        let mut payments = tx.payments_by(&ids, &[]).await?;
        for p in &mut payments {
            let mine: Vec<_> = facts
                .iter()
                .filter(|(id, _)| *id == p.id)
                .map(|(_, f)| f.clone())
                .collect();
            p.state = derive(&mine);
            p.updated_at = now;
        }
        tx.save_payments(&payments.iter().collect::<Vec<_>>())
            .await?;
        done.payments_derived += payments.len() as u64;
        tx.commit().await?;
        after = last;
    }
    // Bookings paid more than once: their later payments are duplicates.
    let mut tx = store.begin_ledger().await?;
    let bookings = tx.bookings_paid_twice().await?;
    for chunk in bookings.chunks(BATCH as usize) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let mut payments = tx.payments_by(&[], &chunk).await?;
        for booking in &chunk {
            let of_booking: Vec<_> = payments
                .iter()
                .filter(|p| p.state.booking_id.as_deref() == Some(booking))
                .cloned()
                .collect();
            let flagged = duplicates(&of_booking);
            for p in payments.iter_mut().filter(|p| flagged.contains(&p.id)) {
                p.state.flag(Attention::Duplicate, true);
            }
        }
        tx.save_payments(&payments.iter().collect::<Vec<_>>())
            .await?;
    }
    for event_type in NEWLY_ACTED_ON {
        done.events_requeued += tx.requeue_ignored(event_type).await?;
    }
    tx.commit().await?;
    store.setting_or_insert(MODEL_SETTING, MODEL).await?;
    Ok(Some(done))
}
