//! Presets: the providers payhook knows by name. Each fills in what its provider documents (the
//! signature scheme, where its notifications keep their id, type, payment and amount, what its
//! statuses mean, and how its API confirms a notification), so a source needs only its name and
//! secrets (and API credentials where the API confirms). One file per provider, each citing the
//! documentation or official SDK it was built from.

pub mod adyen;
pub mod braintree;
pub mod checkout_com;
pub mod cinetpay;
pub mod fedapay;
pub mod gocardless;
pub mod kkiapay;
pub mod lemon_squeezy;
pub mod mercadopago;
pub mod mollie;
pub mod mtn_momo;
pub mod orange_money;
pub mod paddle;
pub mod paydunya;
pub mod paypal;
pub mod wave;

use std::time::Duration;

use super::confirm::Lookup;
use super::mapping::{AmountFormat, Extract, Format, MappedKind, Mapping};
use super::{Answer, Scheme};
use crate::domain::Secret;

/// Whether a provider's API must confirm each notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The notification proves nothing (no signature, or one over a constant): always.
    Required,
    /// The signature covers the body; confirming is the source's choice (`confirm = "api"`).
    Optional,
    /// The provider offers no API payhook can ask.
    Unavailable,
}

/// A provider's defaults.
pub struct Preset {
    /// The `kind` in `[[sources]]`.
    pub kind: &'static str,
    /// The scheme over the configured secrets; an error says what is wrong with them.
    pub scheme: fn(Vec<Secret>, Duration) -> Result<Scheme, String>,
    /// Whether the provider signs at all (else `secrets` is not asked for).
    pub signed: bool,
    /// The provider checks the notification URL with a `GET` and wants a `200` (CinetPay).
    pub answers_get: bool,
    /// The provider may send its notification with `PUT` rather than `POST` (MTN MoMo).
    pub takes_put: bool,
    /// The status a request whose signature is missing or wrong gets, when the provider
    /// documents one other than 400 (GoCardless: 498).
    pub forged_status: Option<u16>,
    /// How old (or early) a signed timestamp may be when the source sets no `tolerance`, where
    /// the provider documents its own (Paddle: 5 s); else 5 minutes.
    pub default_tolerance: Option<std::time::Duration>,
    pub mapping: fn() -> Mapping,
    pub confirmation: Confirmation,
    pub lookup: Option<fn() -> Lookup>,
    /// Where a request carries several events.
    pub batch: Option<&'static str>,
    pub answer: Answer,
    /// A realistic notification of `event_type` about payment `payment_id` for `booking_id`, as
    /// `payhook trigger` sends it (unsigned: the source signs it).
    pub sample: fn(&Sample<'_>) -> Result<SampleRequest, String>,
    /// The provider's event types `payhook trigger` knows, the default first.
    pub sample_types: &'static [&'static str],
    /// The currency of `payhook trigger`'s payments.
    pub sample_currency: &'static str,
    /// A secret of the provider's form, for examples and tests (empty when it signs nothing).
    pub sample_secret: &'static str,
}

/// A notification as the provider would post it, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRequest {
    pub body: Vec<u8>,
    /// The query string of the URL the provider posts to (MTN MoMo's callback names its payment
    /// there), without `?`.
    pub query: Option<String>,
}

impl SampleRequest {
    pub fn json(body: &serde_json::Value) -> Result<SampleRequest, String> {
        Ok(SampleRequest {
            body: serde_json::to_vec(body).expect("JSON serializes"),
            query: None,
        })
    }
}

impl std::fmt::Debug for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Preset({})", self.kind)
    }
}

impl PartialEq for Preset {
    fn eq(&self, other: &Preset) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Preset {}

/// What `payhook trigger` asks a preset for.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    pub event_type: &'a str,
    pub event_id: &'a str,
    pub payment_id: &'a str,
    pub booking_id: &'a str,
    /// In minor units.
    pub amount: i64,
    pub currency: &'a str,
    pub now: i64,
}

