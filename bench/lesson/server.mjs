// What teams write instead of payhook, as the course's payment lesson teaches it: Express, the
// official stripe package checking the signature on the raw body, a PostgreSQL table of processed
// event ids, and the booking service told inline before the 200. payhook-bench runs it on the same
// signed events as payhook's end-to-end runs, for the comparison only; it is not part of payhook.
//
// Environment: PORT (0 picks one), DATABASE_URL, STRIPE_WEBHOOK_SECRET, BOOKING_SERVICE_URL,
// INTERNAL_SERVICE_TOKEN. Prints "public listener: http://ADDR" once it listens.
import axios from "axios";
import express from "express";
import pg from "pg";
import Stripe from "stripe";

// constructEvent needs no API call, so any key will do.
const stripe = new Stripe("sk_test_payhook_bench");
// As many connections as the benchmark's load has, so that the pool is not what limits it.
const db = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 32 });
const secret = process.env.STRIPE_WEBHOOK_SECRET;
const bookingService = process.env.BOOKING_SERVICE_URL;
const token = process.env.INTERNAL_SERVICE_TOKEN;

await db.query(`CREATE TABLE IF NOT EXISTS processed_events (
  event_id text PRIMARY KEY,
  event_type text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now())`);

const app = express();
app.post("/webhooks/stripe", express.raw({ type: "application/json" }), async (req, res) => {
  let event;
  try {
    event = stripe.webhooks.constructEvent(req.body, req.headers["stripe-signature"], secret);
  } catch (err) {
    return res.status(400).json({ error: `Webhook Error: ${err.message}` });
  }
  // Idempotence: the event id's row is the claim; a duplicate is answered without processing.
  const claimed = await db.query(
    "INSERT INTO processed_events (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    [event.id, event.type],
  );
  if (claimed.rowCount === 0) {
    return res.status(200).json({ received: true, duplicate: true });
  }
  try {
    const intent = event.data.object;
    const bookingId = intent.metadata?.bookingId;
    if (event.type === "payment_intent.succeeded" && bookingId) {
      // The booking service is told before the 200, with axios as the lesson does: the same
      // request payhook's booking-status target sends. axios throws on an answer other than 2xx.
      await axios.put(
        `${bookingService}/api/v1/bookings/${encodeURIComponent(bookingId)}/payment-status`,
        {
          status: "confirmed",
          paymentIntentId: intent.id,
          paidAt: new Date(event.created * 1000).toISOString(),
          refundedAt: null,
        },
        {
          headers: {
            authorization: `Bearer ${token}`,
            "x-service-name": "payment-gateway-service",
          },
        },
      );
    }
    res.status(200).json({ received: true });
  } catch (err) {
    // Not processed after all: release the claim so the provider's retry is processed.
    await db.query("DELETE FROM processed_events WHERE event_id = $1", [event.id]);
    res.status(500).json({ received: true, error: err.message });
  }
});

const server = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", (err) => {
  if (err) throw err;
  const { address, port } = server.address();
  console.log(`public listener: http://${address}:${port}`);
});
