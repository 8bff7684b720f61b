//! `[[sources]]`: webhook sources beyond the `stripe` one that `STRIPE_WEBHOOK_SECRET` configures,
//! each on `POST /webhooks/{name}` with its own scheme, secrets, tolerance, networks and, for
//! payloads not shaped like Stripe's, a mapping.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{ConfigError, Secret, check_http_url, parse_cidr, parse_duration};
use crate::providers::confirm::Confirm;
use crate::providers::hmac::{Algorithm, Encoding, HmacScheme};
use crate::providers::mapping::{AmountFormat, Extract, Format, MappedKind, Mapping};
use crate::providers::presets::{self, Confirmation, Preset};
use crate::providers::{Scheme, SigningKeys, Source, standard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceKind {
    Stripe,
    StandardWebhooks,
    Hmac,
    /// Presets: an `hmac` source with the provider's documented scheme filled in.
    Paystack,
    Razorpay,
    Square,
    /// Flutterwave's `verif-hash`: the secret hash itself, compared in constant time.
    Flutterwave,
    /// A provider of [`presets::ALL`].
    Preset(&'static Preset),
}

impl SourceKind {
    fn parse(kind: &str) -> Option<SourceKind> {
        Some(match kind {
            "stripe" => SourceKind::Stripe,
            "standard-webhooks" => SourceKind::StandardWebhooks,
            "hmac" => SourceKind::Hmac,
            "paystack" => SourceKind::Paystack,
            "razorpay" => SourceKind::Razorpay,
            "square" => SourceKind::Square,
            "flutterwave" => SourceKind::Flutterwave,
            other => SourceKind::Preset(presets::find(other)?),
        })
    }

    /// The mapping of the provider's payment events, for the presets that sign with a plain HMAC
    /// (each documented in docs/presets.md).
    fn default_mapping(self) -> Option<Mapping> {
        use crate::providers::presets::{mapping, path, types};
        use MappedKind::*;
        Some(match self {
            // paystack.com/docs/payments/webhooks: `charge.success`, `data.amount` in kobo.
            SourceKind::Paystack => Mapping {
                booking_id: Some(path("data.metadata.booking_id")),
                amount: Some(path("data.amount")),
                currency: Some(path("data.currency")),
                failure_message: Some(path("data.gateway_response")),
                types: types(&[("charge.success", Succeeded)]),
                ..mapping("{data.id}:{event}", "event", "data.reference")
            },
            // razorpay.com/docs/webhooks/payments: the payment entity, amounts in paise;
            // razorpay.com/docs/webhooks/refunds: each refund event carries the refund entity
            // and its payment's.
            SourceKind::Razorpay => Mapping {
                booking_id: Some(path("payload.payment.entity.notes.booking_id")),
                amount: Some(path("payload.payment.entity.amount")),
                currency: Some(path("payload.payment.entity.currency")),
                failure_message: Some(path(
                    "payload.refund.entity.error_description|payload.payment.entity.error_description",
                )),
                refund_id: Some(path("payload.refund.entity.id")),
                refund_amount: Some(path("payload.refund.entity.amount")),
                types: types(&[
                    ("payment.captured", Succeeded),
                    ("payment.failed", Failed),
                    ("refund.processed", RefundSucceeded),
                    ("refund.failed", RefundFailed),
                ]),
                // A refund's events by the refund, a payment's by the payment; any other event
                // (a settlement, a subscription: stored, ignored) by the id Razorpay sends for
                // each event, `x-razorpay-event-id`, else its type and time.
                ..mapping(
                    "{payload.refund.entity.id}:{event}|{payload.payment.entity.id}:{event}\
                     |{$header.x-razorpay-event-id}|{event}:{created_at}",
                    "event",
                    "payload.refund.entity.payment_id|payload.payment.entity.id",
                )
            },
            // developer.squareup.com/reference/square/payments-api/webhooks/payment.updated: the
            // payment's `status` says what happened; amounts in cents. refund.updated (the
            // refunds API's webhooks): one refund, its `status` and its own `amount_money`.
            SourceKind::Square => Mapping {
                kind_from: Some(path(
                    "{type}:{data.object.payment.status}|{type}:{data.object.refund.status}",
                )),
                booking_id: Some(path("data.object.payment.reference_id")),
                amount: Some(path("data.object.payment.amount_money.amount")),
                currency: Some(path(
                    "data.object.payment.amount_money.currency|data.object.refund.amount_money.currency",
                )),
                refund_id: Some(path("data.object.refund.id")),
                refund_amount: Some(path("data.object.refund.amount_money.amount")),
                types: types(&[
                    ("payment.updated:COMPLETED", Succeeded),
                    ("payment.created:COMPLETED", Succeeded),
                    ("payment.updated:FAILED", Failed),
                    ("payment.updated:CANCELED", Canceled),
                    ("payment.updated:APPROVED", Processing),
                    ("refund.created:COMPLETED", RefundSucceeded),
                    ("refund.updated:COMPLETED", RefundSucceeded),
                    ("refund.updated:FAILED", RefundFailed),
                    ("refund.updated:REJECTED", RefundFailed),
                ]),
                ..mapping("event_id", "type", "data.object.refund.payment_id|data.id")
            },
            // developer.flutterwave.com/docs/integration-guides/webhooks: `charge.completed`
            // whose `data.status` says how; `data.amount` in major units.
            SourceKind::Flutterwave => Mapping {
                kind_from: Some(path("{event}:{data.status}")),
                amount: Some(path("data.amount")),
                amount_format: AmountFormat::Major,
                currency: Some(path("data.currency")),
                failure_message: Some(path("data.processor_response")),
                types: types(&[
                    ("charge.completed:successful", Succeeded),
                    ("charge.completed:failed", Failed),
                ]),
                // One transaction's notifications differ by status (pending, then successful):
                // each status its own event, a repeat of one a duplicate.
                ..mapping("{data.id}:{event}:{data.status}", "event", "data.tx_ref")
            },
            _ => return None,
        })
    }

    /// Every kind, as written in the configuration.
    fn all() -> Vec<&'static str> {
        let builtin = [
            "stripe",
            "standard-webhooks",
            "hmac",
            "paystack",
            "razorpay",
            "square",
            "flutterwave",
        ];
        builtin
            .into_iter()
            .chain(presets::ALL.iter().map(|p| p.kind))
            .collect()
    }

    /// The provider's documented scheme, for a preset: header, algorithm, encoding, content.
    fn preset(self) -> Option<(&'static str, Algorithm, Encoding, &'static str)> {
        match self {
            // paystack.com/docs/payments/webhooks: HMAC-SHA512 of the body with the secret key.
            SourceKind::Paystack => Some((
                "x-paystack-signature",
                Algorithm::Sha512,
                Encoding::Hex,
                "{body}",
            )),
            // razorpay.com/docs/webhooks/validate-test: HMAC-SHA256 of the body, hex.
            SourceKind::Razorpay => Some((
                "x-razorpay-signature",
                Algorithm::Sha256,
                Encoding::Hex,
                "{body}",
            )),
            // developer.squareup.com/docs/webhooks/step3validate: HMAC-SHA256, base64, of the
            // notification URL followed by the body.
            SourceKind::Square => Some((
                "x-square-hmacsha256-signature",
                Algorithm::Sha256,
                Encoding::Base64,
                "{url}{body}",
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceFile {
    name: Option<String>,
    kind: Option<String>,
    secrets: Option<Vec<String>>,
    /// A file holding the secrets, one a line (a Docker or systemd secret).
    secrets_file: Option<String>,
    /// `api`: the provider's API confirms each notification before the ledger reads it;
    /// `signature`: the signature is enough.
    confirm: Option<ConfirmMode>,
    /// The provider's API: `url`, and the credentials its preset names (or, on an `hmac` or
    /// `standard-webhooks` source, how to ask it).
    api: Option<HashMap<String, ApiValue>>,
    tolerance: Option<String>,
    allowed_cidrs: Option<Vec<String>>,
    // hmac
    header: Option<String>,
    algorithm: Option<Algorithm>,
    encoding: Option<Encoding>,
    prefix: Option<String>,
    timestamp_header: Option<String>,
    signed_content: Option<String>,
    url: Option<String>,
    mapping: Option<MappingFile>,
    /// More paths the provider may post to, beside `/webhooks/{name}`.
    routes: Option<Vec<String>>,
}

/// A value of `[sources.api]`: text, or (`statuses`) a table of words.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ApiValue {
    Text(String),
    Table(HashMap<String, String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConfirmMode {
    Api,
    Signature,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    format: Option<Format>,
    kind_from: Option<String>,
    amount_format: Option<AmountFormat>,
    default_currency: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    payment_id: Option<String>,
    booking_id: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    amount_refunded: Option<String>,
    refund_id: Option<String>,
    refund_amount: Option<String>,
    failure_message: Option<String>,
    types: Option<HashMap<String, MappedKind>>,
    currency_aliases: Option<HashMap<String, String>>,
    currency_exponents: Option<HashMap<String, u32>>,
}

/// The sources, and their route aliases as (path, source).
pub(super) fn sources_from(
    files: Vec<SourceFile>,
) -> Result<(Vec<Source>, super::WebhookRoutes), ConfigError> {
    let mut sources: Vec<Source> = Vec::new();
    let mut routes = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let key = |field: &str| format!("sources[{i}].{field}");
        let name = file.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
            ConfigError::new(key("name"), "required (the route is POST /webhooks/{name})")
        })?;
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?}: use lowercase letters, digits, - and _"),
            ));
        }
        if name == "stripe" {
            return Err(ConfigError::new(
                key("name"),
                "\"stripe\" is the source STRIPE_WEBHOOK_SECRET and [stripe] configure; pick another name",
            ));
        }
        if sources.iter().any(|s| s.name == name) {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let kinds = || format!("one of {}", SourceKind::all().join(", "));
        let kind = match file.kind.as_deref() {
            None => {
                return Err(ConfigError::new(
                    key("kind"),
                    format!("required: {}", kinds()),
                ));
            }
            Some(k) => SourceKind::parse(k).ok_or_else(|| {
                ConfigError::new(
                    key("kind"),
                    format!("{k:?} is not a kind payhook knows: {}", kinds()),
                )
            })?,
        };
        let unsigned = matches!(kind, SourceKind::Preset(p) if !p.signed);
        let given =
            super::secrets::inline_or_file(file.secrets, file.secrets_file, &key("secrets"))?;
        let secrets: Vec<Secret> = match (unsigned, given) {
            (true, Some(_)) => {
                return Err(ConfigError::new(
                    key("secrets"),
                    "this provider takes no secret: its API confirms each notification (give [sources.api])",
                ));
            }
            (true, None) => Vec::new(),
            (false, secrets) => secrets
                .filter(|s| !s.is_empty() && s.iter().all(|s| !s.is_empty()))
                .ok_or_else(|| {
                    ConfigError::new(key("secrets"), "at least one non-empty secret is required")
                })?
                .into_iter()
                .map(Secret::new)
                .collect(),
        };
        let tolerance = match (&file.tolerance, kind) {
            (None, SourceKind::Preset(p)) if p.default_tolerance.is_some() => {
                p.default_tolerance.unwrap_or_default()
            }
            (given, _) => parse_duration(&key("tolerance"), given.as_deref().unwrap_or("5m"))?,
        };
        if tolerance.is_zero() {
            return Err(ConfigError::new(key("tolerance"), "must be at least 1s"));
        }
        let allowed = file
            .allowed_cidrs
            .unwrap_or_default()
            .iter()
            .map(|c| parse_cidr(&key("allowed_cidrs"), c))
            .collect::<Result<_, _>>()?;
        let hmac_only = [
            ("header", file.header.is_some()),
            ("algorithm", file.algorithm.is_some()),
            ("encoding", file.encoding.is_some()),
            ("prefix", file.prefix.is_some()),
            ("timestamp_header", file.timestamp_header.is_some()),
            ("signed_content", file.signed_content.is_some()),
            ("url", file.url.is_some()),
        ];
        // A preset fixes the scheme; Square's still needs the notification URL it signs.
        let allowed_here = |field: &str| match kind {
            SourceKind::Hmac => true,
            SourceKind::Square => field == "url",
            _ => false,
        };
        if let Some((field, _)) = hmac_only.iter().find(|(f, set)| *set && !allowed_here(f)) {
            return Err(ConfigError::new(
                key(field),
                "only a source of kind \"hmac\" takes it (a preset fixes its provider's scheme)",
            ));
        }
        let scheme = match kind {
            SourceKind::Stripe => Scheme::Stripe { secrets, tolerance },
            SourceKind::Flutterwave => Scheme::SharedSecret {
                header: "verif-hash".into(),
                secrets,
            },
            SourceKind::Paystack | SourceKind::Razorpay | SourceKind::Square => {
                let (header, algorithm, encoding, signed_content) =
                    kind.preset().expect("a preset");
                let url = match kind {
                    SourceKind::Square => {
                        let url = file.url.clone().ok_or_else(|| {
                            ConfigError::new(
                                key("url"),
                                "required for square: the notification URL Square calls (it is signed)",
                            )
                        })?;
                        check_http_url(&url, &key("url"))?;
                        Some(url)
                    }
                    _ => None,
                };
                Scheme::Hmac {
                    scheme: HmacScheme {
                        header: header.into(),
                        algorithm,
                        encoding,
                        prefix: String::new(),
                        timestamp_header: None,
                        signed_content: signed_content.into(),
                        url,
                    },
                    secrets,
                    tolerance,
                }
            }
            SourceKind::StandardWebhooks => {
                let keys = secrets
                    .iter()
                    .map(|s| standard::signing_key(s.expose()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ConfigError::new(
                            key("secrets"),
                            "expected whsec_ followed by a base64 key of 24 to 64 bytes",
                        )
                    })?;
                Scheme::StandardWebhooks {
                    keys: SigningKeys(keys),
                    tolerance,
                }
            }
            SourceKind::Preset(preset) => (preset.scheme)(secrets, tolerance)
                .map_err(|why| ConfigError::new(key("secrets"), why))?,
            SourceKind::Hmac => {
                let header = file
                    .header
                    .filter(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).is_ok())
                    .ok_or_else(|| {
                        ConfigError::new(
                            key("header"),
                            "required: the header carrying the signature",
                        )
                    })?
                    .to_ascii_lowercase();
                let signed_content = file.signed_content.unwrap_or_else(|| "{body}".into());
                if !signed_content.contains("{body}") {
                    return Err(ConfigError::new(
                        key("signed_content"),
                        "must contain {body}",
                    ));
                }
                if signed_content.contains("{timestamp}") && file.timestamp_header.is_none() {
                    return Err(ConfigError::new(
                        key("timestamp_header"),
                        "required: signed_content uses {timestamp}",
                    ));
                }
                if signed_content.contains("{url}") {
                    let url = file.url.as_deref().ok_or_else(|| {
                        ConfigError::new(key("url"), "required: signed_content uses {url} (the notification URL the provider calls)")
                    })?;
                    check_http_url(url, &key("url"))?;
                }
                Scheme::Hmac {
                    scheme: HmacScheme {
                        header,
                        algorithm: file.algorithm.unwrap_or(Algorithm::Sha256),
                        encoding: file.encoding.unwrap_or(Encoding::Hex),
                        prefix: file.prefix.unwrap_or_default(),
                        timestamp_header: file.timestamp_header.map(|h| h.to_ascii_lowercase()),
                        signed_content,
                        url: file.url,
                    },
                    secrets,
                    tolerance,
                }
            }
        };
        let mapping = match (kind, file.mapping) {
            (SourceKind::Stripe | SourceKind::StandardWebhooks, None) => None,
            (SourceKind::Preset(preset), m) => Some(Arc::new(mapping_over(
                (preset.mapping)(),
                m.unwrap_or_default(),
                &|f| key(&format!("mapping.{f}")),
            )?)),
            (kind, m) if kind.default_mapping().is_some() => Some(Arc::new(mapping_over(
                kind.default_mapping().expect("a default mapping"),
                m.unwrap_or_default(),
                &|f| key(&format!("mapping.{f}")),
            )?)),
            (_, None) => {
                return Err(ConfigError::new(
                    key("mapping"),
                    "required for this source: where its events keep their id, type and payment",
                ));
            }
            (SourceKind::Stripe, Some(_)) => {
                return Err(ConfigError::new(
                    key("mapping"),
                    "a stripe source reads Stripe's events as they are",
                ));
            }
            (kind, Some(m)) => Some(Arc::new(mapping_from(m, kind, &|f| {
                key(&format!("mapping.{f}"))
            })?)),
        };
        for path in file.routes.unwrap_or_default() {
            routes.push((super::route_alias(&key("routes"), &path)?, name.clone()));
        }
        let preset = match kind {
            SourceKind::Preset(p) => Some(p),
            _ => None,
        };
        let confirm = confirm_from(preset, mapping.as_deref(), file.confirm, file.api, &key)?;
        let mapping = mapping.map(|m| {
            let mut m = Arc::unwrap_or_clone(m);
            m.confirmed = confirm.is_some();
            Arc::new(m)
        });
        sources.push(Source {
            allowed,
            mapping,
            batch: preset.and_then(|p| p.batch).map(presets::path),
            confirm,
            answer: preset.map(|p| p.answer).unwrap_or_default(),
            preset,
            ..Source::new(name, scheme)
        });
    }
    Ok((sources, routes))
}

