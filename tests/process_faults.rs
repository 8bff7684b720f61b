//! The real `payhook` binary through crashes and outages: SIGKILL and SIGTERM under load,
//! keep-alive load, a notification in flight when killed, several instances on one PostgreSQL,
//! PostgreSQL restarted under load, the booking service down for a minute.

mod common;
// Only the process tests start the binary: its helpers are compiled into them alone.
#[path = "common/process.rs"]
mod process;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use process::*;

#[tokio::test]
async fn every_acknowledged_event_survives_a_sigkill_under_load() {
    let (store, mut server) = serve_fresh().await;
    let addr = server.addr;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let senders: Vec<_> = (0..16)
        .map(|task| {
            let (client, acked) = (client.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("evt_crash_{task}_{n}");
                    let body = event_body(&id, "payment_intent.succeeded");
                    match post_signed(&client, addr, body).await {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                        Ok(r) => panic!("unexpected {} before the crash", r.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let load build up, then kill without warning.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Restart on the same store: it opens cleanly and has every acknowledged event, once.
    let mut restarted = serve(store.dir.path(), &store_env(&store)).await;
    let inbox = open_store(&store.url).await;
    for id in &acked {
        assert!(
            inbox.event("stripe", id).await.unwrap().is_some(),
            "{id} was acknowledged but lost"
        );
    }
    let total = inbox.count_events().await.unwrap();
    assert!(total as usize >= acked.len());
    // Re-delivering an acknowledged event is recognised as a duplicate.
    let body = event_body(&acked[0], "payment_intent.succeeded");
    let again: serde_json::Value = post_signed(&client, restarted.addr, body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(inbox.count_events().await.unwrap(), total);
    inbox.close().await;
    restarted.child.start_kill().unwrap();
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_store_its_event() {
    let (store, mut server) = serve_fresh().await;
    let addr = server.addr;
    let body = event_body("evt_in_flight", "payment_intent.succeeded");
    let sig = stripe_signature(body.as_bytes(), SECRET, now());

    // Send half the body, so the request is in flight when SIGTERM arrives.
    let mut stream = TcpStream::connect(addr).unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: {addr}\r\nStripe-Signature: {sig}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&server.child, "-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still draining: new connections are refused, the open request is served.
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
    stream.write_all(rest).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""duplicate":false"#), "{response}");

    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "payhook exited with {status}");
    let inbox = open_store(&store.url).await;
    assert!(
        inbox
            .event("stripe", "evt_in_flight")
            .await
            .unwrap()
            .is_some()
    );
    inbox.close().await;
}

#[tokio::test]
async fn two_hundred_events_over_keep_alive_connections_are_each_stored_once() {
    let (store, mut server) = serve_fresh().await;
    let client = payhook::net::client_builder().build().unwrap();
    let addr = server.addr;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            // Every event twice: the second copy must be a duplicate whichever lands first.
            let body = event_body(
                &format!("evt_keepalive_{}", i % 100),
                "payment_intent.succeeded",
            );
            let r = post_signed(&client, addr, body).await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut originals = HashSet::new();
    for t in tasks {
        let answer = t.await.unwrap();
        if answer["duplicate"] == false {
            assert!(originals.insert(answer["event_id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(originals.len(), 100);
    let inbox = open_store(&store.url).await;
    assert_eq!(inbox.count_events().await.unwrap(), 100);
    inbox.close().await;
    server.child.start_kill().unwrap();
}

/// A booking service that holds the first status update until payhook is killed, and takes the
/// rest at once: the update in flight at the kill is sent again after the restart, with the same
/// request id, and applied once.
#[tokio::test]
async fn a_notification_in_flight_when_payhook_is_killed_is_delivered_after_restart() {
    use common::receiver::{Receiver, Reply};
    let receiver = Receiver::start(|n, _| Reply {
        delay: if n == 0 {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        },
        ..Reply::status(200)
    })
    .await;
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.push(("BOOKING_SERVICE_URL", receiver.url.as_str()));
    env.push(("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN));
    let mut server = serve(store.dir.path(), &env).await;
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("notifying target booking-service: booking-status at")),
        "{:?}",
        server.banner
    );
    let client = payhook::net::client_builder().build().unwrap();
    pay_booking(&client, server.addr, "booking-killed").await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;

    signal(&server.child, "-KILL");
    server.child.wait().await.unwrap();
    let server = serve(store.dir.path(), &env).await;
    let all = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        all[1].header("x-request-id"),
        first[0].header("x-request-id")
    );
    assert_eq!(
        all[1].path,
        "/api/v1/bookings/booking-killed/payment-status"
    );
    assert_eq!(
        all[1].header("authorization"),
        format!("Bearer {SERVICE_TOKEN}")
    );

    let (ok, out) = payhook_on(&store, &server, &[], &["deliveries", "list"]).await;
    assert!(ok, "{out}");
    let mut lines = out.lines().skip(1);
    let row = lines.next().unwrap_or_default();
    assert!(
        row.contains("delivered") && row.contains("booking-killed") && row.contains("confirmed"),
        "{out}"
    );
    drop(server);
}

/// Scale-out on PostgreSQL: three `payhook serve` instances share one database. Every event of
/// 500 bookings (payment, partial refund, full refund, in random order) is sent twice, to two
/// different instances, by 32 concurrent senders; one instance is killed (SIGKILL) halfway, and
/// its requests go to the others, as a provider's retries would. Each event is in the ledger once,
/// each booking ends refunded with every transition applied once and in order, and no
/// notification is dead or sent twice.
#[tokio::test]
async fn three_instances_on_one_postgres_share_the_work_and_survive_losing_one() {
    use rand::seq::SliceRandom;
    let store = fresh_store().await;
    if !is_postgres(&store.url) {
        skipped("scale-out needs PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    let (service, booking_url) = common::receiver::booking_service(SERVICE_TOKEN).await;
    const BOOKINGS: usize = 500;
    let t = now();
    let mut events = Vec::new();
    for b in 0..BOOKINGS {
        let booking = format!("booking-scale-{b}");
        service.create(&booking, Some(2000), Some("EUR"), "pending");
        let pay = PaymentIds::new(&booking);
        events.push(pay.event("payment_intent.succeeded", t, &[]));
        events.push(pay.event(
            "charge.refunded",
            t + 5,
            &["amount_refunded=500".to_string()],
        ));
        events.push(pay.event("charge.refunded", t + 10, &[]));
    }
    // Each event twice, to two different instances; all of it shuffled.
    let mut sends: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .flat_map(|(i, e)| [(i % 3, e.to_string()), ((i + 1) % 3, e.to_string())])
        .collect();
    sends.shuffle(&mut rand::rng());

    let env = [
        ("DATABASE_URL", store.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("BOOKING_SERVICE_URL", booking_url.as_str()),
        ("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    for dir in &dirs {
        servers.push(serve(dir.path(), &env).await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();

    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let queue = Arc::new(Mutex::new(sends));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = events.len() * 2;
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, queue, sent, addrs) =
                (client.clone(), queue.clone(), sent.clone(), addrs.clone());
            tokio::spawn(async move {
                loop {
                    let Some((first, body)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    // The chosen instance, else the next ones: a provider retries what got no 200.
                    let mut stored = false;
                    for attempt in 0..30 {
                        let addr = addrs[(first + attempt) % addrs.len()];
                        if let Ok(r) = post_signed(&client, addr, body.clone()).await {
                            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                            stored = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    assert!(stored, "no instance stored an event");
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    while sent.load(std::sync::atomic::Ordering::Relaxed) < total / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut killed = servers.pop().unwrap();
    killed.child.start_kill().unwrap();
    killed.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }

    // The two left finish everything, the killed one's claimed notifications after their lease.
    for b in 0..BOOKINGS {
        let booking = format!("booking-scale-{b}");
        common::receiver::eventually(Duration::from_secs(60), &booking, || async {
            service.booking(&booking).unwrap().status == "refunded"
        })
        .await;
    }
    let db = sqlx::PgPool::connect(&store.url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM webhook_events").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM payment_facts").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM payments").await,
        BOOKINGS as i64
    );
    common::receiver::eventually(
        Duration::from_secs(30),
        "every notification delivered",
        || {
            let count = count("SELECT COUNT(*) FROM deliveries WHERE status <> 'delivered'");
            async move { count.await == 0 }
        },
    )
    .await;
    assert_eq!(
        count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'").await,
        0
    );

    // Per booking: each transition once, in the contract's order, whatever the arrival order.
    let valid = [
        vec![
            "pending>confirmed",
            "confirmed>partially_refunded",
            "partially_refunded>refunded",
        ],
        vec!["pending>confirmed", "confirmed>refunded"],
    ];
    for b in 0..BOOKINGS {
        let booking = service.booking(&format!("booking-scale-{b}")).unwrap();
        let history: Vec<String> = booking
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        assert!(
            valid.iter().any(|v| *v == history),
            "booking-scale-{b}: {history:?}"
        );
    }
    // Every notification reached the booking service; a second copy of one (same request id) can
    // only be an attempt the killed instance had in flight, sent again when its lease ended: at
    // most its concurrency (32), and never applied twice (the histories above).
    let received = service.received();
    let ids: HashSet<&str> = received
        .iter()
        .filter_map(|r| r.request_id.as_deref())
        .collect();
    assert_eq!(
        ids.len() as i64,
        count("SELECT COUNT(*) FROM deliveries").await
    );
    let repeats = received.len() - ids.len();
    assert!(repeats <= 32, "{repeats} updates sent twice");
    for s in &mut servers {
        signal(&s.child, "-TERM");
        assert!(s.child.wait().await.unwrap().success());
    }
}

/// A PostgreSQL server of the test's own (`scripts/lib/postgres.sh`), which it may stop and start
/// again; removed when dropped.
struct OwnPostgres {
    dir: String,
    url: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let out =
            OwnPostgres::script("pg_start -c fsync=off > /dev/null && echo \"$PG_DIR $PG_URL\"");
        let (dir, url) = out.trim().split_once(' ').expect("PG_DIR and PG_URL");
        OwnPostgres {
            dir: dir.to_string(),
            url: url.to_string(),
        }
    }

    fn script(commands: &str) -> String {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("source scripts/lib/postgres.sh && {commands}"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn run(&self, function: &str) {
        OwnPostgres::script(&format!("PG_DIR={} && {function}", self.dir));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.run("pg_stop");
    }
}

/// PostgreSQL stopped for a few seconds under load, then started again: payhook answers
/// `503 store_unavailable` (never 200) while it is down, recovers by itself (no restart), and
/// every event it acknowledged is stored once, applied, and confirms its booking.
#[tokio::test]
async fn postgres_stopped_and_restarted_under_load_loses_no_acknowledged_event() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |u| u.is_empty()) {
        skipped("the PostgreSQL tier runs it (it starts a server of its own)");
        return;
    }
    let pg = OwnPostgres::start();
    let (service, booking_url) = common::receiver::booking_service(SERVICE_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", pg.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("BOOKING_SERVICE_URL", booking_url.as_str()),
        ("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN),
    ];
    let mut server = serve(dir.path(), &env).await;
    let addr = server.addr;
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    use std::sync::atomic::Ordering::Relaxed;
    let senders: Vec<_> = (0..8)
        .map(|task| {
            let (client, acked, unavailable, stop, service) = (
                client.clone(),
                acked.clone(),
                unavailable.clone(),
                stop.clone(),
                service.clone(),
            );
            tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let booking = format!("booking-outage-{task}-{n}");
                    service.create(&booking, Some(2000), Some("EUR"), "pending");
                    let event =
                        PaymentIds::new(&booking).event("payment_intent.succeeded", now(), &[]);
                    // As a provider does: the same event again until it gets a 200.
                    loop {
                        let r = post_signed(&client, addr, event.to_string()).await.unwrap();
                        match r.status().as_u16() {
                            200 => break,
                            503 => {
                                let body: serde_json::Value = r.json().await.unwrap();
                                assert_eq!(body["error"]["code"], "store_unavailable");
                                unavailable.fetch_add(1, Relaxed);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            other => panic!("{other} during the outage"),
                        }
                    }
                    acked.lock().unwrap().push(booking);
                }
            })
        })
        .collect();
    let acked_count = || acked.lock().unwrap().len();
    while acked_count() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.run("pg_halt");
    let at_halt = acked_count();
    // The first requests wait up to the pool's acquire timeout (3 s) for a connection; once a
    // commit has failed, the store is known to be down and webhooks are answered at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        unavailable.load(Relaxed) > 0,
        "503 store_unavailable while the store is down"
    );
    let mut fastest = Duration::MAX;
    for n in 0..5 {
        let event = PaymentIds::new(&format!("booking-outage-timed-{n}")).event(
            "payment_intent.succeeded",
            now(),
            &[],
        );
        let started = std::time::Instant::now();
        let r = post_signed(&client, addr, event.to_string()).await.unwrap();
        assert_eq!(r.status(), 503);
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(500),
        "a store known to be down is answered at once: {fastest:?}"
    );
    assert!(
        acked_count() <= at_halt + 8,
        "no 200 while the store is down (at most the commits in flight at the halt)"
    );
    pg.run("pg_resume");
    // payhook recovers by itself: acknowledgements resume.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked_count() < at_halt + 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "payhook did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "never restarted"
    );

    let acked = acked.lock().unwrap().clone();
    for booking in &acked {
        common::receiver::eventually(Duration::from_secs(60), booking, || async {
            service.booking(booking).unwrap().status == "confirmed"
        })
        .await;
    }
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        stored as usize,
        acked.len(),
        "each acknowledged event once, applied"
    );
    eprintln!(
        "{} acknowledged, {} answers 503 while the store was down",
        acked.len(),
        unavailable.load(Relaxed)
    );
    db.close().await;
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
}

/// The booking service down for a minute while payments, partial refunds and refunds keep coming
/// (each booking's events in random order): every webhook is acknowledged, and once the service
/// is back every booking gets each of its transitions once, in order; nothing is dead.
#[tokio::test]
async fn the_booking_service_down_for_a_minute_under_load_loses_nothing_and_keeps_order() {
    use payhook::booking_service::BookingService;
    use rand::seq::SliceRandom;
    let store = fresh_store().await;
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let booking_addr = parked.local_addr().unwrap();
    drop(parked);
    // Retries that outlast the outage; a circuit that probes after 2 s, then waits twice as long
    // after each failed probe, up to 10 s (2, 4, 8, 10, 10, ... s over the minute).
    let toml = format!(
        r#"
[[targets]]
name = "booking-service"
kind = "booking-status"
url = "http://{booking_addr}"
token = "{SERVICE_TOKEN}"
retry_schedule = ["0s", "1s", "2s", "4s", "8s", "15s", "15s", "15s", "15s", "15s", "15s"]
circuit_failures = 5
circuit_open = "2s"
"#
    );
    std::fs::write(store.dir.path().join("payhook.toml"), toml).unwrap();
    let mut env = store_env(&store).to_vec();
    env.push(("PAYHOOK_CONFIG", "payhook.toml"));
    let mut server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // A minute of traffic: 5 bookings every 200 ms or so, each paid then partly then fully refunded.
    let t = now();
    let mut bookings = Vec::new();
    let started = std::time::Instant::now();
    let mut second = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let mut events = Vec::new();
        for i in 0..5 {
            let booking = format!("booking-down-{second}-{i}");
            let pay = PaymentIds::new(&booking);
            events.push(pay.event("payment_intent.succeeded", t, &[]));
            events.push(pay.event(
                "charge.refunded",
                t + 5,
                &["amount_refunded=500".to_string()],
            ));
            events.push(pay.event("charge.refunded", t + 10, &[]));
            bookings.push(booking);
        }
        events.shuffle(&mut rand::rng());
        for event in events {
            let answer = post_signed(&client, server.addr, event.to_string())
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        second += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The booking service comes back, knowing every booking.
    let service = BookingService::new(Some(SERVICE_TOKEN.to_string()), false);
    for booking in &bookings {
        service.create(booking, Some(2000), Some("EUR"), "pending");
    }
    let listener = tokio::net::TcpListener::bind(booking_addr).await.unwrap();
    tokio::spawn(payhook::booking_service::serve(listener, service.clone()));

    // The next probe can be up to 10 s away when the service comes back (the outage's last probe
    // failed just before), then the backlog goes, released at once: every booking within a minute.
    let back = std::time::Instant::now();
    for booking in &bookings {
        let left = Duration::from_secs(60).saturating_sub(back.elapsed());
        common::receiver::eventually(left, booking, || async {
            service.booking(booking).unwrap().status == "refunded"
        })
        .await;
        let history: Vec<String> = service
            .booking(booking)
            .unwrap()
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        assert!(
            history
                == [
                    "pending>confirmed",
                    "confirmed>partially_refunded",
                    "partially_refunded>refunded"
                ]
                || history == ["pending>confirmed", "confirmed>refunded"],
            "{booking}: {history:?}"
        );
    }
    let caught_up = back.elapsed();
    let dead: serde_json::Value = client
        .get(format!("{}/admin/api/deliveries?status=dead", server.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead["data"], serde_json::json!([]), "nothing dead");
    eprintln!(
        "{} bookings, {} webhooks during the outage; all delivered {:.1} s after the service came back",
        bookings.len(),
        bookings.len() * 3,
        caught_up.as_secs_f64()
    );
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
}
