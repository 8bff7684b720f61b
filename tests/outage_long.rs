//! A long outage: the booking service stopped for 10 minutes while webhooks keep arriving, then
//! back. It takes 11 minutes, so it runs only when `PAYHOOK_LONG_TESTS=1` (scripts/test sets it
//! for this test binary alone).

mod common;

use std::time::Duration;

use common::outage::outage;

#[tokio::test]
async fn the_booking_service_stopped_for_ten_minutes_hears_everything_within_a_minute_of_its_return()
 {
    if std::env::var("PAYHOOK_LONG_TESTS").as_deref() != Ok("1") {
        common::skipped("a 10-minute outage; set PAYHOOK_LONG_TESTS=1 to run it");
        return;
    }
    let m = outage(
        Duration::from_secs(5),
        Duration::from_secs(600),
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "{} bookings, {} webhooks while it was down; every notification delivered {:.1} s after it came back",
        m.bookings,
        m.during_outage,
        m.caught_up.as_secs_f64()
    );
}
