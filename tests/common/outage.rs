//! The booking service stopped while webhooks keep arriving, then back: the scenario of the outage
//! tests (tests/outage.rs, tests/outage_long.rs), with payhook's default delivery policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use payhook::booking_service::BookingService;
use payhook::domain::Secret;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

/// The example booking service on `addr` until told to stop; stopping closes its port and its
/// connections, as a process that exits does.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub async fn start_on(addr: SocketAddr, service: Arc<BookingService>) -> Running {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        axum::serve(listener, payhook::booking_service::router(service))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { stop, task }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// What an outage run measured.
pub struct Measured {
    pub bookings: usize,
    /// Webhooks acknowledged while the service was down.
    pub during_outage: usize,
    /// From the service's return to the last booking reaching its final status.
    pub caught_up: Duration,
}

/// Traffic for `before` with the service up, `down_for` with it stopped (one new booking every
/// `every`, each paid, every other one then refunded), and the service back: every booking must
/// reach its final status within `within` of the return, having seen its transitions in order.
pub async fn outage(
    before: Duration,
    down_for: Duration,
    every: Duration,
    within: Duration,
) -> Measured {
    let addr = {
        let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        parked.local_addr().unwrap()
    };
    let service = BookingService::new(Some(BOOKING_SERVICE_TOKEN.to_string()), false);
    let mut running = Some(start_on(addr, service.clone()).await);
    let app = spawn_app_with(|s| {
        s.targets = vec![
            payhook::config::booking_service_target(
                &format!("http://{addr}"),
                Some(&Secret::new(BOOKING_SERVICE_TOKEN)),
            )
            .unwrap(),
        ];
    })
    .await;

    let t = now();
    let mut bookings: Vec<(String, bool)> = Vec::new();
    let mut during_outage = 0;
    let mut opened = false;
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < before + down_for {
        let down = started.elapsed() >= before;
        if down && let Some(up) = running.take() {
            up.stop().await;
        }
        let booking = format!("booking-outage-{}", bookings.len());
        service.create(&booking, Some(2000), Some("EUR"), "pending");
        let pay = PaymentIds::new(&booking);
        let refunded = bookings.len() % 2 == 1;
        let mut events = vec![pay.event("payment_intent.succeeded", t, &[])];
        if refunded {
            events.push(pay.event("charge.refunded", t + 5, &[]));
        }
        for event in &events {
            app.deliver(event).await;
        }
        during_outage += usize::from(down) * events.len();
        bookings.push((booking, refunded));
        if down && !opened {
            let circuit = app.payhook.store.circuit("booking-service").await.unwrap();
            opened = circuit.state.as_str() == "open";
        }
        next += every;
        tokio::time::sleep_until(next.into()).await;
    }
    assert!(opened, "the outage opened the circuit");

    let back = Instant::now();
    let _up = start_on(addr, service.clone()).await;
    for (booking, refunded) in &bookings {
        let last = if *refunded { "refunded" } else { "confirmed" };
        let left = within.saturating_sub(back.elapsed());
        receiver::eventually(left, &format!("{booking} {last}"), || async {
            service.booking(booking).is_some_and(|b| b.status == last)
        })
        .await;
    }
    let caught_up = back.elapsed();
    for (booking, refunded) in &bookings {
        let history: Vec<String> = service
            .booking(booking)
            .unwrap()
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        let expected: &[&str] = if *refunded {
            &["pending>confirmed", "confirmed>refunded"]
        } else {
            &["pending>confirmed"]
        };
        assert_eq!(history, expected, "{booking}: in order, once each");
    }
    app.payhook.shutdown().await.unwrap();
    Measured {
        bookings: bookings.len(),
        during_outage,
        caught_up,
    }
}
