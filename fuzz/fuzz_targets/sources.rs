//! Every kind of webhook source payhook has, configured as a user would (`payhook.toml`), for the
//! fuzz targets.

use std::collections::HashMap;
use std::sync::OnceLock;

use payhook::providers::{Source, Sources};

const CONFIG: &str = r#"
[[sources]]
name = "std"
kind = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

[[sources]]
name = "hmac-ts"
kind = "hmac"
secrets = ["the-shared-secret"]
header = "X-Signature"
algorithm = "sha512"
encoding = "base64"
prefix = "v1="
timestamp_header = "X-Timestamp"
signed_content = "{timestamp}.{url}.{body}"
url = "https://pay.example.com/webhooks/hmac-ts"

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"

[[sources]]
name = "payments"
kind = "hmac"
secrets = ["the-shared-secret"]
header = "X-Signature"
prefix = "sha256="

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"

[[sources]]
name = "paystack"
kind = "paystack"
secrets = ["sk_test_paystack"]

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"

[[sources]]
name = "razorpay"
kind = "razorpay"
secrets = ["razorpay-secret"]

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"

[[sources]]
name = "square"
kind = "square"
secrets = ["square-key"]
url = "https://pay.example.com/webhooks/square"

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"

[[sources]]
name = "flutterwave"
kind = "flutterwave"
secrets = ["flutterwave-hash"]

[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
booking_id = "booking_id"
amount = "amount"
currency = "currency"

[sources.mapping.types]
"payment.completed" = "succeeded"
"#;

/// Every signature or id header some source reads: the fuzzed value goes in each.
pub const HEADERS: &[&str] = &[
    "stripe-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature",
    "x-timestamp",
    "x-paystack-signature",
    "x-razorpay-signature",
    "x-square-hmacsha256-signature",
    "verif-hash",
];

/// The configured sources (`stripe` first), built once.
pub fn all() -> &'static [Source] {
    static SOURCES: OnceLock<Vec<Source>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("payhook-fuzz-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).expect("a temp file");
        let env: HashMap<String, String> = [(
            "STRIPE_WEBHOOK_SECRET".to_string(),
            "whsec_fuzz_stripe_secret".to_string(),
        )]
        .into();
        let settings = payhook::config::Settings::load(Some(&path), &env).expect("valid settings");
        let _ = std::fs::remove_file(&path);
        let sources = Sources::from_settings(&settings);
        let mut names = sources.names();
        names.sort_by_key(|n| *n != "stripe");
        names
            .iter()
            .map(|n| sources.get(n).unwrap().clone())
            .collect()
    })
}
