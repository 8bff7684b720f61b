//! How the status enums are kept in the store: as the word `as_str` gives, in a text column of
//! either backend. A word payhook does not write (a row changed by hand, or by a later payhook)
//! fails to decode, naming the word, instead of being read as some other status.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use super::state::{CheckoutStatus, PaymentStatus};
use super::status::{DeliveryStatus, EventStatus};

/// A closed set of values with one word each (a status): how the store keeps it, and what an
/// API parameter taking it accepts (any other word is refused with the list).
pub trait Word: Sized + Copy + 'static {
    /// What the value is, for the error that names an unknown word.
    const WHAT: &'static str;
    /// Every value, in the order a refusal lists them.
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;

    fn parse(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|w| w.as_str() == word)
    }
}

/// The word in `value`, as a `T`.
fn decode_word<'r, DB: Database, T: Word>(value: DB::ValueRef<'r>) -> Result<T, BoxDynError>
where
    &'r str: Decode<'r, DB>,
{
    let word = <&str as Decode<DB>>::decode(value)?;
    T::parse(word).ok_or_else(|| format!("{} {word:?} is not one payhook writes", T::WHAT).into())
}

/// The orphan rule wants one `impl` of sqlx's traits per type: this writes the three, each
/// delegating to the text column's.
macro_rules! text_column {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Word for $t {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &<$t>::ALL;
            fn as_str(self) -> &'static str {
                <$t>::as_str(self)
            }
        }

        impl<DB: Database> Type<DB> for $t
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                decode_word::<DB, $t>(value)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $t
        where
            &'static str: Encode<'q, DB>,
        {
            fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    )*};
}

text_column!(
    EventStatus => "event status",
    DeliveryStatus => "delivery status",
    PaymentStatus => "payment status",
    CheckoutStatus => "checkout status",
);
