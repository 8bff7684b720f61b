//! The settings, read and checked.

use super::*;

fn toml_file(text: &str) -> Result<FileConfig, ConfigError> {
    FileConfig::parse(text, "payhook.toml")
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_sandbox_provider_is_on_only_in_sandbox_mode_unless_asked_for() {
    let with = |pairs: &[(&str, &str)]| Settings::from_parts(FileConfig::default(), &env(pairs));
    assert!(
        with(&[]).unwrap().stripe.sandbox,
        "nothing configured: sandbox mode"
    );
    let real = ("STRIPE_WEBHOOK_SECRET", "whsec_a_real_endpoint_secret");
    assert!(
        !with(&[real]).unwrap().stripe.sandbox,
        "its Pay button would sign with the real secret"
    );
    assert!(
        with(&[real, ("PAYHOOK_SANDBOX", "true")])
            .unwrap()
            .stripe
            .sandbox
    );
    assert!(!with(&[("PAYHOOK_SANDBOX", "no")]).unwrap().stripe.sandbox);
    let key = ("STRIPE_SECRET_KEY", "sk_test_payhook_key");
    let err = with(&[real, key, ("PAYHOOK_SANDBOX", "true")]).unwrap_err();
    assert_eq!(err.key, "PAYHOOK_SANDBOX");
    assert!(err.message.contains("not both"), "{err}");
    let err = with(&[("PAYHOOK_SANDBOX", "maybe")]).unwrap_err();
    assert!(err.message.contains("not true or false"), "{err}");
}

#[test]
fn defaults_match_the_product_contract() {
    let s = Settings::defaults();
    assert_eq!(s.listen.to_string(), "127.0.0.1:3003");
    assert_eq!(s.admin_listen.to_string(), "127.0.0.1:3004");
    assert_eq!(s.database_url, "sqlite://payhook.db");
    assert!(s.webhook_secret_needed());
    assert_eq!(s.stripe.tolerance, Duration::from_secs(300));
    assert_eq!(s.ingest.max_body_bytes, 1 << 20);
    assert_eq!(s.sqlite_sync, SqliteSync::Full);
}

#[test]
fn env_wins_over_file() {
    let file = toml_file(
        "listen = \"127.0.0.1:4000\"\n[stripe]\nwebhook_secrets = [\"whsec_fromfile123\"]\n",
    )
    .unwrap();
    let s = Settings::from_parts(
        file,
        &env(&[
            ("PAYHOOK_LISTEN", "127.0.0.1:5000"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_aaaaaaaa, whsec_bbbbbbbb"),
        ]),
    )
    .unwrap();
    assert_eq!(s.listen.port(), 5000);
    let secrets: Vec<_> = s
        .stripe
        .webhook_secrets
        .iter()
        .map(Secret::expose)
        .collect();
    assert_eq!(secrets, ["whsec_aaaaaaaa", "whsec_bbbbbbbb"]);
}

#[test]
fn edge_limits_and_trusted_proxies_are_read_and_checked() {
    let s = Settings::defaults();
    assert_eq!(s.ingest.read_timeout, Duration::from_secs(10));
    assert_eq!(s.ingest.max_header_bytes, 16 * 1024);
    assert!(s.ingest.trusted_proxies.is_empty());
    let s = Settings::from_parts(
        toml_file("[ingest]\nread_timeout = \"2s\"\ntrusted_proxies = [\"10.0.0.0/8\"]").unwrap(),
        &env(&[("PAYHOOK_TRUSTED_PROXIES", "192.168.0.0/16, 127.0.0.1")]),
    )
    .unwrap();
    assert_eq!(s.ingest.read_timeout, Duration::from_secs(2));
    assert_eq!(
        s.ingest.trusted_proxies,
        [
            "192.168.0.0/16".parse::<IpNet>().unwrap(),
            "127.0.0.1/32".parse().unwrap()
        ]
    );
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "PAYHOOK_TRUSTED_PROXIES");
    let err = Settings::from_parts(
        toml_file("[ingest]\nread_timeout = \"0s\"").unwrap(),
        &HashMap::new(),
    )
    .unwrap_err();
    assert_eq!(err.key, "ingest.read_timeout");
    // Values payhook cannot honour are refused, not quietly raised.
    for (toml, key) in [
        (
            "[ingest]\nmax_header_bytes = 4096",
            "ingest.max_header_bytes",
        ),
        ("[ingest]\nretry_after_secs = 0", "ingest.retry_after_secs"),
    ] {
        let err = Settings::from_parts(toml_file(toml).unwrap(), &HashMap::new()).unwrap_err();
        assert_eq!(err.key, key, "{toml}");
    }
}

#[test]
fn durations_are_written_the_way_people_write_them() {
    for (text, secs) in [
        ("250ms", 0),
        ("30s", 30),
        ("5m", 300),
        ("1h 30m", 5400),
        ("2 days", 172_800),
    ] {
        let d = parse_duration("k", text).unwrap();
        assert_eq!(d.as_secs(), secs, "{text}");
    }
    assert_eq!(
        parse_duration("k", "250ms").unwrap(),
        Duration::from_millis(250)
    );
    for text in ["30", "soon", "-5s", ""] {
        let err = parse_duration("retention.every", text).unwrap_err();
        assert_eq!(err.key, "retention.every");
        assert!(err.message.contains("is not a duration"), "{err}");
    }
}

#[test]
fn periodic_reconcile_is_off_by_default_and_at_least_a_minute_apart() {
    let s = Settings::defaults();
    assert_eq!(s.stripe.reconcile_every, None);
    assert_eq!(s.stripe.reconcile_window, Duration::from_secs(3 * 86_400));
    let api = [
        ("STRIPE_SECRET_KEY", "sk_test_payhook_key"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_a_real_endpoint_secret"),
    ];
    let with = |every: &str| {
        let mut pairs = api.to_vec();
        pairs.push(("PAYHOOK_RECONCILE_EVERY", every));
        Settings::from_parts(FileConfig::default(), &env(&pairs))
    };
    let s = with("1h").unwrap();
    assert_eq!(s.stripe.reconcile_every, Some(Duration::from_secs(3600)));
    let err = with("30s").unwrap_err();
    assert_eq!(err.key, "PAYHOOK_RECONCILE_EVERY");
    // Without an API key it could never run: said at start-up, not silently skipped.
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_RECONCILE_EVERY", "1h")]),
    )
    .unwrap_err();
    assert!(err.message.contains("needs STRIPE_SECRET_KEY"), "{err}");
}

#[test]
fn retention_is_off_by_default_and_keeps_payloads_at_least_an_hour() {
    let s = Settings::defaults();
    assert_eq!(s.retention.payloads, None);
    assert_eq!(
        (s.retention.batch, s.retention.every),
        (500, Duration::from_secs(60))
    );
    let s = Settings::from_parts(
        toml_file("[retention]\npayloads = \"30d\"\nbatch = 100").unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(s.retention.payloads, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(s.retention.batch, 100);
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_RETAIN_PAYLOADS", "10m")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "PAYHOOK_RETAIN_PAYLOADS");
}

#[test]
fn errors_name_the_key() {
    let err = Settings::from_parts(FileConfig::default(), &env(&[("PAYHOOK_LISTEN", "nope")]))
        .unwrap_err();
    assert_eq!(err.key, "PAYHOOK_LISTEN");
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_aaaaaaaa,,")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "STRIPE_WEBHOOK_SECRET");
    assert!(
        !err.to_string().contains("whsec_aaaaaaaa"),
        "a secret leaked: {err}"
    );
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("DATABASE_URL", "mysql://x")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "DATABASE_URL");
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_ADMIN_LISTEN", "0.0.0.0:3004")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "PAYHOOK_ADMIN_LISTEN");
    let err = toml_file("lisen = \"x\"").unwrap_err();
    assert!(err.message.contains("lisen"), "{err}");
    // A value from a file is named by that file, and by the key that gave it.
    let dir = tempfile::tempdir().unwrap();
    let prod = dir.path().join("prod.toml");
    std::fs::write(&prod, "public_url = \"nope\"\n").unwrap();
    let err = Settings::load(Some(&prod), &HashMap::new()).unwrap_err();
    assert!(err.key.ends_with("prod.toml public_url"), "{err}");
    std::fs::write(&prod, "admin_listen = \"0.0.0.0:3004\"\n").unwrap();
    let err = Settings::load(Some(&prod), &HashMap::new()).unwrap_err();
    assert!(err.key.ends_with("prod.toml admin_listen"), "{err}");
    // A value of the wrong type: the key named, the value (maybe a secret) not repeated.
    let err = toml_file(
        "listen = \"127.0.0.1:1\"\n[stripe]\nwebhook_secrets = \"whsec_abc\\\"defghijk\"",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("line 3 (stripe.webhook_secrets)"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("whsec_abc"),
        "a secret leaked: {err}"
    );
    assert!(
        !err.to_string().contains("defghijk"),
        "a secret leaked: {err}"
    );
    let err = toml_file("listen = 3003").unwrap_err();
    assert!(err.to_string().contains("(listen)"), "{err}");
    // A PostgreSQL URL that does not parse (an unencoded `/` in the password) is a
    // configuration error that does not repeat it.
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[(
            "DATABASE_URL",
            "postgres://user:hun/ter2@127.0.0.1:99999/db",
        )]),
    )
    .unwrap_err();
    assert_eq!(err.key, "DATABASE_URL");
    assert!(!err.to_string().contains("hun"), "a secret leaked: {err}");
    assert!(err.to_string().contains("percent-encode"), "{err}");
    let file = toml_file("[ingest]\nbatch_max = 4097").unwrap();
    let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "ingest.batch_max");
    let file = toml_file("[ingest]\nbatch_max = 4096").unwrap();
    let settings = Settings::from_parts(file, &HashMap::new()).unwrap();
    assert_eq!(settings.ingest.batch_max, BATCH_MAX_LIMIT);
    let file = toml_file("[stripe]\nallowed_cidrs = [\"10.0.0.0/33\"]").unwrap();
    let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "stripe.allowed_cidrs");
}

