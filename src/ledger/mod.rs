//! The payment ledger: provider events become facts ([`facts`]); a payment's state is derived from
//! the set of its facts ([`state`]), so arrival order and repeats do not matter; the [`processor`]
//! applies inbox events to it, a batch per transaction ([`batch`]).

mod batch;
pub mod facts;
pub mod fetch;
pub mod missed;
pub mod processor;
pub mod upgrade;

pub use facts::{Interpretation, interpret_mapped, interpret_stripe};
pub use processor::{Handled, Outcome, Processor};
