-- Look-ups by a provider id or an event id without its source (explain) walk the unique keys
-- `(source, ref)` and `(source, event_id)` once per source instead. These two indexes held the
-- same ids again: two more index entries per event, each on a random page of a large store, each
-- page written to the WAL and then to the file.
DROP INDEX IF EXISTS payment_refs_ref;
DROP INDEX IF EXISTS payment_facts_event;
