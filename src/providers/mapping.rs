//! Where a provider without Stripe's event shape keeps what payhook needs: the event's id (or a
//! template of fields, for providers that send none), its type, the payment's id, the booking, the
//! amount and currency; and what each of the provider's event types means for a payment.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// A value read from the payload: a dotted path (`data.reference`), a template of paths
/// (`{transaction_id}:{event}`), or the first present of several (`originalReference|pspReference`:
/// a provider that names the payment in one field or another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    Path(Vec<String>),
    Template(Vec<Part>),
    First(Vec<Extract>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Field(Vec<String>),
}

impl Extract {
    /// Every path this names, in order.
    fn fields<'a>(&'a self, into: &mut Vec<&'a [String]>) {
        match self {
            Extract::Path(path) => into.push(path),
            Extract::Template(parts) => into.extend(parts.iter().filter_map(|p| match p {
                Part::Field(f) => Some(f.as_slice()),
                Part::Text(_) => None,
            })),
            Extract::First(alternatives) => alternatives.iter().for_each(|e| e.fields(into)),
        }
    }

    /// Reads `spec`: alternatives when it holds `|`, a template when it holds `{`, else a path.
    /// `None` for an empty spec or alternative, or an unclosed `{`.
    pub fn parse(spec: &str) -> Option<Extract> {
        if spec.contains('|') {
            return spec
                .split('|')
                .map(Extract::parse)
                .collect::<Option<Vec<_>>>()
                .map(Extract::First);
        }
        let path = |p: &str| -> Option<Vec<String>> {
            let parts: Vec<String> = p.trim().split('.').map(str::to_string).collect();
            parts.iter().all(|s| !s.is_empty()).then_some(parts)
        };
        if !spec.contains('{') {
            return path(spec).map(Extract::Path);
        }
        let mut parts = Vec::new();
        let mut rest = spec;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}')? + open;
            parts.push(Part::Field(path(&rest[open + 1..close])?));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Some(Extract::Template(parts))
    }

    /// The value as text (strings as they are, numbers written out); `None` if a field is
    /// missing, empty or not a scalar.
    pub fn text(&self, payload: &Value) -> Option<String> {
        match self {
            Extract::Path(path) => scalar(lookup(payload, path)?),
            Extract::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => Some(t.clone()),
                    Part::Field(path) => scalar(lookup(payload, path)?),
                })
                .collect(),
            Extract::First(alternatives) => alternatives.iter().find_map(|e| e.text(payload)),
        }
    }

    /// The raw JSON value at a path (a template has none); of alternatives, the first present.
    pub fn value<'a>(&self, payload: &'a Value) -> Option<&'a Value> {
        match self {
            Extract::Path(path) => lookup(payload, path),
            Extract::Template(_) => None,
            Extract::First(alternatives) => alternatives.iter().find_map(|e| e.value(payload)),
        }
    }
}

/// The value at `path`; a number in it indexes a list (`disputed_transactions.0.id`).
fn lookup<'a>(payload: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(payload, |v, key| match v {
            Value::Array(items) => items.get(key.parse::<usize>().ok()?),
            _ => v.get(key),
        })
        .filter(|v| !v.is_null())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What one of the provider's event types means for its payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappedKind {
    Succeeded,
    /// Authorised, not yet captured: no money taken (Checkout.com's `payment_approved`); a
    /// later void or expiry cancels it.
    Authorized,
    Failed,
    Processing,
    Canceled,
    /// The amount refunded so far is `amount_refunded` (or the whole `amount`).
    Refunded,
    Disputed,
    /// An inquiry or retrieval request before any chargeback: no money is held (PayPal's
    /// `INQUIRY` stage, Braintree's `retrieval`, Adyen's `REQUEST_FOR_INFORMATION`).
    DisputeInquiry,
    /// The dispute ended in the merchant's favour: the money is the merchant's again.
    DisputeWon,
    /// The dispute ended in the customer's favour: the money is gone.
    DisputeLost,
    /// One refund of the payment went through: `refund_id` names it, `refund_amount` is its
    /// amount. The payment's refunds add up, in whatever order they arrive (Razorpay's
    /// `refund.processed`, Square's `refund.updated` once `COMPLETED`).
    RefundSucceeded,
    /// That refund failed: its money is the merchant's again, even after it had succeeded.
    RefundFailed,
}

