//! One retry policy for every request kubevet sends to a cluster. A fresh kind cluster
//! restarts its API server while it settles, a loaded one answers 429, a proxy in front of it
//! answers 502: none of that may change a verdict. So every request passes [`RetryLayer`],
//! which retries what failed transiently (429 honouring `Retry-After`, 500, 502, 503, 504,
//! refused or reset connections, timeouts) with exponential backoff and jitter, bounded in
//! attempts and in time, and counts every request and every retry with its reason.
//!
//! Only what is safe to repeat is repeated by the layer: reads, lists, watches, server-side
//! apply, replace and delete. A create (POST) is repeated only when the server surely did not
//! see it (429, a refused connection); the creates kubevet sends make a repetition safe
//! themselves ([`Retrying`] at the call site: an `AlreadyExists` after a retried namespace
//! create is success, a `generateName` create is found again by a label).

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde::Serialize;
use tower::{BoxError, Layer, Service, ServiceExt};
use tracing::debug;

use crate::suite::ApiRetry;

/// A response body as kube's client stack passes it on.
pub type DynBody = Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send + Unpin>;

/// How many times, and for how long, one request may be tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The most time one request may spend, its retries and waits included; no retry starts
    /// past it.
    pub budget: Duration,
    /// The first wait; each later one doubles, up to `max_delay`, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long one attempt may wait for the response's head (not for a watch or a log's body).
    pub attempt_timeout: Duration,
}

/// The suite's `defaults.apiRetry` (attempts and budget; its defaults are the policy's).
impl From<ApiRetry> for RetryPolicy {
    fn from(retry: ApiRetry) -> Self {
        RetryPolicy {
            attempts: retry.attempts,
            budget: retry.budget.0,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        ApiRetry::default().into()
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first): exponential with "full
    /// jitter" (a random share between half and all of it), or what the server asked for
    /// (the budget decides whether that wait is worth it).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked;
        }
        let exponential = crate::util::duration::doubling(self.base_delay, retry, self.max_delay);
        let mut byte = [0u8; 1];
        let share = if getrandom::fill(&mut byte).is_ok() { 0.5 + f64::from(byte[0]) / 510.0 } else { 0.75 };
        exponential.mul_f64(share)
    }

    /// Whether another attempt may start after `spent`, waiting `delay` first.
    pub fn allows(&self, attempt: u32, spent: Duration, delay: Duration) -> bool {
        attempt < self.attempts && spent + delay < self.budget
    }
}

/// Requests sent and retried, by reason, for `run.json` and the summary.
#[derive(Debug, Default)]
pub struct RequestStats {
    sent: AtomicU64,
    retried: Mutex<BTreeMap<String, u64>>,
    exhausted: AtomicU64,
}

/// A copy of [`RequestStats`] at one moment.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub sent: u64,
    /// Retries by reason (`HTTP 503`, `connection reset`…).
    pub retried: BTreeMap<String, u64>,
    /// Requests that still failed when their budget ran out.
    pub exhausted: u64,
}

impl RequestCounts {
    pub fn retries(&self) -> u64 {
        self.retried.values().sum()
    }

    /// `4 retried (HTTP 503: 3, connection reset: 1)`, or nothing when none were.
    pub fn describe_retries(&self) -> Option<String> {
        if self.retries() == 0 && self.exhausted == 0 {
            return None;
        }
        let reasons: Vec<String> = self.retried.iter().map(|(why, n)| format!("{why}: {n}")).collect();
        let mut text = format!("{} API requests retried ({})", self.retries(), reasons.join(", "));
        if self.exhausted > 0 {
            text.push_str(&format!("; {} still failed after their retries", self.exhausted));
        }
        Some(text)
    }
}