/// The confirmation by API a source asked for (or its provider requires), its credentials checked.
fn confirm_from(
    preset: Option<&'static Preset>,
    mapping: Option<&Mapping>,
    mode: Option<ConfirmMode>,
    api: Option<HashMap<String, ApiValue>>,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<Confirm>, ConfigError> {
    let confirmation = match (preset, mapping) {
        (Some(p), _) if p.confirmation != Confirmation::Unavailable => p.confirmation,
        // A source with a mapping (a preset payhook knows no lookup for, too) may say itself how
        // its provider's API is asked.
        (_, Some(_)) => Confirmation::Optional,
        (_, None) => Confirmation::Unavailable,
    };
    let wanted = match (confirmation, mode) {
        (Confirmation::Required, Some(ConfirmMode::Signature)) => {
            return Err(ConfigError::new(
                key("confirm"),
                "this provider's notifications prove nothing on their own: its API must confirm them (confirm = \"api\")",
            ));
        }
        (Confirmation::Required, _) => true,
        (Confirmation::Optional, mode) => mode == Some(ConfirmMode::Api),
        (Confirmation::Unavailable, Some(ConfirmMode::Api)) => {
            return Err(ConfigError::new(
                key("confirm"),
                "payhook knows no API to confirm this kind of source's notifications with",
            ));
        }
        (Confirmation::Unavailable, _) => false,
    };
    if !wanted {
        if api.is_some() {
            return Err(ConfigError::new(
                key("api"),
                "only a source whose notifications the provider's API confirms takes it (confirm = \"api\")",
            ));
        }
        return Ok(None);
    }
    let Some(preset) = preset.filter(|p| p.lookup.is_some()) else {
        let mapping = mapping.expect("a source that confirms has a mapping");
        return generic_lookup(api, mapping, key).map(Some);
    };
    let lookup = (preset.lookup.expect("a preset that confirms has a lookup"))();
    let api = api.ok_or_else(|| {
        ConfigError::new(
            key("api"),
            format!(
                "required: [sources.api] with {} (the provider's API confirms each notification)",
                lookup.credentials.join(", ")
            ),
        )
    })?;
    let mut api = texts(api, key)?;
    let url = api.remove("url").unwrap_or_else(|| lookup.base_url.clone());
    check_http_url(&url, &key("api.url"))?;
    let mut credentials = HashMap::new();
    for name in &lookup.credentials {
        let value = api
            .remove(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ConfigError::new(key(&format!("api.{name}")), "required"))?;
        credentials.insert(name.clone(), Secret::new(value));
    }
    for (name, _) in &lookup.optional {
        if let Some(value) = api.remove(name) {
            credentials.insert(name.clone(), Secret::new(value));
        }
    }
    if let Some(unknown) = api.keys().min() {
        let mut known: Vec<&str> = vec!["url"];
        known.extend(lookup.credentials.iter().map(String::as_str));
        known.extend(lookup.optional.iter().map(|(n, _)| n.as_str()));
        return Err(ConfigError::new(
            key(&format!("api.{unknown}")),
            format!("unknown; this provider's API takes {}", known.join(", ")),
        ));
    }
    Ok(Some(Confirm::new(lookup, url, credentials)))
}

/// `[sources.api]` where every value is text.
fn texts(
    api: HashMap<String, ApiValue>,
    key: &dyn Fn(&str) -> String,
) -> Result<HashMap<String, String>, ConfigError> {
    api.into_iter()
        .map(|(name, value)| match value {
            ApiValue::Text(text) => Ok((name, text)),
            ApiValue::Table(_) => Err(ConfigError::new(
                key(&format!("api.{name}")),
                "expected a string",
            )),
        })
        .collect()
}

/// How an `hmac` or `standard-webhooks` source asks its provider's API about the payment its
/// mapping's `payment_id` names: `GET {url}{path}`, `{id}` in `path` the payment id.
fn generic_lookup(
    api: Option<HashMap<String, ApiValue>>,
    mapping: &Mapping,
    key: &dyn Fn(&str) -> String,
) -> Result<Confirm, ConfigError> {
    use crate::providers::confirm::{Lookup, Request, Verdict};
    let mut api = api.ok_or_else(|| {
        ConfigError::new(
            key("api"),
            "required: [sources.api] with url, path, status and statuses",
        )
    })?;
    let statuses = match api.remove("statuses") {
        Some(ApiValue::Table(table)) if !table.is_empty() => table,
        _ => {
            return Err(ConfigError::new(
                key("api.statuses"),
                "required: a table of the API's status words, each \"succeeded\", \"failed\", \"processing\", \"canceled\", \"refunded\", \"disputed\" or \"unknown\" (no such payment)",
            ));
        }
    };
    let mut api = texts(api, key)?;
    let mut take = |name: &str| api.remove(name).filter(|v| !v.trim().is_empty());
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| ConfigError::new(key(&format!("api.{name}")), "required"))
    };
    let url = required(take("url"), "url")?;
    check_http_url(&url, &key("api.url"))?;
    let path = required(take("path"), "path")?;
    if !path.starts_with('/') || !path.contains("{id}") {
        return Err(ConfigError::new(
            key("api.path"),
            format!("{path:?}: a path starting with / holding {{id}} (the payment's id)"),
        ));
    }
    let extract = |name: &str, spec: Option<String>| -> Result<Option<Extract>, ConfigError> {
        spec.map(|s| {
            Extract::parse(&s).ok_or_else(|| {
                ConfigError::new(key(&format!("api.{name}")), format!("{s:?}: a dotted path"))
            })
        })
        .transpose()
    };
    let status =
        extract("status", Some(required(take("status"), "status")?))?.expect("a status path");
    let mut verdicts = Vec::new();
    for (word, meaning) in statuses {
        let verdict = match meaning.as_str() {
            "unknown" => Verdict::Unknown,
            other => Verdict::Is(
                serde_json::from_value(serde_json::Value::String(other.into())).map_err(|_| {
                    ConfigError::new(
                        key(&format!("api.statuses.{word}")),
                        format!("{other:?}: expected succeeded, failed, processing, canceled, refunded, disputed or unknown"),
                    )
                })?,
            ),
        };
        verdicts.push((word, verdict));
    }
    let amount_format = match take("amount_format").as_deref() {
        None | Some("minor") => AmountFormat::Minor,
        Some("major") => AmountFormat::Major,
        Some(other) => {
            return Err(ConfigError::new(
                key("api.amount_format"),
                format!("{other:?}: expected minor or major"),
            ));
        }
    };
    let mut credentials = HashMap::new();
    let mut headers = Vec::new();
    if let Some(value) = take("authorization") {
        credentials.insert("authorization".to_string(), Secret::new(value));
        headers.push(("authorization".to_string(), "{authorization}".to_string()));
    }
    let lookup = Lookup {
        base_url: url.clone(),
        credentials: Vec::new(),
        optional: Vec::new(),
        token: None,
        request: Request::Get,
        path,
        headers,
        id: mapping.payment_id.clone(),
        object: None,
        status,
        statuses: verdicts,
        amount: extract("amount", take("amount"))?,
        amount_format,
        currency: extract("currency", take("currency"))?,
        default_currency: None,
        booking_id: extract("booking_id", take("booking_id"))?,
        failure_message: extract("failure_message", take("failure_message"))?,
        unknown_status: None,
    };
    if let Some(unknown) = api.keys().min() {
        return Err(ConfigError::new(
            key(&format!("api.{unknown}")),
            "unknown; [sources.api] takes url, path, authorization, status, statuses, amount, amount_format, currency, booking_id and failure_message",
        ));
    }
    Ok(Confirm::new(lookup, url, credentials))
}