/// How a source's notifications are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, read as an object: `data[invoice][token]=x` is
    /// `{"data": {"invoice": {"token": "x"}}}`.
    Form,
    /// Braintree's form: its `bt_payload` field, base64 XML, read as the XML's object (see
    /// `providers::braintree`); the stored body stays the form as posted.
    Braintree,
}

impl Format {
    /// The payload as a JSON object, whatever it was written in; UTF-8 throughout.
    pub fn read(self, payload: &[u8]) -> Result<Value, String> {
        let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8 ({e})"))?;
        match self {
            Format::Json => match serde_json::from_str(text) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(_) => Err("not a JSON object".into()),
                Err(e) => Err(format!("invalid JSON ({e})")),
            },
            Format::Form => Ok(form_object(text.as_bytes())),
            Format::Braintree => super::braintree::notification(text.as_bytes()),
        }
    }
}

/// A form body as a JSON object of strings, `a[b][c]` keys nested. A key met twice keeps its
/// first value, as a lookup by name would.
pub fn form_object(body: &[u8]) -> Value {
    let mut root = Value::Object(serde_json::Map::new());
    for (key, value) in form_urlencoded::parse(body) {
        let path: Vec<&str> = key.split('[').map(|p| p.trim_end_matches(']')).collect();
        insert(&mut root, &path, value.into_owned());
    }
    root
}

/// Sets `path` in `node` to `value` unless something is there already.
fn insert(node: &mut Value, path: &[&str], value: String) {
    let (Value::Object(map), Some((first, rest))) = (node, path.split_first()) else {
        return;
    };
    if rest.is_empty() {
        map.entry(first.to_string()).or_insert(Value::String(value));
        return;
    }
    let child = map
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    insert(child, rest, value);
}

/// How a source writes its amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountFormat {
    /// A whole number of the currency's minor unit (`1000` is 10.00 EUR, 1000 XOF), as a JSON
    /// number or a string of digits.
    #[default]
    Minor,
    /// The currency's major unit, decimals allowed (`"10.50"` is 1050 cents, `1000` is 1000
    /// XOF): converted exactly with the currency's decimals, never through a float.
    Major,
}

impl AmountFormat {
    /// The amount in `currency`'s minor unit.
    pub fn minor_units(self, value: &Value, currency: Option<&str>) -> Result<i64, String> {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_string(),
            other => return Err(format!("amount {other} is not a number")),
        };
        let exponent = match self {
            AmountFormat::Minor => 0,
            AmountFormat::Major => {
                let currency = currency.ok_or_else(|| {
                    format!("amount {text} is in major units, but the currency is not known")
                })?;
                crate::domain::money::exponent(currency)
            }
        };
        decimal_to_minor(&text, exponent).ok_or_else(|| match self {
            AmountFormat::Minor => {
                format!("amount {text} is not a non-negative integer number of minor units")
            }
            AmountFormat::Major => format!(
                "amount {text} is not a non-negative amount with at most {exponent} decimals"
            ),
        })
    }
}

/// `text` (digits, at most one `.`) times 10^`exponent`, exactly; `None` for anything else, a
/// fraction finer than the minor unit, or an overflow.
fn decimal_to_minor(text: &str, exponent: u32) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > exponent as usize {
        return None;
    }
    let scale = 10i64.checked_pow(exponent)?;
    let frac_scale = 10i64.checked_pow(exponent - fraction.len() as u32)?;
    let frac: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(frac.checked_mul(frac_scale)?)
}

/// A source's payload mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub format: Format,
    pub event_id: Extract,
    pub event_type: Extract,
    /// What names the meaning of an event in `types`, when the type alone does not (Adyen's
    /// `{eventCode}:{success}`); by default the event's type.
    pub kind_from: Option<Extract>,
    pub payment_id: Extract,
    pub booking_id: Option<Extract>,
    pub amount: Option<Extract>,
    pub amount_format: AmountFormat,
    pub currency: Option<Extract>,
    /// The currency when the payload names none (Kkiapay's are all XOF).
    pub default_currency: Option<String>,
    pub amount_refunded: Option<Extract>,
    /// The refund a `refund_succeeded` or `refund_failed` event is about, and its amount.
    pub refund_id: Option<Extract>,
    pub refund_amount: Option<Extract>,
    pub failure_message: Option<Extract>,
    /// The provider's event types payhook acts on; others are stored and `ignored`.
    pub types: HashMap<String, MappedKind>,
    /// The provider's currency words to ISO 4217 codes (`FCFA` to `XOF` or `XAF`), matched without
    /// regard to case.
    pub currency_aliases: HashMap<String, String>,
    /// The provider's minor unit where it differs from payhook's (lowercase code → digits after
    /// the point): Adyen counts CLP in hundredths, Checkout.com ISK in whole krónur. Amounts are
    /// converted to payhook's unit exactly, or refused.
    pub currency_exponents: HashMap<String, u32>,
    /// The notification is only a hint: the ledger reads the object the provider's API confirmed
    /// (see `providers::confirm`), never the posted body.
    pub confirmed: bool,
    /// The provider names the payment in the query of the URL it posts to, not in the body (MTN
    /// MoMo's callback, Orange Money's notification): the stored payload, and what the paths
    /// read, is `{"query": {name: value}, "body": <the body as received>}` (see
    /// [`super::with_query`]).
    pub query: bool,
}

