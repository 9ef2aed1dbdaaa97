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
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
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
        let mut said = Vec::new();
        if self.retries() > 0 {
            said.push(format!("{} API requests retried ({})", self.retries(), reasons.join(", ")));
        }
        if self.exhausted > 0 {
            said.push(format!("{} API requests still failed after their retries", self.exhausted));
        }
        Some(said.join("; "))
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

/// Kubernetes 1.20 answers a server-side apply it cannot turn into a typed patch with a 500:
/// a field it does not know ("field not declared in schema"), or a list item without one of
/// its keys that 1.20 has no default for (a Service port without `protocol`). That is the
/// object's problem, never a passing one (the caller falls back to create/replace). Both are
/// the server's own words, before any of the object's names.
pub const SSA_CANNOT_TYPE: [&str; 2] = ["field not declared in schema", "failed to create typed patch object"];

pub fn is_ssa_cannot_type(message: &str) -> bool {
    SSA_CANNOT_TYPE.iter().any(|m| message.contains(m))
}

fn transient_status(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Option<Transient> {
    let maybe_processed = match status.as_u16() {
        429 => false,
        500 if is_ssa_cannot_type(&String::from_utf8_lossy(body)) => return None,
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
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| AttemptTimedOut(limit))?,
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
        let port = "failed to create typed patch object: .spec.ports: element 0: associative list with keys has an element that omits key field \"protocol\"";
        assert!(t(500, port).is_none(), "nor is a port without its protocol");
        assert!(t(500, "etcdserver: request timed out").is_some(), "another 500 is passing");
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

    /// What the scripted server answers one attempt.
    #[derive(Clone, Copy)]
    enum Answer {
        Status(u16, &'static str),
        /// 429 with `Retry-After: 0`.
        SlowDown,
        Io(std::io::ErrorKind),
        /// The answer's head comes after 200 ms, past the test policy's attempt timeout.
        Late(u16),
    }

    fn test_policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            budget: Duration::from_secs(20),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            attempt_timeout: Duration::from_millis(100),
        }
    }

    /// The retry layer over a server that answers attempt N with `answers[N]` (the last one
    /// again past the end); the second value lists the requests it received.
    fn scripted(answers: Vec<Answer>, attempts: u32) -> (Retrying, Arc<RequestStats>, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = tower::service_fn(move |req: Request<Body>| {
            let log = log.clone();
            let answers = answers.clone();
            async move {
                let n = {
                    let mut log = log.lock().expect("log");
                    log.push(format!("{} {}", req.method(), req.uri()));
                    log.len()
                };
                let body = req.into_body().collect_bytes().await.map_err(|e| Box::new(e) as BoxError)?;
                assert_eq!(body.as_ref(), b"{\"x\":1}", "each attempt carries the whole body");
                let answer = answers[n.min(answers.len()) - 1];
                let (status, text) = match answer {
                    Answer::Status(code, text) => (code, text),
                    Answer::SlowDown => (429, ""),
                    Answer::Io(kind) => return Err(Box::new(std::io::Error::from(kind)) as BoxError),
                    Answer::Late(code) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        (code, "")
                    }
                };
                let mut response = whole_body(StatusCode::from_u16(status)?, http::HeaderMap::new(), Bytes::from(text));
                if matches!(answer, Answer::SlowDown) {
                    response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("0"));
                }
                Ok::<_, BoxError>(response)
            }
        });
        let stats = Arc::new(RequestStats::default());
        let layer = RetryLayer { policy: test_policy(attempts), stats: stats.clone() };
        (layer.layer(server), stats, seen)
    }

    fn request(method: Method, uri: &str) -> Request<Body> {
        Request::builder().method(method).uri(uri).body(Body::from(b"{\"x\":1}".to_vec())).expect("request")
    }

    async fn send(answers: Vec<Answer>, method: Method, uri: &str) -> (Result<u16, String>, RequestCounts, usize) {
        let (mut service, stats, seen) = scripted(answers, 3);
        let result = service.call(request(method, uri)).await;
        let result = result.map(|r| r.status().as_u16()).map_err(|e| e.to_string());
        let received = seen.lock().expect("log").len();
        (result, stats.counts(), received)
    }

    fn reasons(counts: &RequestCounts) -> Vec<(&str, u64)> {
        counts.retried.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[tokio::test]
    async fn a_read_is_retried_through_5xx_429_and_resets_then_answered() {
        use Answer::*;
        let answers = vec![Status(503, ""), SlowDown, Io(std::io::ErrorKind::ConnectionReset), Status(200, "{}")];
        let (mut service, stats, seen) = scripted(answers, 4);
        let status = service.call(request(Method::GET, "/api/v1/pods")).await.map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200));
        assert_eq!(seen.lock().expect("log").len(), 4);
        let counts = stats.counts();
        assert_eq!((counts.sent, stats.sent(), counts.exhausted), (4, 4, 0));
        assert_eq!(reasons(&counts), [("HTTP 429", 1), ("HTTP 503", 1), ("connection reset", 1)]);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_last_answer_is_given_back_and_counted() {
        let (result, counts, received) = send(vec![Answer::Status(502, "bad gateway")], Method::GET, "/x").await;
        assert_eq!((result, received), (Ok(502), 3), "three attempts, then the server's own answer");
        assert_eq!((counts.sent, counts.retries(), counts.exhausted), (3, 2, 1));
        assert_eq!(
            counts.describe_retries().as_deref(),
            Some("2 API requests retried (HTTP 502: 2); 1 API requests still failed after their retries")
        );
    }

    #[tokio::test]
    async fn what_is_not_transient_is_answered_at_once() {
        for answer in
            [Answer::Status(404, ""), Answer::Status(422, ""), Answer::Status(500, "x: field not declared in schema")]
        {
            let (result, counts, received) = send(vec![answer, Answer::Status(200, "")], Method::GET, "/x").await;
            assert!(result.is_ok_and(|s| s != 200) && received == 1 && counts.retries() == 0, "{counts:?}");
        }
        let (result, _, received) =
            send(vec![Answer::Status(500, "etcd"), Answer::Status(200, "")], Method::GET, "/x").await;
        assert_eq!((result, received), (Ok(200), 2), "any other 500 is transient");
        let (result, _, received) =
            send(vec![Answer::Io(std::io::ErrorKind::PermissionDenied)], Method::PUT, "/x").await;
        assert!(result.is_err() && received == 3, "an I/O error is a connection error, retried");
    }

    #[tokio::test]
    async fn a_create_is_repeated_only_when_the_server_surely_did_not_see_it() {
        use Answer::*;
        let refused = Io(std::io::ErrorKind::ConnectionRefused);
        for (first, repeated) in [
            (Status(503, ""), false),
            (Io(std::io::ErrorKind::ConnectionReset), false),
            (SlowDown, true),
            (refused, true),
        ] {
            let (result, counts, received) = send(vec![first, Status(201, "")], Method::POST, "/x").await;
            assert_eq!(received, if repeated { 2 } else { 1 }, "{counts:?}");
            assert_eq!(result.as_ref().ok() == Some(&201), repeated);
            assert_eq!(counts.exhausted, 0, "a create not repeated is not a retry that ran out");
        }
    }

    #[tokio::test]
    async fn an_attempt_without_an_answer_times_out_but_a_watch_does_not() {
        let (result, counts, received) = send(vec![Answer::Late(200)], Method::GET, "/api/v1/pods").await;
        assert_eq!(received, 3);
        assert!(result.as_ref().is_err_and(|e| e.contains("no answer within 100ms")), "{result:?}");
        assert_eq!(reasons(&counts), [("timeout", 2)]);
        for stream in [
            "/api/v1/pods?watch=true",
            "/api/v1/pods?labelSelector=a&watch=1",
            "/api/v1/namespaces/n/pods/p/log?follow=true",
        ] {
            let (result, counts, received) = send(vec![Answer::Late(200)], Method::GET, stream).await;
            assert_eq!((result, received, counts.retries()), (Ok(200), 1, 0), "{stream}");
        }
        let (_, _, received) = send(vec![Answer::Late(200)], Method::GET, "/api/v1/pods?watch=false").await;
        assert_eq!(received, 3, "watch=false is a list, timed out");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let headers = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(v));
            h
        };
        assert_eq!(retry_after(&headers(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&http::HeaderMap::new()), None);
    }

    #[test]
    fn transport_errors_and_api_statuses_are_told_apart() {
        use std::io::{Error, ErrorKind};
        let io = |kind: ErrorKind| transient_error(&Error::from(kind)).map(|t| (t.reason, t.maybe_processed));
        assert_eq!(io(ErrorKind::BrokenPipe), Some(("connection reset".into(), true)));
        assert_eq!(io(ErrorKind::TimedOut), Some(("timeout".into(), true)));
        assert_eq!(io(ErrorKind::NotFound), Some(("connection error".into(), true)));
        // The cause is found down the chain.
        #[derive(Debug)]
        struct Wrapped(Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "wrapped")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let wrapped = Wrapped(Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(io_kind(&wrapped), Some(ErrorKind::ConnectionRefused));
        assert_eq!(transient_error(&wrapped).map(|t| t.maybe_processed), Some(false));

        let api = |code: u16| kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed());
        assert_eq!(transient(&api(503)).map(|t| t.reason), Some("HTTP 503".into()));
        assert!(transient(&api(409)).is_none());
        let service = kube::Error::Service(Box::new(Error::from(ErrorKind::ConnectionRefused)));
        assert_eq!(transient(&service).map(|t| t.reason), Some("connection refused".into()));
        assert!(transient(&kube::Error::LinesCodecMaxLineLengthExceeded).is_none());
    }

    #[tokio::test]
    async fn a_call_site_retries_transient_errors_within_the_policy() {
        let stats = RequestStats::default();
        let api = |code: u16| kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed());
        let flaky = |n: u32| async move { if n < 3 { Err(api(503)) } else { Ok(n) } };
        assert_eq!(at_call_site(&test_policy(3), &stats, "create", flaky).await.ok(), Some(3));
        assert_eq!((stats.counts().retries(), stats.counts().exhausted), (2, 0));
        assert!(at_call_site(&test_policy(2), &stats, "create", flaky).await.is_err());
        assert_eq!((stats.counts().retries(), stats.counts().exhausted), (3, 1));
        let conflict = |_n: u32| async move { Err::<u32, _>(api(409)) };
        assert!(at_call_site(&test_policy(3), &stats, "create", conflict).await.is_err());
        assert_eq!(stats.counts().retries(), 3, "a conflict is not retried");
    }

    #[test]
    fn retries_are_described_only_when_there_were_some() {
        let none = RequestCounts { sent: 9, ..Default::default() };
        assert_eq!(none.describe_retries(), None);
        let exhausted = RequestCounts { sent: 3, exhausted: 1, ..Default::default() };
        assert_eq!(exhausted.describe_retries().as_deref(), Some("1 API requests still failed after their retries"));
        let retried = RequestCounts {
            sent: 5,
            retried: [("HTTP 503".to_string(), 2), ("connection reset".to_string(), 1)].into(),
            exhausted: 0,
        };
        assert_eq!(
            retried.describe_retries().as_deref(),
            Some("3 API requests retried (HTTP 503: 2, connection reset: 1)")
        );
    }
}