impl RequestStats {
    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.lock().map(|m| m.clone()).unwrap_or_default(),
            exhausted: self.exhausted.load(Ordering::Relaxed),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(crate) fn record_retry(&self, reason: &str) {
        if let Ok(mut m) = self.retried.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    pub(crate) fn record_exhausted(&self) {
        self.exhausted.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a request failed transiently, and whether the server may have acted on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transient {
    pub reason: String,
    /// False when the request surely never reached the server's storage (429, refused).
    pub maybe_processed: bool,
    pub retry_after: Option<Duration>,
}

/// Kubernetes 1.20 answers a server-side apply of a field it does not know with a 500; that
/// is the object's problem, never a passing one (the caller falls back to create/replace).
const NOT_TRANSIENT_500: &str = "field not declared in schema";

fn transient_status(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Option<Transient> {
    let maybe_processed = match status.as_u16() {
        429 => false,
        500 if String::from_utf8_lossy(body).contains(NOT_TRANSIENT_500) => return None,
        500 | 502 | 503 | 504 => true,
        _ => return None,
    };
    Some(Transient { reason: format!("HTTP {}", status.as_u16()), maybe_processed, retry_after })
}

/// A transport error's cause, in the words the counts use.
fn transient_error(error: &(dyn std::error::Error + 'static)) -> Option<Transient> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let (reason, maybe_processed) = match io.kind() {
                ConnectionRefused => ("connection refused", false),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => ("connection reset", true),
                TimedOut => ("timeout", true),
                _ => ("connection error", true),
            };
            return Some(Transient { reason: reason.into(), maybe_processed, retry_after: None });
        }
        if let Some(legacy) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            let refused = io_kind(legacy) == Some(std::io::ErrorKind::ConnectionRefused);
            let reason = if refused { "connection refused" } else { "connection error" };
            return Some(Transient { reason: reason.into(), maybe_processed: false, retry_after: None });
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled() || h.is_timeout())
        {
            return Some(Transient { reason: "connection reset".into(), maybe_processed: true, retry_after: None });
        }
        if e.downcast_ref::<AttemptTimedOut>().is_some() {
            return Some(Transient { reason: "timeout".into(), maybe_processed: true, retry_after: None });
        }
        source = e.source();
    }
    None
}

/// The kind of the first I/O error among an error's causes.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// Whether a failed request (as kube reports it) was a transient fault of the cluster: then
/// it was already retried to its budget, and what failed is the cluster, not the example.
pub fn transient(error: &kube::Error) -> Option<Transient> {
    match error {
        kube::Error::Api(status) => {
            let code = StatusCode::from_u16(status.code).ok()?;
            transient_status(code, status.message.as_bytes(), None)
        }
        kube::Error::HyperError(e) => transient_error(e),
        kube::Error::Service(e) => transient_error(e.as_ref()),
        _ => None,
    }
}

#[derive(Debug)]
struct AttemptTimedOut(Duration);

impl std::fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

impl std::error::Error for AttemptTimedOut {}

/// The tower layer that puts [`RetryPolicy`] and [`RequestStats`] under every request.
#[derive(Clone)]
pub struct RetryLayer {
    pub policy: RetryPolicy,
    pub stats: Arc<RequestStats>,
}

type Inner = Arc<tokio::sync::Mutex<tower::util::BoxService<Request<Body>, Response<DynBody>, BoxError>>>;

impl<S> Layer<S> for RetryLayer
where
    S: Service<Request<Body>, Response = Response<DynBody>, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Service = Retrying;