/// A preset's mapping with what the source's `[sources.mapping]` says instead.
fn mapping_over(
    mut base: Mapping,
    file: MappingFile,
    key: &dyn Fn(&str) -> String,
) -> Result<Mapping, ConfigError> {
    let parse = |field: &str, spec: String| {
        Extract::parse(&spec).ok_or_else(|| {
            ConfigError::new(
                key(field),
                format!("{spec:?}: a dotted path (data.id), a template ({{a}}:{{b.c}}) or alternatives (a|b)"),
            )
        })
    };
    macro_rules! over {
        ($($field:ident),*) => {$(
            if let Some(spec) = file.$field {
                base.$field = parse(stringify!($field), spec)?;
            }
        )*};
    }
    over!(event_id, event_type, payment_id);
    macro_rules! over_opt {
        ($($field:ident),*) => {$(
            if let Some(spec) = file.$field {
                base.$field = Some(parse(stringify!($field), spec)?);
            }
        )*};
    }
    over_opt!(
        kind_from,
        booking_id,
        amount,
        currency,
        amount_refunded,
        refund_id,
        refund_amount,
        failure_message
    );
    if let Some(format) = file.format {
        base.format = format;
    }
    if let Some(f) = file.amount_format {
        base.amount_format = f;
    }
    if let Some(c) = file.default_currency {
        base.default_currency = Some(iso_code(&key("default_currency"), c)?);
    }
    let given = file.types.is_some();
    base.types.extend(file.types.unwrap_or_default());
    if given && base.types.is_empty() {
        return Err(ConfigError::new(key("types"), MAP_A_TYPE));
    }
    for (alias, iso) in file.currency_aliases.unwrap_or_default() {
        let iso = iso_code(&key(&format!("currency_aliases.{alias}")), iso)?;
        base.currency_aliases.insert(alias, iso);
    }
    base.currency_exponents
        .extend(currency_exponents(file.currency_exponents, key)?);
    refunds_named(&base, key)?;
    Ok(base)
}

