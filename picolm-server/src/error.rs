//! OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}` with the matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use picolm_core::Error as CoreError;
use serde_json::json;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (names the offending value).
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// The request parameter at fault, if one is.
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`, `invalid_api_key`, ...).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: a request parameter is missing, of the wrong type or out of range.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    /// 400 without a parameter (malformed JSON, a body that is not an object).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404: no such endpoint.
    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no endpoint {path}: use /v1/chat/completions, /v1/completions, /v1/models or /health"),
            kind: "invalid_request_error",
            param: None,
            code: Some("not_found"),
        }
    }

    /// 405: the endpoint exists, the method does not.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("method {method} is not allowed on {path}"),
            kind: "invalid_request_error",
            param: None,
            code: Some("method_not_allowed"),
        }
    }

    /// 503: every slot is busy and the queue is full.
    pub fn overloaded(capacity: usize) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the server is busy: {capacity} requests are running or queued; retry later"),
            kind: "server_error",
            param: None,
            code: Some("server_busy"),
        }
    }

    /// 500: an engine failure that is not the request's fault.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The error JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }

    /// Maps an engine error: bad prompts, schemas, messages and settings are the request's fault (400), anything
    /// else is the server's (500). `param` names the request part the engine was working on.
    pub fn from_core(e: &CoreError, param: &str) -> ApiError {
        match e {
            CoreError::PromptTooLong { n_prompt, n_ctx } => ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(
                    "messages",
                    format!("the prompt is {n_prompt} tokens long but the context holds {n_ctx} tokens (start the server with a larger -c, or send less)"),
                )
            },
            CoreError::ContextOverflow { needed, n_ctx } => ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid("messages", format!("{needed} tokens are needed but the context holds {n_ctx}"))
            },
            CoreError::Grammar(g) => ApiError::invalid(param, g.to_string()),
            CoreError::Chat(c) => ApiError::invalid("messages", c.to_string()),
            CoreError::Sampler(s) => ApiError::invalid(s.name, s.to_string()),
            CoreError::InvalidArgument { .. } | CoreError::EmptyPrompt => ApiError::invalid(param, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::invalid("temperature", "must be a number, got \"hot\"");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "must be a number, got \"hot\"", "type": "invalid_request_error", "param": "temperature", "code": null}})
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn prompt_too_long_is_400_with_both_counts() {
        let e = ApiError::from_core(&CoreError::PromptTooLong { n_prompt: 900, n_ctx: 512 }, "messages");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, Some("context_length_exceeded"));
        assert!(e.message.contains("900") && e.message.contains("512"), "{}", e.message);
    }

    #[test]
    fn engine_failures_are_500() {
        let e = ApiError::from_core(&CoreError::NoLogits, "messages");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
