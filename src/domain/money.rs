//! Amounts in minor units, as the provider defines them per currency: never floats. Stripe's
//! zero-decimal currencies (JPY, KRW, XOF, XAF, ...) count whole units; its three-decimal ones
//! (BHD, JOD, KWD, OMR, TND, and IQD and LYD, which Stripe does not take) count thousandths; ISK, HUF and TWD stay two-decimal in Stripe's API.

use std::fmt;

/// Currencies Stripe counts in whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies Stripe counts in thousandths.
/// (Stripe takes neither IQD nor LYD; ISO 4217 counts both in thousandths, as Checkout.com
/// does.)
const THREE_DECIMAL: &[&str] = &["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];

/// The active ISO 4217 currency codes (lower case), less precious metals and test codes: what a
/// payment can be made in.
const ISO_4217: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "bov", "brl", "bsd", "btn", "bwp", "byn", "bzd",
    "cad", "cdf", "che", "chf", "chw", "clf", "clp", "cny", "cop", "cou", "crc", "cuc", "cup",
    "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp",
    "gel", "ghs", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils",
    "inr", "iqd", "irr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "kpw", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "lyd", "mad", "mdl", "mga", "mkd",
    "mmk", "mnt", "mop", "mru", "mur", "mvr", "mwk", "mxn", "mxv", "myr", "mzn", "nad", "ngn",
    "nio", "nok", "npr", "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar",
    "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr", "sdg", "sek", "sgd", "shp", "sle", "sll",
    "sos", "srd", "ssp", "stn", "svc", "syp", "szl", "thb", "tjs", "tmt", "tnd", "top", "try",
    "ttd", "twd", "tzs", "uah", "ugx", "usd", "usn", "uyi", "uyu", "uyw", "uzs", "ved", "ves",
    "vnd", "vuv", "wst", "xaf", "xcd", "xcg", "xof", "xpf", "yer", "zar", "zmw", "zwg", "zwl",
];

/// Stripe's minimum charge per presentment currency, in minor units ("Minimum and maximum
/// charge amounts", docs.stripe.com/currencies): 0.50 USD, 0.30 GBP, 50 JPY... A currency not
/// listed has a minimum worth 0.50 USD, which payhook cannot convert: it leaves it to Stripe.
const STRIPE_MINIMUMS: &[(&str, i64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

/// Why Stripe would refuse to charge `amount` minor units of `currency` (lower case), if it
/// would: under its minimum, or (a three-decimal currency) not a multiple of 10, since card
/// networks settle those in hundredths ("Three-decimal currencies", docs.stripe.com/currencies).
pub fn stripe_refusal(amount: i64, currency: &str) -> Option<String> {
    let minimum = STRIPE_MINIMUMS
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, m)| *m);
    if let Some(minimum) = minimum.filter(|m| amount < *m) {
        let written = Money::new(minimum, currency);
        return Some(format!(
            "{amount} is under Stripe's minimum charge in {currency}: {minimum} ({written})"
        ));
    }
    if exponent(currency) == 3 && amount % 10 != 0 {
        return Some(format!(
            "{amount} must end in 0: {} amounts are charged in hundredths (e.g. {} for {})",
            currency.to_ascii_uppercase(),
            amount / 10 * 10,
            Money::new(amount / 10 * 10, currency)
        ));
    }
    None
}

/// Whether `code` (any case) is a currency of ISO 4217.
pub fn is_currency(code: &str) -> bool {
    ISO_4217.contains(&code.to_ascii_lowercase().as_str())
}

/// Digits after the decimal point in the provider's minor unit for `currency` (any case).
pub fn exponent(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

/// An amount: an integer count of `currency`'s minor unit (cents, yen, fils), never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub minor: i64,
    /// The ISO 4217 code, as the provider writes it (Stripe: lower case).
    pub currency: String,
}

impl Money {
    pub fn new(minor: i64, currency: impl Into<String>) -> Money {
        Money {
            minor,
            currency: currency.into(),
        }
    }

    /// The amount when both its count and its currency are known.
    pub fn known(minor: Option<i64>, currency: Option<&str>) -> Option<Money> {
        Some(Money::new(minor?, currency?))
    }

    /// The amount written for people, when both parts are known (what the APIs' `*_formatted`
    /// fields say).
    pub fn written(minor: Option<i64>, currency: Option<&str>) -> Option<String> {
        Money::known(minor, currency).map(|m| m.to_string())
    }
}

/// Written for people: `2000 eur` is `20.00 EUR`, `1000 jpy` is `1000 JPY`, `1250 kwd` is
/// `1.250 KWD`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.currency.to_ascii_uppercase();
        let exp = exponent(&self.currency);
        if exp == 0 {
            return write!(f, "{} {code}", self.minor);
        }
        let unit = 10_u64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {code}",
            abs / unit,
            abs % unit,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_iso_4217_codes() {
        for code in ["eur", "USD", "xof", "XAF", "jpy", "kwd"] {
            assert!(is_currency(code), "{code}");
        }
        for code in ["xyz", "QQQ", "fcfa", "xau", "xxx", "eu"] {
            assert!(!is_currency(code), "{code}");
        }
        // Every currency payhook knows the minor unit of is one.
        for code in ZERO_DECIMAL.iter().chain(THREE_DECIMAL) {
            assert!(is_currency(code), "{code}");
        }
    }

    #[test]
    fn minor_units_follow_stripe_per_currency() {
        assert_eq!(Money::new(2000, "eur").to_string(), "20.00 EUR");
        assert_eq!(Money::new(5, "usd").to_string(), "0.05 USD");
        assert_eq!(Money::new(1000, "jpy").to_string(), "1000 JPY");
        assert_eq!(Money::new(15000, "XOF").to_string(), "15000 XOF");
        assert_eq!(Money::new(50000, "krw").to_string(), "50000 KRW");
        assert_eq!(Money::new(7500, "xaf").to_string(), "7500 XAF");
        assert_eq!(Money::new(1250, "kwd").to_string(), "1.250 KWD");
        assert_eq!(Money::new(500, "isk").to_string(), "5.00 ISK");
        assert_eq!(Money::new(-250, "eur").to_string(), "-2.50 EUR");
        assert_eq!(
            Money::new(i64::MIN, "jpy").to_string(),
            format!("{} JPY", i64::MIN)
        );
    }
}