/// `currency_exponents`: ISO codes (any case) to the provider's digits after the point.
fn currency_exponents(
    given: Option<HashMap<String, u32>>,
    key: &dyn Fn(&str) -> String,
) -> Result<HashMap<String, u32>, ConfigError> {
    let mut out = HashMap::new();
    for (code, digits) in given.unwrap_or_default() {
        let field = key(&format!("currency_exponents.{code}"));
        let code = iso_code(&field, code)?;
        if digits > 4 {
            return Err(ConfigError::new(
                field,
                format!("{digits} decimals: a currency's minor unit has 0 to 4"),
            ));
        }
        out.insert(code.to_ascii_lowercase(), digits);
    }
    Ok(out)
}

/// What a mapping's `types` may say, for the error that asks for one.
const MAP_A_TYPE: &str = "map at least one of the provider's event types to succeeded, authorized, failed, processing, canceled, refunded, disputed, dispute_inquiry, dispute_won, dispute_lost, refund_succeeded or refund_failed";

/// A refund event is read as one refund: the mapping must say where its id and amount are.
fn refunds_named(mapping: &Mapping, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let Some(word) = mapping.types.iter().find_map(|(word, kind)| {
        matches!(kind, MappedKind::RefundSucceeded | MappedKind::RefundFailed).then_some(word)
    }) else {
        return Ok(());
    };
    for (field, set) in [
        ("refund_id", mapping.refund_id.is_some()),
        ("refund_amount", mapping.refund_amount.is_some()),
    ] {
        if !set {
            return Err(ConfigError::new(
                key(field),
                format!(
                    "required: types maps {word:?} to a refund, read as one refund with its id and amount"
                ),
            ));
        }
    }
    Ok(())
}