#[test]
fn the_example_file_is_valid_and_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("payhook.example.toml");
    let from_file = Settings::load(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(
        format!("{from_file:?}"),
        format!("{:?}", Settings::defaults())
    );
}

#[test]
fn booking_service_url_enables_the_booking_status_target() {
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[
            ("BOOKING_SERVICE_URL", "http://127.0.0.1:3001/"),
            ("INTERNAL_SERVICE_TOKEN", "tok"),
        ]),
    )
    .unwrap();
    assert_eq!(s.targets.len(), 1);
    let t = &s.targets[0];
    assert_eq!(
        (t.name.as_str(), t.kind),
        ("booking-service", TargetKind::BookingStatus)
    );
    assert_eq!(t.url, "http://127.0.0.1:3001");
    assert_eq!(t.token.as_ref().map(Secret::expose), Some("tok"));
    assert_eq!(t.timeout, Duration::from_secs(5));
    let schedule: Vec<u64> = t.retry_schedule.iter().map(Duration::as_secs).collect();
    assert_eq!(
        schedule,
        [0, 5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400]
    );
}

#[test]
fn targets_are_read_from_the_file_and_checked() {
    let file = toml_file(
        r#"
        [[targets]]
        name = "alerts"
        kind = "events"
        url = "https://hooks.example.com/payhook"
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        events = ["payment.failed", "payment.disputed", "payment.refund_failed",
                  "payment.duplicate", "payment.needs_attention"]
        retry_schedule = ["0s", "250ms", "1m"]
        timeout = "2s"
        "#,
    )
    .unwrap();
    let s = Settings::from_parts(file, &HashMap::new()).unwrap();
    let t = &s.targets[0];
    assert_eq!(t.kind, TargetKind::Events);
    assert_eq!(
        t.url, "https://hooks.example.com/payhook",
        "https is accepted"
    );
    // Every event payhook sends can be chosen, the attention events included.
    assert_eq!(
        t.events,
        [
            "payment.failed",
            "payment.disputed",
            "payment.refund_failed",
            "payment.duplicate",
            "payment.needs_attention"
        ]
    );
    assert_eq!(
        t.retry_schedule,
        [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_secs(60)
        ]
    );
    assert_eq!(t.timeout, Duration::from_secs(2));
    assert!(
        !format!("{s:?}").contains("MfKQ9r8G"),
        "the secret is redacted"
    );

    // A rotation: both secrets, the new one first; an events URL is kept as given.
    let file = toml_file(
        r#"
        [[targets]]
        name = "rotating"
        kind = "events"
        url = "https://hooks.example.com/payhook/"
        secret = ["whsec_bmV3IHNlY3JldCBmb3IgdGhlIHJlZnVuZHMgdGFyZ2V0", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        "#,
    )
    .unwrap();
    let s = Settings::from_parts(file, &HashMap::new()).unwrap();
    let t = &s.targets[0];
    assert_eq!(t.url, "https://hooks.example.com/payhook/");
    assert_eq!(
        t.secret.as_ref().map(Secret::expose),
        Some(
            "whsec_bmV3IHNlY3JldCBmb3IgdGhlIHJlZnVuZHMgdGFyZ2V0 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        )
    );

    for (toml, key, says) in [
        (
            "kind = \"events\"\nurl = \"http://h\"",
            "targets[0].secret",
            "required",
        ),
        (
            "kind = \"events\"\nurl = \"http://h\"\nsecret = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"nope\"]",
            "targets[0].secret",
            "rotation",
        ),
        (
            "kind = \"events\"\nurl = \"http://h\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nevents = [\"payment.paid\"]",
            "targets[0].events",
            "payment.paid",
        ),
        (
            "kind = \"booking-status\"\nurl = \"http://h\"\nretry_schedule = [\"5 fortnights\"]",
            "targets[0].retry_schedule",
            "5 fortnights",
        ),
        ("kind = \"booking-status\"", "targets[0].url", "required"),
    ] {
        let file = toml_file(&format!("[[targets]]\nname = \"t\"\n{toml}")).unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert_eq!(err.key, key, "{toml}");
        assert!(err.message.contains(says), "{err}");
    }
    let twice = "[[targets]]\nname = \"t\"\nkind = \"booking-status\"\nurl = \"http://h\"\n";
    let file = toml_file(&format!("{twice}{twice}")).unwrap();
    let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "targets[1].name");
}

#[test]
fn live_keys_need_an_https_public_url_and_keys_are_the_right_kind() {
    let with = |pairs: &[(&str, &str)]| Settings::from_parts(FileConfig::default(), &env(pairs));
    let secret = (
        "STRIPE_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    for (public, key) in [
        (None, "PAYHOOK_PUBLIC_URL"),
        (Some("http://pay.example.com"), "PAYHOOK_PUBLIC_URL"),
    ] {
        let mut pairs = vec![secret, ("STRIPE_SECRET_KEY", "sk_live_abc")];
        pairs.extend(public.map(|p| ("PAYHOOK_PUBLIC_URL", p)));
        let err = with(&pairs).unwrap_err();
        assert_eq!(err.key, key);
        assert!(err.message.contains("https://"), "{err}");
        assert!(!err.to_string().contains("sk_live_abc"), "{err}");
    }
    let live = with(&[
        secret,
        ("STRIPE_SECRET_KEY", "rk_live_abc"),
        ("PAYHOOK_PUBLIC_URL", "https://pay.example.com/"),
    ]);
    assert!(live.is_ok(), "{:?}", live.err());
    assert!(with(&[secret, ("STRIPE_SECRET_KEY", "sk_test_abc")]).is_ok());
    for (wrong, says) in [
        ("pk_live_abc", "publishable"),
        ("whsec_abc", "STRIPE_WEBHOOK_SECRET"),
    ] {
        let err = with(&[secret, ("STRIPE_SECRET_KEY", wrong)]).unwrap_err();
        assert_eq!(err.key, "STRIPE_SECRET_KEY");
        assert!(
            err.message.contains(says) && !err.message.contains(wrong),
            "{err}"
        );
    }
    let err = with(&[("PAYHOOK_PUBLIC_URL", "https://example.com/payhook")]).unwrap_err();
    assert_eq!(err.key, "PAYHOOK_PUBLIC_URL");
    assert!(err.message.contains("has a path"), "{err}");
}

#[test]
fn target_and_source_secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let token = write("token", "booking-token\n");
    let secrets = write(
        "secrets",
        "whsec_bmV3IHNlY3JldCBmb3IgdGhlIHJlZnVuZHMgdGFyZ2V0\n\nwhsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    );
    let source = write("source", "  whsec_source_secret_1234  \n");
    let file = toml_file(&format!(
        r#"
        [[targets]]
        name = "bookings"
        kind = "booking-status"
        url = "http://127.0.0.1:3001"
        token_file = "{token}"

        [[targets]]
        name = "events"
        kind = "events"
        url = "http://127.0.0.1:3002/in"
        secret_file = "{secrets}"

        [[sources]]
        name = "shop"
        kind = "stripe"
        secrets_file = "{source}"
        "#
    ))
    .unwrap();
    let s = Settings::from_parts(file, &HashMap::new()).unwrap();
    assert_eq!(
        s.targets[0].token.as_ref().map(Secret::expose),
        Some("booking-token")
    );
    assert_eq!(
        s.targets[1].secret.as_ref().map(Secret::expose),
        Some(
            "whsec_bmV3IHNlY3JldCBmb3IgdGhlIHJlZnVuZHMgdGFyZ2V0 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        )
    );
    let shop = s.webhook_sources();
    let shop = shop.get("shop").unwrap();
    assert!(format!("{:?}", shop.scheme).contains("Stripe"));

    // Both forms, or a file that is missing: the key and the path are named, never a secret.
    for (toml, key, says) in [
        (
            format!("token = \"t\"\ntoken_file = \"{token}\""),
            "targets[0].token_file",
            "not both",
        ),
        (
            "token_file = \"/nonexistent/payhook-token\"".to_string(),
            "targets[0].token_file",
            "/nonexistent/payhook-token",
        ),
    ] {
        let file = toml_file(&format!(
            "[[targets]]\nname = \"t\"\nkind = \"booking-status\"\nurl = \"http://h\"\n{toml}"
        ))
        .unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert_eq!(err.key, key, "{toml}");
        assert!(err.message.contains(says), "{err}");
        assert!(!err.to_string().contains("booking-token"), "{err}");
    }
}

#[test]
fn the_public_url_follows_the_listener_unless_it_is_set() {
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_LISTEN", "127.0.0.1:3013")]),
    )
    .unwrap();
    assert_eq!(
        (s.public_url.as_str(), s.public_url_set),
        ("http://localhost:3013", false)
    );
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[("PAYHOOK_LISTEN", "192.0.2.7:8080")]),
    )
    .unwrap();
    assert_eq!(s.public_url, "http://192.0.2.7:8080");
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[
            ("PAYHOOK_LISTEN", "0.0.0.0:3013"),
            ("PAYHOOK_PUBLIC_URL", "https://pay.example.com/"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (s.public_url.as_str(), s.public_url_set),
        ("https://pay.example.com", true)
    );
    assert_eq!(Settings::defaults().public_url, "http://localhost:3003");
}

