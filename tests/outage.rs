//! A short outage is a short pause: the booking service stopped for 3 s while webhooks keep
//! arriving, then back, with payhook's default delivery policy (the 10-minute outage is in
//! tests/outage_long.rs).

mod common;

use std::time::Duration;

use common::outage::outage;

#[tokio::test]
async fn the_booking_service_stopped_for_three_seconds_hears_everything_within_ten_seconds_of_its_return()
 {
    let m = outage(
        Duration::from_secs(1),
        Duration::from_secs(3),
        Duration::from_millis(150),
        Duration::from_secs(10),
    )
    .await;
    eprintln!(
        "{} bookings, {} webhooks while it was down; every notification delivered {:.1} s after it came back",
        m.bookings,
        m.during_outage,
        m.caught_up.as_secs_f64()
    );
}
