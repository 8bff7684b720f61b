//! Braintree (PayPal's card and wallet gateway).
//!
//! - Signature: the form fields `bt_signature` (`public_key|hex` pairs joined by `&`) and
//!   `bt_payload` (base64 XML): HMAC-SHA1 of the payload keyed with SHA-1 of the private key of
//!   the pair's public key (see `providers::braintree`). A source's secrets are the gateway's API
//!   key pairs, `"<public_key>:<private_key>"`, several during a rotation.
//! - Body: `<notification>` with `kind` (the event's type), `timestamp` and `subject`: a
//!   `transaction` (`id`, `status`, `amount` as a decimal string in major units,
//!   `currency-iso-code`, `order-id`: the booking), or a `dispute` (`id`, `amount-disputed`,
//!   `currency-iso-code`, and its `transaction` with `id` and `order-id`). Braintree sends no
//!   event id: payhook's is `kind:subject id:timestamp` (the transaction's, dispute's,
//!   subscription's or disbursement's id; `kind:timestamp` for other subjects).
//! - Statuses: card sales succeed synchronously (no webhook); `transaction_settled` and
//!   `transaction_disbursed` (bank transfers, settled funds) succeed, `transaction_settlement_declined`
//!   fails, `dispute_opened` disputes the transaction. Braintree has no refund kind (refunds are
//!   API calls), and `subscription_*` and `local_payment_*` subjects are stored and `ignored`.
//!
//! Sources: https://developer.paypal.com/braintree/docs/guides/webhooks/parse and
//! https://developer.paypal.com/braintree/docs/reference/general/webhooks/transaction (kinds
//! and subjects); the official Python SDK `braintree` 4.48.0 (`WebhookNotification.Kind`,
//! `webhook_testing_gateway.py` sample notifications), which the oracle suite runs.

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path, types};
use crate::domain::money::Money;
use crate::providers::braintree::{encode_payload, key_pairs};
use crate::providers::mapping::{AmountFormat, Format, MappedKind, Mapping};
use crate::providers::{Answer, Scheme};

pub const PRESET: Preset = Preset {
    kind: "braintree",
    scheme: |secrets, _| {
        Ok(Scheme::Braintree {
            keys: key_pairs(&secrets)?,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: braintree_mapping,
    confirmation: Confirmation::Unavailable,
    lookup: None,
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "transaction_settled",
        "transaction_settlement_declined",
        "transaction_disbursed",
        "dispute_opened",
    ],
    sample_currency: "EUR",
    sample_secret: "integration_public_key:integration_private_key",
};

fn braintree_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        format: Format::Braintree,
        booking_id: Some(path(
            "subject.transaction.order-id|subject.dispute.transaction.order-id",
        )),
        amount: Some(path(
            "subject.transaction.amount|subject.dispute.amount-disputed|subject.dispute.amount",
        )),
        amount_format: AmountFormat::Major,
        currency: Some(path(
            "subject.transaction.currency-iso-code|subject.dispute.currency-iso-code",
        )),
        failure_message: Some(path(
            "subject.transaction.processor-settlement-response-text",
        )),
        // A dispute's `kind` tells a retrieval (a request for information) from a chargeback.
        kind_from: Some(path("{kind}:{subject.dispute.kind}|{kind}")),
        types: types(&[
            ("transaction_settled", Succeeded),
            ("transaction_disbursed", Succeeded),
            ("transaction_settlement_declined", Failed),
            ("dispute_opened", Disputed),
            ("dispute_opened:chargeback", Disputed),
            ("dispute_opened:pre_arbitration", Disputed),
            ("dispute_opened:retrieval", DisputeInquiry),
            ("dispute_won:chargeback", DisputeWon),
            ("dispute_won:pre_arbitration", DisputeWon),
            ("dispute_won:retrieval", DisputeWon),
            ("dispute_won", DisputeWon),
            ("dispute_lost:chargeback", DisputeLost),
            ("dispute_lost:pre_arbitration", DisputeLost),
            ("dispute_lost", DisputeLost),
            ("dispute_accepted:chargeback", DisputeLost),
            ("dispute_accepted", DisputeLost),
        ]),
        ..mapping(
            "{kind}:{subject.transaction.id}:{timestamp}|{kind}:{subject.dispute.id}:{timestamp}|{kind}:{subject.subscription.id}:{timestamp}|{kind}:{subject.disbursement.id}:{timestamp}|{kind}:{timestamp}",
            "kind",
            "subject.transaction.id|subject.dispute.transaction.id",
        )
    }
}

