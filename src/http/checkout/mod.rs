//! Checkout: creating sessions and intents with the provider (service routes), the session status
//! the return page polls, the return page itself, and the sandbox provider's hosted page.

mod answers;
pub(super) mod api;
pub(super) mod pages;
pub(super) mod session;

pub use answers::ProviderAnswers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::responses::{Invalid, ProviderFailed, StoreDown, Unauthorized};
use super::error::{ApiError, ErrorBody};
use super::extract::ValidJson;
use super::payments::{authorize_service, session_payment_status};
use crate::checkout::{DEFAULT_SESSION_TTL, NewIntent, NewSession, SandboxError, SessionState};
use crate::domain::money::{self, Money};
use crate::domain::rfc3339;
use crate::domain::state::Payment;
use crate::store::{PaymentKey, Session};