/// Every preset.
pub const ALL: &[&Preset] = &[
    &fedapay::PRESET,
    &wave::PRESET,
    &kkiapay::PRESET,
    &cinetpay::PRESET,
    &paydunya::PRESET,
    &adyen::PRESET,
    &gocardless::PRESET,
    &paddle::PRESET,
    &checkout_com::PRESET,
    &lemon_squeezy::PRESET,
    &paypal::PRESET,
    &braintree::PRESET,
    &mtn_momo::PRESET,
    &orange_money::PRESET,
    &mollie::PRESET,
    &mercadopago::PRESET,
];

/// The preset of `kind`, if payhook has one.
pub fn find(kind: &str) -> Option<&'static Preset> {
    ALL.iter().copied().find(|p| p.kind == kind)
}

/// The scheme of a provider that signs the raw body with HMAC-SHA256 in hex, in `header`.
pub(crate) fn body_hmac_sha256(
    header: &str,
    secrets: Vec<Secret>,
    tolerance: Duration,
) -> Result<Scheme, String> {
    use super::hmac::{Algorithm, Encoding, HmacScheme};
    Ok(Scheme::Hmac {
        scheme: HmacScheme {
            header: header.into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: String::new(),
            timestamp_header: None,
            signed_content: "{body}".into(),
            url: None,
        },
        secrets,
        tolerance,
    })
}

/// A path or template written by a preset (its syntax is checked by the presets' tests).
pub(crate) fn path(spec: &str) -> Extract {
    Extract::parse(spec).unwrap_or_else(|| panic!("a preset's path {spec:?} parses"))
}

/// A mapping with every optional part empty: what a preset starts from.
pub(crate) fn mapping(event_id: &str, event_type: &str, payment_id: &str) -> Mapping {
    Mapping {
        format: Format::Json,
        event_id: path(event_id),
        event_type: path(event_type),
        kind_from: None,
        payment_id: path(payment_id),
        booking_id: None,
        amount: None,
        amount_format: AmountFormat::Minor,
        currency: None,
        default_currency: None,
        amount_refunded: None,
        refund_id: None,
        refund_amount: None,
        failure_message: None,
        types: Default::default(),
        currency_aliases: Default::default(),
        currency_exponents: Default::default(),
        confirmed: false,
        query: false,
    }
}

/// `(word, kind)` pairs as a mapping's `types`.
pub(crate) fn types(pairs: &[(&str, MappedKind)]) -> std::collections::HashMap<String, MappedKind> {
    pairs.iter().map(|(w, k)| (w.to_string(), *k)).collect()
}

/// FCFA, the word West and Central African providers write for the CFA franc, read as the West
/// African one (XOF, UEMOA); a source in Central Africa (XAF, CEMAC) says so in
/// `mapping.currency_aliases`.
pub(crate) fn fcfa() -> std::collections::HashMap<String, String> {
    [("FCFA".to_string(), "XOF".to_string())].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_and_samples_what_it_reads() {
        for preset in ALL {
            let mapping = (preset.mapping)();
            if let Some(lookup) = preset.lookup {
                let _ = lookup();
            }
            for event_type in preset.sample_types {
                let sample = (preset.sample)(&Sample {
                    event_type,
                    event_id: "evt_1",
                    payment_id: "250828",
                    booking_id: "booking-1",
                    amount: 10_000,
                    currency: "XOF",
                    now: 1_700_000_000,
                })
                .unwrap();
                let payload = if mapping.query {
                    crate::providers::with_query(sample.query.as_deref(), &sample.body).unwrap()
                } else {
                    sample.body
                };
                let mut read = mapping
                    .read_arrival(&payload, 1_700_000_000, &Default::default())
                    .unwrap();
                if let Some(batch) = preset.batch {
                    // A batch's events are read one by one: the first is this one.
                    read = path(batch).value(&read).unwrap()[0].clone();
                }
                assert!(mapping.event_id.text(&read).is_some(), "{}", preset.kind);
                assert_eq!(
                    mapping.event_type.text(&read).as_deref(),
                    Some(*event_type),
                    "{}",
                    preset.kind
                );
            }
        }
    }
}