    fn layer(&self, inner: S) -> Retrying {
        Retrying {
            // kube's stack is a BoxService (not Clone); a call only takes the lock to start
            // the request, so requests still run side by side.
            inner: Arc::new(tokio::sync::Mutex::new(tower::util::BoxService::new(inner))),
            policy: self.policy,
            stats: self.stats.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Retrying {
    inner: Inner,
    policy: RetryPolicy,
    stats: Arc<RequestStats>,
}

/// A request kubevet may send again: its parts and its body, which kube always gives whole.
fn copy(req: &Request<Body>) -> Option<Request<Body>> {
    let mut copy = Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
    if let Some(headers) = copy.headers_mut() {
        headers.extend(req.headers().clone());
    }
    let mut copy = copy.body(req.body().try_clone()?).ok()?;
    *copy.extensions_mut() = req.extensions().clone();
    Some(copy)
}

/// A watch or a followed log streams for as long as it lasts: no attempt timeout on those.
fn is_stream(req: &Request<Body>) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1" || p == "follow=true"))
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn whole_body(status: StatusCode, headers: http::HeaderMap, bytes: Bytes) -> Response<DynBody> {
    let body: DynBody = Box::new(http_body_util::Full::new(bytes).map_err(|never| match never {}));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

async fn attempt(inner: &Inner, req: Request<Body>, timeout: Option<Duration>) -> Result<Response<DynBody>, BoxError> {
    let call = {
        let mut service = inner.lock().await;
        service.ready().await?.call(req)
    };
    match timeout {
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| Box::new(AttemptTimedOut(limit)))?,
        None => call.await,
    }
}

impl Service<Request<Body>> for Retrying {
    type Response = Response<DynBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<DynBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is asked of the inner service for each attempt, under its lock.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let (inner, policy, stats) = (self.inner.clone(), self.policy, self.stats.clone());
        Box::pin(async move {
            let started = Instant::now();
            let what = format!("{} {}", req.method(), req.uri().path());
            let repeatable = req.method() != Method::POST;
            let timeout = (!is_stream(&req)).then_some(policy.attempt_timeout);
            let spare = copy(&req);
            let mut req = req;
            let mut number = 1;
            loop {
                let again = if number < policy.attempts { spare.as_ref().and_then(copy) } else { None };
                stats.sent.fetch_add(1, Ordering::Relaxed);
                let (fault, result) = match attempt(&inner, req, timeout).await {
                    Ok(response) if matches!(response.status().as_u16(), 429 | 500 | 502 | 503 | 504) => {
                        let (parts, body) = response.into_parts();
                        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        let fault = transient_status(parts.status, &bytes, retry_after(&parts.headers));
                        (fault, Ok(whole_body(parts.status, parts.headers, bytes)))
                    }
                    Ok(response) => return Ok(response),
                    Err(e) => (transient_error(e.as_ref()), Err(e)),
                };
                let Some(fault) = fault else { return result };
                let delay = policy.delay(number, fault.retry_after);
                let safe = repeatable || !fault.maybe_processed;
                match again {
                    Some(copied) if safe && policy.allows(number, started.elapsed(), delay) => {
                        debug!(request = %what, attempt = number, reason = %fault.reason, wait_ms = delay.as_millis() as u64, "retrying a request");
                        stats.record_retry(&fault.reason);
                        tokio::time::sleep(delay).await;
                        req = copied;
                        number += 1;
                    }
                    _ => {
                        if safe {
                            debug!(request = %what, attempts = number, reason = %fault.reason, "request failed after its retries");
                            stats.record_exhausted();
                        }
                        return result;
                    }
                }
            }
        })
    }
}

/// Retries at a call site that makes a repeated create safe: the same policy, the same
/// counts. `attempt` gets the attempt number (1 for the first) and says what became of it.
pub async fn at_call_site<T, F, Fut>(
    policy: &RetryPolicy,
    stats: &RequestStats,
    what: &str,
    mut attempt: F,
) -> Result<T, kube::Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let started = Instant::now();
    let mut number = 1;
    loop {
        match attempt(number).await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let Some(fault) = transient(&e) else { return Err(e) };
                let delay = policy.delay(number, fault.retry_after);
                if !policy.allows(number, started.elapsed(), delay) {
                    stats.record_exhausted();
                    return Err(e);
                }
                debug!(request = %what, attempt = number, reason = %fault.reason, "retrying a create");
                stats.record_retry(&fault.reason);
                tokio::time::sleep(delay).await;
                number += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_respect_the_server() {
        let p = RetryPolicy::default();
        for retry in 1..=8 {
            let d = p.delay(retry, None);
            let full = p.base_delay.saturating_mul(1 << (retry - 1)).min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not within [{:?}, {full:?}]", full / 2);
        }
        assert_eq!(p.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert!(p.allows(1, Duration::ZERO, Duration::from_secs(1)));
        assert!(!p.allows(p.attempts, Duration::ZERO, Duration::ZERO), "attempts are bounded");
        assert!(!p.allows(1, p.budget, Duration::ZERO), "time is bounded");
    }

    #[test]
    fn statuses_are_told_apart() {
        let t =
            |code: u16, body: &str| transient_status(StatusCode::from_u16(code).expect("code"), body.as_bytes(), None);
        assert_eq!(t(429, "").map(|f| f.maybe_processed), Some(false));
        assert_eq!(t(503, "").map(|f| f.reason), Some("HTTP 503".into()));
        assert!(t(500, ".spec.suspend: field not declared in schema").is_none(), "1.20's SSA rejection is final");
        assert!(t(404, "").is_none() && t(422, "").is_none() && t(409, "").is_none());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            transient_error(&refused).map(|f| (f.reason, f.maybe_processed)),
            Some(("connection refused".into(), false))
        );
    }

    #[test]
    fn counts_say_how_many_and_why() {
        let stats = RequestStats::default();
        stats.record_retry("HTTP 503");
        stats.record_retry("HTTP 503");
        stats.record_retry("HTTP 429");
        assert_eq!(stats.counts().retries(), 3);
        assert_eq!(
            stats.counts().describe_retries().as_deref(),
            Some("3 API requests retried (HTTP 429: 1, HTTP 503: 2)")
        );
    }
}
