//! `[[sources]]`: webhook sources beyond the `stripe` one that `STRIPE_WEBHOOK_SECRET` configures,
//! each on `POST /webhooks/{name}` with its own scheme, secrets, tolerance, networks and, for
//! payloads not shaped like Stripe's, a mapping.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{ConfigError, Secret, check_http_url, parse_cidr, parse_duration};
use crate::providers::hmac::{Algorithm, Encoding, HmacScheme};
use crate::providers::mapping::{Extract, MappedKind, Mapping};
use crate::providers::{Scheme, SigningKeys, Source, standard};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
}

impl SourceKind {
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
    kind: Option<SourceKind>,
    secrets: Option<Vec<String>>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    event_id: Option<String>,
    event_type: Option<String>,
    payment_id: Option<String>,
    booking_id: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    amount_refunded: Option<String>,
    failure_message: Option<String>,
    types: Option<HashMap<String, MappedKind>>,
    currency_aliases: Option<HashMap<String, String>>,
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
        let kind = file.kind.ok_or_else(|| {
            ConfigError::new(
                key("kind"),
                "required: stripe, standard-webhooks, hmac, paystack, razorpay, square or flutterwave",
            )
        })?;
        let secrets: Vec<Secret> = file
            .secrets
            .filter(|s| !s.is_empty() && s.iter().all(|s| !s.is_empty()))
            .ok_or_else(|| {
                ConfigError::new(key("secrets"), "at least one non-empty secret is required")
            })?
            .into_iter()
            .map(Secret::new)
            .collect();
        let tolerance =
            parse_duration(&key("tolerance"), file.tolerance.as_deref().unwrap_or("5m"))?;
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
        sources.push(Source {
            name,
            scheme,
            allowed,
            mapping,
        });
    }
    Ok((sources, routes))
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
                    format!("{s:?}: a dotted path (data.id) or a template ({{a}}:{{b.c}})"),
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
        return Err(ConfigError::new(
            key("types"),
            "map at least one of the provider's event types to succeeded, failed, processing, canceled, refunded or disputed",
        ));
    }
    let mut currency_aliases = HashMap::new();
    for (alias, iso) in file.currency_aliases.unwrap_or_default() {
        if iso.len() != 3 || !iso.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ConfigError::new(
                key(&format!("currency_aliases.{alias}")),
                format!("{iso:?} is not a three-letter ISO 4217 code"),
            ));
        }
        currency_aliases.insert(alias, iso);
    }
    Ok(Mapping {
        event_id,
        event_type: required("event_type", file.event_type.or(Some("type".into())))?,
        payment_id: required("payment_id", file.payment_id)?,
        booking_id: extract("booking_id", file.booking_id)?,
        amount: extract("amount", file.amount)?,
        currency: extract("currency", file.currency)?,
        amount_refunded: extract("amount_refunded", file.amount_refunded)?,
        failure_message: extract("failure_message", file.failure_message)?,
        types,
        currency_aliases,
    })
}