/// A field an event id template may name that no payload holds: a value unique to each delivery
/// (its arrival's unix second, then random letters), for providers that post the same body on
/// every change of a payment (Mollie's `id=tr_...`), so no later change is taken for a duplicate.
pub const DELIVERY: &str = "$delivery";

/// The first segment of an event id template's field that names a request header:
/// `{$header.x-razorpay-event-id}`.
pub const HEADER: &str = "$header";

impl Mapping {
    /// The payload as an event's id and type are read from it when it arrives at `now` with
    /// `headers`: [`DELIVERY`] is set when the event id names it, and `$header.<name>` when it
    /// names a request header (Razorpay's `x-razorpay-event-id`).
    pub fn read_arrival(
        &self,
        payload: &[u8],
        now: i64,
        headers: &axum::http::HeaderMap,
    ) -> Result<Value, String> {
        let mut read = self.format.read(payload)?;
        let mut named = Vec::new();
        self.event_id.fields(&mut named);
        let Value::Object(map) = &mut read else {
            return Ok(read);
        };
        for field in named {
            match field {
                [only] if only == DELIVERY => {
                    let stamp = format!("{now}.{}", crate::domain::ids::random_token(6));
                    map.insert(DELIVERY.to_string(), Value::String(stamp));
                }
                [first, name] if first == HEADER => {
                    // Not signed by most schemes: only ever an event's id, never what it says.
                    if let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
                        let given = map
                            .entry(HEADER)
                            .or_insert_with(|| Value::Object(Default::default()));
                        if let Value::Object(given) = given {
                            given.insert(name.clone(), Value::String(value.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(read)
    }

    /// An amount as the source writes it, in payhook's minor unit of `currency`.
    pub fn minor_units(&self, value: &Value, currency: Option<&str>) -> Result<i64, String> {
        let amount = self.amount_format.minor_units(value, currency)?;
        let theirs = match (self.amount_format, currency) {
            (AmountFormat::Minor, Some(c)) => self.currency_exponents.get(&c.to_ascii_lowercase()),
            _ => None,
        };
        let Some(&theirs) = theirs else {
            return Ok(amount);
        };
        let ours = crate::domain::money::exponent(currency.unwrap_or_default());
        let scale = |digits: u32| 10i64.checked_pow(digits).ok_or("exponent out of range");
        let converted = if theirs <= ours {
            amount.checked_mul(scale(ours - theirs)?)
        } else {
            let divisor = scale(theirs - ours)?;
            (amount % divisor == 0).then_some(amount / divisor)
        };
        converted.ok_or_else(|| {
            format!(
                "amount {amount} has {theirs} decimals in this provider's unit, finer than payhook's ({ours}) for {}",
                currency.unwrap_or_default().to_ascii_uppercase()
            )
        })
    }

    /// The currency as an ISO code, lowercase, aliases applied.
    pub fn currency(&self, raw: &str) -> String {
        let upper = raw.trim().to_ascii_uppercase();
        self.currency_aliases
            .iter()
            .find(|(alias, _)| alias.to_ascii_uppercase() == upper)
            .map(|(_, iso)| iso.to_ascii_lowercase())
            .unwrap_or_else(|| upper.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_templates_read_scalars() {
        let payload = json!({"event": "payment.completed", "transaction_id": "txn_1",
                             "data": {"id": 42, "ok": true, "empty": "", "obj": {}}});
        let read = |spec: &str| Extract::parse(spec).unwrap().text(&payload);
        assert_eq!(read("event").as_deref(), Some("payment.completed"));
        assert_eq!(read("data.id").as_deref(), Some("42"));
        assert_eq!(
            read("{transaction_id}:{event}").as_deref(),
            Some("txn_1:payment.completed")
        );
        assert_eq!(
            read("tx-{data.id}-{data.ok}").as_deref(),
            Some("tx-42-true")
        );
        assert_eq!(read("data.missing"), None);
        assert_eq!(read("data.empty"), None);
        assert_eq!(read("data.obj"), None);
        assert_eq!(read("{transaction_id}:{nope}"), None);
        assert_eq!(
            read("data.missing|data.empty|transaction_id").as_deref(),
            Some("txn_1")
        );
        assert_eq!(read("data.id|transaction_id").as_deref(), Some("42"));
        assert_eq!(read("{data.nope}|tx-{data.id}").as_deref(), Some("tx-42"));
        assert_eq!(read("data.missing|data.obj"), None);
        let listed = json!({"items": [{"id": "a"}, {"id": "b"}], "map": {"0": "zero"}});
        let at = |spec: &str| Extract::parse(spec).unwrap().text(&listed);
        assert_eq!(at("items.1.id").as_deref(), Some("b"));
        assert_eq!(at("map.0").as_deref(), Some("zero"));
        assert_eq!(at("items.2.id"), None);
        assert_eq!(at("items.x.id"), None);
        assert_eq!(Extract::parse("a|"), None);
        assert_eq!(Extract::parse("{unclosed"), None);
        assert_eq!(Extract::parse("a..b"), None);
        assert_eq!(Extract::parse(""), None);
    }

    #[test]
    fn forms_read_as_nested_objects() {
        let form = b"data%5Bstatus%5D=completed&data%5Binvoice%5D%5Btoken%5D=tok_1&cpm_trans_date=2022-09-15+22%3A57%3A15&data%5Bstatus%5D=again";
        let v = Format::Form.read(form).unwrap();
        assert_eq!(v["data"]["status"], "completed");
        assert_eq!(v["data"]["invoice"]["token"], "tok_1");
        assert_eq!(v["cpm_trans_date"], "2022-09-15 22:57:15");
        assert!(Format::Json.read(b"[1]").is_err());
    }

    #[test]
    fn amounts_convert_exactly_to_minor_units() {
        let minor = |v: Value, c: Option<&str>| AmountFormat::Minor.minor_units(&v, c);
        let major = |v: Value, c: Option<&str>| AmountFormat::Major.minor_units(&v, c);
        assert_eq!(minor(json!(1000), None), Ok(1000));
        assert_eq!(minor(json!("1000"), None), Ok(1000));
        assert!(minor(json!(10.5), None).is_err());
        assert!(minor(json!(-1), None).is_err());
        assert_eq!(major(json!("10.50"), Some("eur")), Ok(1050));
        assert_eq!(major(json!(100.5), Some("BRL")), Ok(10050));
        assert_eq!(major(json!("1000"), Some("XOF")), Ok(1000));
        assert_eq!(major(json!("1000.00"), Some("xof")), Ok(1000));
        assert_eq!(major(json!("1.250"), Some("kwd")), Ok(1250));
        assert!(major(json!("10.505"), Some("eur")).is_err());
        assert!(major(json!("1000.5"), Some("xof")).is_err());
        assert!(major(json!("10"), None).is_err());
        assert!(major(json!("1e3"), Some("eur")).is_err());
        assert!(major(json!("99999999999999999999"), Some("eur")).is_err());
    }

    #[test]
    fn a_providers_own_minor_unit_converts_to_payhooks_exactly() {
        // Adyen's table: CLP in hundredths (payhook: whole pesos), CVE whole (payhook: cents).
        let adyen = crate::providers::presets::find("adyen").unwrap();
        let m = (adyen.mapping)();
        assert_eq!(m.minor_units(&json!(100000), Some("clp")), Ok(1000));
        assert!(
            m.minor_units(&json!(100050), Some("CLP")).is_err(),
            "a fraction of a peso"
        );
        assert_eq!(m.minor_units(&json!(1000), Some("cve")), Ok(100000));
        assert_eq!(m.minor_units(&json!(1000), Some("eur")), Ok(1000));
        assert_eq!(m.minor_units(&json!(1000), None), Ok(1000));
    }
}
