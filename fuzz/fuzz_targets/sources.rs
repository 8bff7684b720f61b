//! Every kind of webhook source payhook has, configured as a user would (`payhook.toml`), for the
//! fuzz targets.

use std::collections::HashMap;
use std::sync::OnceLock;

use payhook::providers::Source;

/// One `[[sources]]` entry per kind; the `hmac` ones get [`MAPPING`], the presets have their
/// provider's. Every preset of `presets::ALL` is added to these.
const ENTRIES: &[&str] = &[
    r#"
name = "std"
kind = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#,
    r#"
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
"#,
    r#"
name = "payments"
kind = "hmac"
secrets = ["the-shared-secret"]
header = "X-Signature"
prefix = "sha256="
"#,
    r#"
name = "paystack"
kind = "paystack"
secrets = ["sk_test_paystack"]
"#,
    r#"
name = "razorpay"
kind = "razorpay"
secrets = ["razorpay-secret"]
"#,
    r#"
name = "square"
kind = "square"
secrets = ["square-key"]
url = "https://pay.example.com/webhooks/square"
"#,
    r#"
name = "flutterwave"
kind = "flutterwave"
secrets = ["flutterwave-hash"]
"#,
];

/// How the non-Stripe sources read their events.
const MAPPING: &str = r#"
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

/// Every signature or id header some source reads: the fuzzed value goes in each. (Only the
/// signature target uses it.)
#[allow(dead_code)]
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
    "x-fedapay-signature",
    "wave-signature",
    "paddle-signature",
    "cko-signature",
    "x-token",
    "x-kkiapay-secret",
    "x-request-id",
];

/// The configured sources (`stripe` first), built once.
pub fn all() -> &'static [Source] {
    static SOURCES: OnceLock<Vec<Source>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("payhook-fuzz-{}.toml", std::process::id()));
        let mut config: String = ENTRIES
            .iter()
            .map(|source| {
                let mapping = if source.contains("kind = \"hmac\"") {
                    MAPPING
                } else {
                    ""
                };
                format!("[[sources]]{source}{mapping}\n")
            })
            .collect();
        for preset in payhook::providers::presets::ALL {
            config.push_str(&format!(
                "[[sources]]\nname = \"preset-{0}\"\nkind = \"{0}\"\n",
                preset.kind
            ));
            if preset.signed {
                config.push_str(&format!("secrets = [\"{}\"]\n", preset.sample_secret));
            }
            if preset.confirmation == payhook::providers::presets::Confirmation::Required {
                config.push_str("[sources.api]\nurl = \"http://127.0.0.1:9\"\n");
                let lookup = (preset.lookup.expect("a lookup"))();
                for name in &lookup.credentials {
                    config.push_str(&format!("{name} = \"fuzz\"\n"));
                }
            }
        }
        std::fs::write(&path, config).expect("a temp file");
        let env: HashMap<String, String> = [(
            "STRIPE_WEBHOOK_SECRET".to_string(),
            "whsec_fuzz_stripe_secret".to_string(),
        )]
        .into();
        let settings = payhook::config::Settings::load(Some(&path), &env).expect("valid settings");
        let _ = std::fs::remove_file(&path);
        let sources = settings.webhook_sources();
        let mut names = sources.names();
        names.sort_by_key(|n| *n != "stripe");
        names
            .iter()
            .map(|n| sources.get(n).unwrap().clone())
            .collect()
    })
}
