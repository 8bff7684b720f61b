//! CinetPay (Côte d'Ivoire, Senegal, Cameroon, Burkina Faso...: mobile money and cards in XOF,
//! XAF, CDF, GNF, USD), Checkout API v2.
//!
//! - Signature: the header `x-token`, HMAC-SHA256 in hex with the merchant's Secret Key of sixteen
//!   form values joined in a fixed order (docs.cinetpay.com/api/1.0-en/checkout/hmac; see
//!   `form_hmac::CINETPAY`). It covers no time, and CinetPay's own documentation says to trust
//!   only its check API: confirmation is required.
//! - Body: `application/x-www-form-urlencoded` (docs.cinetpay.com/api/1.0-en/checkout/notification):
//!   `cpm_trans_id` (the `transaction_id` given at initialisation) the payment, `cpm_amount` and
//!   `cpm_currency` in currency units, `cpm_custom` the `metadata` given at initialisation,
//!   `cpm_error_message` what CinetPay says happened (`SUCCES`...). A transaction may be notified
//!   several times (first `WAITING_FOR_CUSTOMER` for operators that confirm by push, then its
//!   outcome): the event id is the transaction and that message.
//! - Confirmation (required): `POST https://api-checkout.cinetpay.com/v2/payment/check` with
//!   `{"apikey", "site_id", "transaction_id"}` (docs.cinetpay.com/api/1.0-fr/checkout/verification);
//!   its `data.status` (`ACCEPTED`, `REFUSED`, `WAITING_FOR_CUSTOMER`), `data.amount`,
//!   `data.currency` and `data.metadata` (the booking) are what the ledger reads.
//! - CinetPay also pings the notification URL with a GET and expects 200 (same page).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::domain::money::Money;
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::form_hmac::CINETPAY;
use crate::providers::mapping::{AmountFormat, Format, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "cinetpay",
    scheme: |secrets, _| {
        Ok(Scheme::FormHmac {
            layout: &CINETPAY,
            secrets,
        })
    },
    signed: true,
    answers_get: true,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: cinetpay_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["SUCCES", "PAYMENT_FAILED", "WAITING_FOR_CUSTOMER"],
    sample_currency: "XOF",
    sample_secret: "202207891862f8b1b5b6e0b6.52306839",
};

fn cinetpay_mapping() -> Mapping {
    Mapping {
        format: Format::Form,
        booking_id: Some(path("cpm_custom")),
        amount: Some(path("cpm_amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("cpm_currency")),
        default_currency: Some("XOF".into()),
        // What the notification claims is held against what the check API answers; CinetPay's
        // other messages (failures, waiting) are left for the API to name.
        types: types(&[("SUCCES", MappedKind::Succeeded)]),
        currency_aliases: fcfa(),
        ..mapping(
            "{cpm_trans_id}:{cpm_error_message}",
            "cpm_error_message",
            "cpm_trans_id",
        )
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api-checkout.cinetpay.com".into(),
        credentials: vec!["apikey".into(), "site_id".into()],
        optional: vec![],
        token: None,
        request: Request::PostJson(json!({
            "apikey": "{apikey}",
            "site_id": "{site_id}",
            "transaction_id": "{id}",
        })),
        path: "/v2/payment/check".into(),
        headers: vec![],
        id: path("cpm_trans_id"),
        object: Some(path("data")),
        status: path("status"),
        statuses: [
            ("ACCEPTED", Verdict::Is(Succeeded)),
            ("REFUSED", Verdict::Is(Failed)),
            ("WAITING_FOR_CUSTOMER", Verdict::Is(Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("currency")),
        default_currency: Some("XOF".into()),
        booking_id: Some(path("metadata")),
        failure_message: None,
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !PRESET.sample_types.contains(&s.event_type) {
        return Err(format!("cinetpay: no sample of {:?}", s.event_type));
    }
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let money = Money::new(s.amount, s.currency.to_ascii_lowercase()).to_string();
    let amount = money.split(' ').next().unwrap_or_default();
    let fields = [
        ("cpm_site_id", "445160"),
        ("cpm_trans_id", s.payment_id),
        ("cpm_trans_date", &at),
        ("cpm_amount", amount),
        ("cpm_currency", s.currency),
        ("signature", s.event_id),
        ("payment_method", "OM"),
        ("cel_phone_num", "0707070707"),
        ("cpm_phone_prefixe", "225"),
        ("cpm_language", "fr"),
        ("cpm_version", "V4"),
        ("cpm_payment_config", "SINGLE"),
        ("cpm_page_action", "PAYMENT"),
        ("cpm_custom", s.booking_id),
        ("cpm_designation", "Booking"),
        ("cpm_error_message", s.event_type),
    ];
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    Ok(SampleRequest {
        body: body.into_bytes(),
        query: None,
    })
}