fn iso_code(key: &str, iso: String) -> Result<String, ConfigError> {
    if iso.len() != 3 || !iso.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ConfigError::new(
            key,
            format!("{iso:?} is not a three-letter ISO 4217 code"),
        ));
    }
    Ok(iso)
}

fn mapping_from(
    file: MappingFile,
    kind: SourceKind,
    key: &dyn Fn(&str) -> String,
) -> Result<Mapping, ConfigError> {
    let extract = |field: &str, spec: Option<String>| -> Result<Option<Extract>, ConfigError> {
        spec.map(|s| {
            Extract::parse(&s).ok_or_else(|| {
                ConfigError::new(
                    key(field),
                    format!("{s:?}: a dotted path (data.id), a template ({{a}}:{{b.c}}) or alternatives (a|b)"),
                )
            })
        })
        .transpose()
    };
    let required = |field: &str, spec: Option<String>| -> Result<Extract, ConfigError> {
        extract(field, spec)?.ok_or_else(|| ConfigError::new(key(field), "required"))
    };
    let event_id = match (kind, file.event_id) {
        // The signed webhook-id is the event's id.
        (SourceKind::StandardWebhooks, Some(_)) => {
            return Err(ConfigError::new(
                key("event_id"),
                "a standard-webhooks source uses the signed webhook-id as the event id",
            ));
        }
        (SourceKind::StandardWebhooks, None) => Extract::Path(vec!["id".into()]),
        (_, spec) => required("event_id", spec)?,
    };
    let types = file.types.unwrap_or_default();
    if types.is_empty() {
        return Err(ConfigError::new(key("types"), MAP_A_TYPE));
    }
    let mut currency_aliases = HashMap::new();
    for (alias, iso) in file.currency_aliases.unwrap_or_default() {
        let iso = iso_code(&key(&format!("currency_aliases.{alias}")), iso)?;
        currency_aliases.insert(alias, iso);
    }
    let mapping = Mapping {
        format: file.format.unwrap_or_default(),
        kind_from: extract("kind_from", file.kind_from)?,
        amount_format: file.amount_format.unwrap_or_default(),
        default_currency: file
            .default_currency
            .map(|c| iso_code(&key("default_currency"), c))
            .transpose()?,
        confirmed: false,
        query: false,
        event_id,
        event_type: required("event_type", file.event_type.or(Some("type".into())))?,
        payment_id: required("payment_id", file.payment_id)?,
        booking_id: extract("booking_id", file.booking_id)?,
        amount: extract("amount", file.amount)?,
        currency: extract("currency", file.currency)?,
        amount_refunded: extract("amount_refunded", file.amount_refunded)?,
        refund_id: extract("refund_id", file.refund_id)?,
        refund_amount: extract("refund_amount", file.refund_amount)?,
        failure_message: extract("failure_message", file.failure_message)?,
        types,
        currency_aliases,
        currency_exponents: currency_exponents(file.currency_exponents, key)?,
    };
    refunds_named(&mapping, key)?;
    Ok(mapping)
}
