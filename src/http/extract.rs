//! The extractors handlers read their requests through: a query string, path or JSON body becomes
//! the handler's one serde type (the type the API document describes), and a value that type does
//! not take is refused as `400 validation_error` naming its field, as the API always has.
//!
//! serde's own formats cannot keep that promise: serde_urlencoded and serde_json name no field in
//! their errors, and stop at the first bad field in the order the client happened to write them.
//! So each extractor first reads the request into named values, then deserializes the type from
//! them with [`Fields`], which
//! - hands the type every field it declares, in the order it declares them, an absent one as null
//!   (like an empty query value or a JSON null): refusals come in the type's order, and the field's
//!   own deserializer decides what absence means (`limit` is 50, `since` is required);
//! - names the field in any error that deserializer raises;
//! - refuses, in a JSON body, the first field the type does not declare.
//!
//! The field deserializers (`deserialize_with`) say in the API's words what a bad value is. A type
//! read this way is a plain struct: no `flatten`, no `alias` (serde would no longer ask for its
//! fields by name).

use std::collections::HashMap;
use std::fmt;

use axum::extract::rejection::{BytesRejection, QueryRejection, RawPathParamsRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub use crate::domain::column::Word;

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
        Ok(ValidQuery(Fields::lenient(values).deserialize()?))
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
        Ok(ValidPath(Fields::lenient(values).deserialize()?))
    }
}

/// A JSON object body as `T`, whatever the `Content-Type` says (`curl -d` sends a form type);
/// a field `T` does not declare is refused. The body is buffered within axum's default limit.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state).await?;
        let values = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_request",
                    "the body must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_request",
                    format!("the body is not JSON: {e}"),
                )
                .hint("send Content-Type: application/json and a JSON object"));
            }
        };
        Ok(ValidJson(Fields::strict(values).deserialize()?))
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

/// A body over the limit (413), or one that could not be read.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "body_unreadable"
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

/// A refusal of one field's value, or of a field the type does not declare.
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
    /// Whether a name the struct does not declare is refused (a JSON body) or ignored.
    strict: bool,
}

impl Fields {
    pub fn lenient(values: Map<String, Value>) -> Fields {
        Fields {
            values,
            strict: false,
        }
    }

    pub fn strict(values: Map<String, Value>) -> Fields {
        Fields {
            values,
            strict: true,
        }
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
            strict: self.strict,
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
    strict: bool,
    /// The field whose value is asked for next.
    current: &'static str,
}

impl<'de> MapAccess<'de> for FieldsAccess {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        if let Some(&field) = self.fields.next() {
            self.current = field;
            return seed.deserialize(field.into_deserializer()).map(Some);
        }
        // Every declared field is taken out by now: what is left was not asked for.
        match self.values.keys().next() {
            Some(unknown) if self.strict => Err(FieldError::at(unknown, "is not a known field")),
            _ => Ok(None),
        }
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

/// An optional parameter that is one of `T`'s words.
pub fn one_of<'de, D: Deserializer<'de>, T: Word>(d: D) -> Result<Option<T>, D::Error> {
    let Some(v) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match T::ALL.iter().find(|a| a.as_str() == v) {
        Some(found) => Ok(Some(*found)),
        None => {
            let words: Vec<&str> = T::ALL.iter().map(|a| a.as_str()).collect();
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

    impl Word for Colour {
        const WHAT: &'static str = "colour";
        const ALL: &'static [Colour] = &[Colour::Red, Colour::Blue];

        fn as_str(self) -> &'static str {
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

    fn read(values: Value, strict: bool) -> Result<Sample, FieldError> {
        let Value::Object(map) = values else {
            unreachable!()
        };
        let fields = if strict {
            Fields::strict(map)
        } else {
            Fields::lenient(map)
        };
        fields.deserialize()
    }

    #[test]
    fn absent_fields_are_null_to_their_deserializer() {
        let s = read(json!({}), true).unwrap();
        assert_eq!((s.colour, s.kind, s.count), (None, None, 7));
        let s = read(json!({"colour": "blue", "type": "x", "count": "3"}), true).unwrap();
        assert_eq!(
            (s.colour, s.kind.as_deref(), s.count),
            (Some(Colour::Blue), Some("x"), 3)
        );
    }

    #[test]
    fn a_refusal_names_its_field_and_comes_in_the_types_order() {
        let e = read(json!({"count": "many", "colour": "green"}), false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert_eq!(e.message, "\"green\" is not one of red, blue");
        let e = read(json!({"count": "many"}), false).unwrap_err();
        assert_eq!(e.to_string(), "count: a whole number");
        let e = read(json!({"type": 1}), false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("type"));
    }

    #[test]
    fn unknown_names_are_refused_only_when_strict() {
        let e = read(json!({"colour": "red", "shade": null}), true).unwrap_err();
        assert_eq!(e.to_string(), "shade: is not a known field");
        // A bad declared field is refused before the unknown one.
        let e = read(json!({"colour": "pink", "shade": 1}), true).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert!(read(json!({"shade": 1}), false).is_ok());
    }
}
