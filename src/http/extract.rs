//! The extractors handlers read their requests through: a query string or path becomes the
//! handler's one serde type (the type the API document describes), and a value that type does not
//! take is refused as `400 validation_error` naming its field, as the API always has.
//!
//! serde_urlencoded cannot keep that promise: it names no field in its errors, and stops at the
//! first bad field in the order the client happened to write them. So each extractor first reads
//! the request into named values, then deserializes the type from them with [`Fields`], which
//! - hands the type every field it declares, in the order it declares them, an absent one as null
//!   (like an empty query value): refusals come in the type's order, and the field's own
//!   deserializer decides what absence means (`limit` is 50, `since` is required);
//! - names the field in any error that deserializer raises.
//!
//! The field deserializers (`deserialize_with`) say in the API's words what a bad value is. A type
//! read this way is a plain struct: no `flatten`, no `alias` (serde would no longer ask for its
//! fields by name).

use std::collections::HashMap;
use std::fmt;

use axum::extract::rejection::{QueryRejection, RawPathParamsRejection};
use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A query string as `T`. An empty value is an absent one, a parameter `T` does not declare is
/// ignored, and of a repeated parameter the last value counts.
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Decoded by axum into a map: the last of a repeated name wins.
        let Query(pairs) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)?;
        let values = pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Ok(ValidQuery(Fields::new(values).deserialize()?))
    }
}

/// The parameters of a route's path as `T`.
pub struct ValidPath<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state).await?;
        let values = params
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        Ok(ValidPath(Fields::new(values).deserialize()?))
    }
}

/// A query string axum cannot decode.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(
            rejection.status(),
            "malformed_request",
            rejection.body_text(),
        )
    }
}

/// A path parameter that is not UTF-8 once decoded.
impl From<RawPathParamsRejection> for ApiError {
    fn from(rejection: RawPathParamsRejection) -> ApiError {
        ApiError::new(
            rejection.status(),
            "malformed_request",
            rejection.body_text(),
        )
    }
}

/// A refusal of one field's value.
#[derive(Debug)]
pub struct FieldError {
    field: Option<String>,
    message: String,
}

impl FieldError {
    fn at(field: &str, message: impl fmt::Display) -> FieldError {
        FieldError {
            field: Some(field.to_string()),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(message: T) -> FieldError {
        FieldError {
            field: None,
            message: message.to_string(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        match e.field {
            Some(field) => ApiError::validation(&field, e.message),
            None => ApiError::new(StatusCode::BAD_REQUEST, "validation_error", e.message),
        }
    }
}

/// Named values, read into a struct field by field (see the module's documentation).
pub struct Fields {
    values: Map<String, Value>,
}

impl Fields {
    pub fn new(values: Map<String, Value>) -> Fields {
        Fields { values }
    }

    pub fn deserialize<T: DeserializeOwned>(self) -> Result<T, FieldError> {
        T::deserialize(self)
    }
}

impl<'de> Deserializer<'de> for Fields {
    type Error = FieldError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_map(FieldsAccess {
            fields: fields.iter(),
            values: self.values,
            current: "",
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, FieldError> {
        Err(de::Error::custom(
            "named values are read into a struct only",
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The struct's fields in its order, each with its value or null.
struct FieldsAccess {
    fields: std::slice::Iter<'static, &'static str>,
    values: Map<String, Value>,
    /// The field whose value is asked for next.
    current: &'static str,
}

impl<'de> MapAccess<'de> for FieldsAccess {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        // Names the struct does not declare are never asked for.
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let value = self.values.remove(self.current).unwrap_or(Value::Null);
        seed.deserialize(value)
            .map_err(|e| FieldError::at(self.current, e))
    }
}

/// A closed set of words a parameter takes (a status, say); any other is refused with the list.
pub trait Words: Copy + 'static {
    const ALL: &'static [Self];

    fn word(self) -> &'static str;
}

/// An optional parameter that is one of `T`'s words.
pub fn one_of<'de, D: Deserializer<'de>, T: Words>(d: D) -> Result<Option<T>, D::Error> {
    let Some(v) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match T::ALL.iter().find(|a| a.word() == v) {
        Some(found) => Ok(Some(*found)),
        None => {
            let words: Vec<&str> = T::ALL.iter().map(|a| a.word()).collect();
            Err(de::Error::custom(format!(
                "{v:?} is not one of {}",
                words.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Blue,
    }

    impl Words for Colour {
        const ALL: &'static [Colour] = &[Colour::Red, Colour::Blue];

        fn word(self) -> &'static str {
            match self {
                Colour::Red => "red",
                Colour::Blue => "blue",
            }
        }
    }

    fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(7),
            Some(n) => n.parse().map_err(|_| de::Error::custom("a whole number")),
        }
    }

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "one_of")]
        colour: Option<Colour>,
        #[serde(rename = "type")]
        kind: Option<String>,
        #[serde(deserialize_with = "count")]
        count: u32,
    }

    fn read(values: Value) -> Result<Sample, FieldError> {
        let Value::Object(map) = values else {
            unreachable!()
        };
        Fields::new(map).deserialize()
    }

    #[test]
    fn absent_fields_are_null_to_their_deserializer() {
        let s = read(json!({})).unwrap();
        assert_eq!((s.colour, s.kind, s.count), (None, None, 7));
        let s = read(json!({"colour": "blue", "type": "x", "count": "3"})).unwrap();
        assert_eq!(
            (s.colour, s.kind.as_deref(), s.count),
            (Some(Colour::Blue), Some("x"), 3)
        );
    }

    #[test]
    fn a_refusal_names_its_field_and_comes_in_the_types_order() {
        let e = read(json!({"count": "many", "colour": "green"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert_eq!(e.message, "\"green\" is not one of red, blue");
        let e = read(json!({"count": "many"})).unwrap_err();
        assert_eq!(e.to_string(), "count: a whole number");
        let e = read(json!({"type": 1})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("type"));
    }
}
