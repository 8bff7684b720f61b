//! The event envelope (id and type, or a source's mapping) on arbitrary bodies, signed correctly
//! so every body reaches it: never a panic, and an accepted event always has a usable id and type.
#![no_main]

#[path = "sources.rs"]
mod sources;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [which, body @ ..] = data else {
        return;
    };
    let sources = sources::all();
    let source = &sources[usize::from(*which) % sources.len()];
    let now = 1_800_000_000;
    let mut headers = http::HeaderMap::new();
    let (signed, body) = source.sign_request(body.to_vec(), now);
    for (name, value) in signed {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    if let Ok(items) = source.verify(&payhook::providers::Incoming::new(&headers, &body), now) {
        assert!(!items.is_empty(), "{}: an accepted request holds an event", source.name);
        for item in items {
            let meta = &item.meta;
            for field in [&meta.event_id, &meta.event_type] {
                assert!(
                    !field.trim().is_empty() && !field.chars().any(char::is_control),
                    "{meta:?}"
                );
            }
        }
    }
});
