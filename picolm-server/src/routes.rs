//! The HTTP endpoints: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, `GET /health`,
//! the API-key check, and JSON errors for unknown paths (404), methods (405) and oversized bodies (413).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::engine::{Job, Outcome};
use crate::error::ApiError;
use crate::queue::{JobEvent, JobHandle, Scheduler};
use crate::request::{parse_chat, parse_completion, parse_object};
use crate::response::{self, Meta};

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    /// The engine behind its queue.
    pub scheduler: Scheduler,
    /// The model name reported (and accepted: any name is served by the one model).
    pub model_name: String,
    /// `--api-key`.
    pub api_key: Option<String>,
    /// Server start, Unix seconds.
    pub created: u64,
    next_id: AtomicU64,
}

impl AppState {
    /// State over a scheduler.
    pub fn new(scheduler: Scheduler, model_name: String, api_key: Option<String>) -> AppState {
        AppState { scheduler, model_name, api_key, created: unix_now(), next_id: AtomicU64::new(1) }
    }

    fn meta(&self, prefix: &str) -> Meta {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Meta { id: format!("{prefix}-{:x}{n:06x}", self.created), created: unix_now(), model: self.model_name.clone() }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The router with every endpoint, `max_body` bytes of request body at most.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// Whether `header` is `Bearer <key>`; the key bytes are compared in constant time.
pub fn key_matches(header: Option<&str>, key: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
    bool::from(given.trim().as_bytes().ct_eq(key.as_bytes()))
}

async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !key_matches(given, key) {
            let why = if given.is_none() { "no API key: send Authorization: Bearer <key>" } else { "wrong API key" };
            return ApiError::unauthorized(why).into_response();
        }
    }
    next.run(req).await
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "model": state.model_name, "busy": state.scheduler.load()}))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(response::models(&state.model_name, state.created))
}

/// The body, or the error for a body over the limit (413), one not sent within the read timeout (408) or one
/// that could not be read (400).
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let timed_out = source_chain(&r).any(|e| e.is::<tower_http::timeout::TimeoutError>());
        let (status, message) = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (r.status(), "the request body is larger than the server's limit (--max-body-bytes)".to_string())
        } else if timed_out {
            (
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received within the read timeout (--read-timeout)".to_string(),
            )
        } else {
            (r.status(), format!("the request body could not be read: {}", r.body_text()))
        };
        ApiError { status, ..ApiError::bad_request(message) }
    })
}

/// An error and its sources, outermost first.
fn source_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req = parse_chat(&parse_object(&body(b)?)?)?;
    let (stream, include_usage) = (req.gen.stream, req.gen.include_usage);
    let meta = state.meta("chatcmpl");
    let handle = state.scheduler.submit(Job::Chat(req))?;
    if stream {
        stream_response(handle, meta, include_usage, Kind::Chat).await
    } else {
        let out = collect(handle).await?;
        Ok(Json(response::chat_completion(&meta, &out)).into_response())
    }
}

async fn completions(
    State(state): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req = parse_completion(&parse_object(&body(b)?)?)?;
    let (stream, include_usage) = (req.gen.stream, req.gen.include_usage);
    let meta = state.meta("cmpl");
    let handle = state.scheduler.submit(Job::Completion(req))?;
    if stream {
        stream_response(handle, meta, include_usage, Kind::Completion).await
    } else {
        let out = collect(handle).await?;
        Ok(Json(response::completion(&meta, &out)).into_response())
    }
}

/// Waits for the end of a job (its pieces are in the outcome's text).
async fn collect(mut handle: JobHandle) -> Result<Outcome, ApiError> {
    while let Some(ev) = handle.events.recv().await {
        if let JobEvent::Done(r) = ev {
            return r;
        }
    }
    Err(ApiError::internal("the job ended without a result"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// Streams a job as server-sent events. The response starts with the job's first event, so an error found
/// before any text (a prompt longer than the context, a schema the grammar cannot enforce) is still answered
/// with its status code; after that, the stream ends with the last chunk, the usage chunk if asked for, and
/// `data: [DONE]`. Dropping the stream (the client went away) drops the handle, which cancels the job.
async fn stream_response(
    mut handle: JobHandle,
    meta: Meta,
    include_usage: bool,
    kind: Kind,
) -> Result<Response, ApiError> {
    let first = handle.events.recv().await.ok_or_else(|| ApiError::internal("the job ended without a result"))?;
    if let JobEvent::Done(Err(e)) = first {
        return Err(e);
    }
    let mut opening = std::collections::VecDeque::new();
    if kind == Kind::Chat {
        opening.push_back(response::chat_chunk(&meta, json!({"role": "assistant", "content": ""}), None).to_string());
    }
    let state = StreamState { handle: Some(handle), meta, include_usage, kind, pending: opening, first: Some(first) };
    let events = stream::unfold(state, |mut st| async move { st.next().await.map(|ev| (ev, st)) });
    Ok(Sse::new(events.map(Ok::<Event, Infallible>)).into_response())
}

struct StreamState {
    handle: Option<JobHandle>,
    meta: Meta,
    include_usage: bool,
    kind: Kind,
    /// `data:` payloads ready to send.
    pending: std::collections::VecDeque<String>,
    first: Option<JobEvent>,
}

impl StreamState {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(data) = self.pending.pop_front() {
                return Some(Event::default().data(data));
            }
            let ev = match self.first.take() {
                Some(ev) => ev,
                None => self.handle.as_mut()?.events.recv().await?,
            };
            match ev {
                JobEvent::Piece(text) => {
                    let chunk = match self.kind {
                        Kind::Chat => response::chat_chunk(&self.meta, json!({"content": text}), None),
                        Kind::Completion => response::completion_chunk(&self.meta, &text, None),
                    };
                    self.pending.push_back(chunk.to_string());
                }
                JobEvent::Done(Ok(out)) => {
                    self.handle = None;
                    self.finish(&out);
                }
                JobEvent::Done(Err(e)) => {
                    // A failure after the stream started: reported in the stream, as OpenAI does, then the end.
                    self.handle = None;
                    self.pending.push_back(e.body().to_string());
                    self.pending.push_back("[DONE]".into());
                }
            }
        }
    }

    /// Queues the closing chunks: tool-call deltas, the chunk with `finish_reason`, the usage chunk if asked for,
    /// and `[DONE]`.
    fn finish(&mut self, out: &Outcome) {
        let m = &self.meta;
        let mut chunks = Vec::new();
        match self.kind {
            Kind::Chat => {
                for delta in response::tool_call_deltas(&out.tool_calls) {
                    chunks.push(response::chat_chunk(m, delta, None));
                }
                chunks.push(response::chat_chunk(m, json!({}), Some(out.finish_reason)));
                if self.include_usage {
                    chunks.push(response::chat_usage_chunk(m, &out.usage));
                }
            }
            Kind::Completion => {
                chunks.push(response::completion_chunk(m, "", Some(out.finish_reason)));
                if self.include_usage {
                    chunks.push(response::completion_usage_chunk(m, &out.usage));
                }
            }
        }
        self.pending.extend(chunks.iter().map(Value::to_string));
        self.pending.push_back("[DONE]".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_key_check() {
        assert!(key_matches(Some("Bearer sekrit"), "sekrit"));
        assert!(!key_matches(Some("Bearer sekrit2"), "sekrit"));
        assert!(!key_matches(Some("Bearer sekri"), "sekrit"));
        assert!(!key_matches(Some("sekrit"), "sekrit"));
        assert!(!key_matches(Some("Basic sekrit"), "sekrit"));
        assert!(!key_matches(None, "sekrit"));
    }
}