#[test]
fn route_aliases_are_plain_paths_outside_payhooks_own() {
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[(
            "STRIPE_WEBHOOK_ROUTES",
            "/api/webhooks/stripe, /stripe/webhooks/",
        )]),
    )
    .unwrap();
    assert_eq!(
        s.webhook_routes,
        [
            ("/api/webhooks/stripe".to_string(), "stripe".to_string()),
            ("/stripe/webhooks".to_string(), "stripe".to_string())
        ]
    );
    for bad in ["api/x", "/a/../b", "/webhooks/other", "/a b", "/a/{id}"] {
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("STRIPE_WEBHOOK_ROUTES", bad)]),
        )
        .unwrap_err();
        assert_eq!(err.key, "STRIPE_WEBHOOK_ROUTES", "{bad}");
    }
    let file = toml_file(
        "[stripe]\nroutes = [\"/hooks\"]\n[[sources]]\nname = \"sw\"\nkind = \"standard-webhooks\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nroutes = [\"/hooks\"]\n",
    )
    .unwrap();
    let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
    assert!(err.message.contains("two sources"), "{err}");
}

#[test]
fn a_bad_config_file_is_named_by_its_own_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisen = 2\n").unwrap();
    let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(err.key, format!("{} line 2", path.display()), "{err}");
}

