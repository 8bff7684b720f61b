//! Amounts in minor units, as the provider defines them per currency: never floats. Stripe's
//! zero-decimal currencies (JPY, KRW, XOF, XAF, ...) count whole units; its three-decimal ones
//! (BHD, JOD, KWD, OMR, TND) count thousandths; ISK, HUF and TWD stay two-decimal in Stripe's API.

/// Currencies Stripe counts in whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies Stripe counts in thousandths.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

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

/// `minor` units of `currency` written for people: `2000 eur` is `20.00 EUR`, `1000 jpy` is
/// `1000 JPY`, `1250 kwd` is `1.250 KWD`.
/// [`format`] when both are known.
pub fn format_known(minor: Option<i64>, currency: Option<&str>) -> Option<String> {
    Some(format(minor?, currency?))
}

pub fn format(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let exp = exponent(currency);
    if exp == 0 {
        return format!("{minor} {code}");
    }
    let unit = 10_i64.pow(exp);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let unit = unit as u64;
    format!(
        "{sign}{}.{:0width$} {code}",
        abs / unit,
        abs % unit,
        width = exp as usize
    )
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
        assert_eq!(format(2000, "eur"), "20.00 EUR");
        assert_eq!(format(5, "usd"), "0.05 USD");
        assert_eq!(format(1000, "jpy"), "1000 JPY");
        assert_eq!(format(15000, "XOF"), "15000 XOF");
        assert_eq!(format(50000, "krw"), "50000 KRW");
        assert_eq!(format(7500, "xaf"), "7500 XAF");
        assert_eq!(format(1250, "kwd"), "1.250 KWD");
        assert_eq!(format(500, "isk"), "5.00 ISK");
        assert_eq!(format(-250, "eur"), "-2.50 EUR");
        assert_eq!(format(i64::MIN, "jpy"), format!("{} JPY", i64::MIN));
    }
}
