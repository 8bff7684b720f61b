//! Every signature scheme's header parsing and checking, on arbitrary header values and bodies:
//! never a panic, and never an acceptance (nothing here knows a secret).
#![no_main]

#[path = "sources.rs"]
mod sources;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // [source][header length][header value][body]
    let [which, len, rest @ ..] = data else {
        return;
    };
    let sources = sources::all();
    let source = &sources[usize::from(*which) % sources.len()];
    let (value, body) = rest.split_at(usize::from(*len).min(rest.len()));
    let Ok(value) = http::HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for name in sources::HEADERS {
        headers.insert(*name, value.clone());
    }
    let now = 1_800_000_000;
    if let Ok(meta) = source.verify(&payhook::providers::Incoming::new(&headers, body), now) {
        // A shared secret sent as is (Flutterwave's `verif-hash`) is accepted when guessed: that
        // scheme's own weakness. Every signing scheme must refuse what the fuzzer forges.
        let unsigned = source.preset.is_some_and(|p| !p.signed);
        assert!(
            source.name == "flutterwave" || unsigned,
            "{} accepted a forged request: {meta:?}",
            source.name
        );
    }
});