#[test]
fn a_short_signing_secret_is_refused_for_its_length() {
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_ls4b")]),
    )
    .unwrap_err();
    assert!(err.message.contains("10 characters long"), "{err}");
    assert!(
        !err.message.contains("ls4b"),
        "the secret is never printed: {err}"
    );
    let err = Settings::from_parts(
        FileConfig::default(),
        &env(&[("STRIPE_WEBHOOK_SECRET", "sk_test_0123456789abcdef")]),
    )
    .unwrap_err();
    assert!(err.message.contains("does not start with whsec_"), "{err}");
}

#[test]
fn secrets_can_come_from_files_never_from_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("stripe_webhook_secret");
    std::fs::write(&secret, "whsec_from_a_docker_secret\n").unwrap();
    let path = secret.display().to_string();
    let loaded = Settings::load(
        None,
        &env(&[
            ("STRIPE_WEBHOOK_SECRET_FILE", &path),
            ("PAYHOOK_ADMIN_TOKEN_FILE", &path),
        ]),
    )
    .unwrap();
    assert_eq!(
        loaded.stripe.webhook_secrets[0].expose(),
        "whsec_from_a_docker_secret",
        "read, its newline trimmed"
    );
    assert!(
        !loaded.webhook_secret_needed(),
        "no sandbox secret is generated"
    );
    assert_eq!(
        loaded.admin_token.as_ref().unwrap().expose(),
        "whsec_from_a_docker_secret"
    );

    let both = Settings::load(
        None,
        &env(&[
            ("STRIPE_WEBHOOK_SECRET_FILE", &path),
            ("STRIPE_WEBHOOK_SECRET", "whsec_also_in_the_environment"),
        ]),
    )
    .unwrap_err();
    assert_eq!(both.key, "STRIPE_WEBHOOK_SECRET_FILE");
    let missing = Settings::load(
        None,
        &env(&[("STRIPE_WEBHOOK_SECRET_FILE", "/run/secrets/not_there")]),
    )
    .unwrap_err();
    assert_eq!(missing.key, "STRIPE_WEBHOOK_SECRET_FILE");
    assert!(
        missing.message.contains("/run/secrets/not_there"),
        "{missing}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = Settings::load(
        None,
        &env(&[("STRIPE_WEBHOOK_SECRET_FILE", &empty.display().to_string())]),
    )
    .unwrap_err();
    assert!(err.message.contains("is empty"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let s = Settings::from_parts(
        FileConfig::default(),
        &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_topsecret1")]),
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("topsecret"));
}