/// `text` for an XML element's content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let currency = escape(&s.currency.to_ascii_uppercase());
    let amount = Money::new(s.amount, &currency).to_string();
    let amount = amount.split(' ').next().unwrap_or_default();
    let (id, booking) = (escape(s.payment_id), escape(s.booking_id));
    let transaction = |status: &str, extra: &str| {
        format!(
            "<transaction><id>{id}</id><status>{status}</status><type>sale</type>\
             <currency-iso-code>{currency}</currency-iso-code><amount>{amount}</amount>\
             <order-id>{booking}</order-id><payment-instrument-type>us_bank_account</payment-instrument-type>{extra}</transaction>"
        )
    };
    let subject = match s.event_type {
        "transaction_settled" => transaction("settled", ""),
        "transaction_disbursed" => transaction(
            "settled",
            &format!(
                "<disbursement-details><disbursement-date type=\"date\">{}</disbursement-date></disbursement-details>",
                &at[..10]
            ),
        ),
        "transaction_settlement_declined" => transaction(
            "settlement_declined",
            "<processor-settlement-response-code>4001</processor-settlement-response-code>\
             <processor-settlement-response-text>Settlement Declined</processor-settlement-response-text>",
        ),
        "dispute_opened" => format!(
            "<dispute><id>dp_{}</id><amount>{amount}</amount><amount-disputed>{amount}</amount-disputed>\
             <currency-iso-code>{currency}</currency-iso-code><kind>chargeback</kind><reason>fraud</reason>\
             <status>open</status><received-date type=\"date\">{}</received-date>\
             <transaction><id>{id}</id><amount>{amount}</amount><order-id>{booking}</order-id></transaction></dispute>",
            escape(s.event_id),
            &at[..10]
        ),
        other => return Err(format!("braintree: no sample of {other:?}")),
    };
    let xml = format!(
        "<notification><timestamp type=\"datetime\">{at}</timestamp><kind>{}</kind><subject>{subject}</subject></notification>",
        s.event_type
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_payload", &encode_payload(&xml))
        .finish();
    Ok(SampleRequest {
        body: body.into_bytes(),
        query: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_read_back_with_the_payment_booking_and_amount() {
        let mapping = braintree_mapping();
        for event_type in PRESET.sample_types {
            let sample = sample(&Sample {
                event_type,
                event_id: "1",
                payment_id: "txn_1",
                booking_id: "bk_<1>",
                amount: 11900,
                currency: "EUR",
                now: 1_700_000_000,
            })
            .unwrap();
            let read = mapping.format.read(&sample.body).unwrap();
            assert_eq!(mapping.payment_id.text(&read).as_deref(), Some("txn_1"));
            assert_eq!(
                mapping.booking_id.as_ref().unwrap().text(&read).as_deref(),
                Some("bk_<1>")
            );
            let amount = mapping.amount.as_ref().unwrap().value(&read).unwrap();
            assert_eq!(
                mapping.amount_format.minor_units(amount, Some("EUR")),
                Ok(11900)
            );
            let id = mapping.event_id.text(&read).unwrap();
            assert!(id.starts_with(&format!("{event_type}:")), "{id}");
            assert!(id.ends_with(":2023-11-14T22:13:20Z"), "{id}");
        }
    }
}
