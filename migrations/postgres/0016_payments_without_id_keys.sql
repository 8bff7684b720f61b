-- Payments are found by a provider id through `payment_refs (source, ref)`, which also keeps each
-- id to one payment. The unique keys `(source, payment_intent_id)` and `(source,
-- checkout_session_id)` held the same ids again: two more index entries for each new payment.
ALTER TABLE payments
    DROP CONSTRAINT IF EXISTS payments_source_payment_intent_id_key,
    DROP CONSTRAINT IF EXISTS payments_source_checkout_session_id_key;
