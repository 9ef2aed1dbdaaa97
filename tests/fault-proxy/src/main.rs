//! TEST HELPER: a fault-injecting HTTP proxy between kubevet and the test cluster's API
//! server (reached through `kubectl proxy`, which holds the credentials). Per a seed (one
//! sequence of decisions per class of request, so the n-th of a class always meets the same) it
//! answers a share of requests with 500/502/503 bursts or 429 with `Retry-After`, resets
//! connections without an answer, loses the answer of a request it did forward (the server
//! acted, the client sees a 500), adds latency, and cuts watches after a random delay.
//!
//! `fault-proxy --upstream http://127.0.0.1:PORT --seed N --rate 0.05 [--only CLASS,…]
//! [--fail-all CODE | --lose-first] [--log FILE]` prints `listening on 127.0.0.1:PORT` and serves until killed. Classes:
//! `discovery`, `apply`, `ns-create`, `ns-delete`, `ns-watch` (the namespace watch), `watch` (the others), `other`. Every injected fault is
//! appended to the log as `<fault> <class> <method> <path>`, so tests can count them.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, body::Frame, body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct Settings {
    upstream: String,
    rate: f64,
    /// Answer every request of the chosen classes with this status (a cluster that stays down).
    fail_all: Option<u16>,
    /// Forward each distinct request (method, path, body) of the chosen classes, and answer
    /// the first one 500: the server acted, the client never learns it; a repeat goes through.
    lose_first: bool,
    only: Vec<String>,
    log: Option<Mutex<std::fs::File>>,
}

/// xorshift64*: seeded, good enough to spread faults.
struct Dice(u64);

impl Dice {
    fn roll(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct State {
    seed: u64,
    /// One sequence per class of request, so that a class's n-th request meets the same fault
    /// whatever else the cluster serves (a new API group adds discovery requests) and however
    /// requests of different classes interleave.
    dice: std::collections::HashMap<String, Dice>,
    /// Requests whose answer was already lost once (`--lose-first`).
    lost: std::collections::HashSet<(String, String, u64)>,
    /// Requests of a class still to fail in the current 5xx burst.
    burst: Vec<(String, u32, u16)>,
}

fn class(req: &Request<Incoming>) -> &'static str {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if query.split('&').any(|p| p == "watch=true" || p == "watch=1") {
        // The namespace watch apart: the one kubevet waits on for a case's cleanup.
        return if segments == ["api", "v1", "namespaces"] { "ns-watch" } else { "watch" };
    }
    let method = req.method().as_str();
    let is_apply =
        req.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    match (method, segments.as_slice()) {
        ("GET", ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _]) => "discovery",
        ("PATCH", _) if is_apply => "apply",
        ("POST", ["api", "v1", "namespaces"]) => "ns-create",
        ("POST", _) => "create",
        ("DELETE", ["api", "v1", "namespaces", _]) => "ns-delete",
        _ => "other",
    }
}

fn full(status: u16, text: &str, retry_after: bool) -> Response<Body> {
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{text}","code":{status}}}"#
    );
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    if retry_after {
        response.headers_mut().insert("retry-after", "1".parse().expect("static header"));
    }
    response
}

enum Fault {
    None,
    Status(u16),
    TooMany,
    Reset,
    LoseAnswer,
    Latency(Duration),
    Cut(Duration),
    LoseFirst,
}

impl State {
    fn dice(&mut self, class: &str) -> &mut Dice {
        // FNV-1a of the class name, mixed into the seed.
        let hash =
            class.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let seed = self.seed ^ hash;
        self.dice.entry(class.to_string()).or_insert_with(|| Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }
}

fn choose(state: &Mutex<State>, settings: &Settings, class: &str) -> Fault {
    let Ok(mut s) = state.lock() else { return Fault::None };
    if let Some(i) = s.burst.iter().position(|(c, _, _)| c == class) {
        let (_, left, code) = &mut s.burst[i];
        let code = *code;
        *left -= 1;
        if *left == 0 {
            s.burst.remove(i);
        }
        return Fault::Status(code);
    }
    if !settings.only.is_empty() && !settings.only.iter().any(|c| c == class) {
        return Fault::None;
    }
    if let Some(code) = settings.fail_all {
        return Fault::Status(code);
    }
    if settings.lose_first {
        // Decided in `handle`, which sees the request's body.
        return Fault::LoseFirst;
    }
    if class == "watch" || class == "ns-watch" {
        // Watches are long: cut a share of them after a while; a few fail at the start.
        let r = s.dice(class).roll();
        return if r < settings.rate * 6.0 {
            Fault::Cut(Duration::from_millis(300 + (s.dice(class).roll() * 2700.0) as u64))
        } else if r < settings.rate * 7.0 {
            Fault::Status(503)
        } else {
            Fault::None
        };
    }
    let r = s.dice(class).roll();
    let rate = settings.rate;
    if r < rate * 0.4 {
        let code = [500, 502, 503][(s.dice(class).roll() * 3.0) as usize % 3];
        let length = 1 + (s.dice(class).roll() * 3.0) as u32;
        if length > 1 {
            s.burst.push((class.to_string(), length - 1, code));
        }
        Fault::Status(code)
    } else if r < rate * 0.6 {
        Fault::TooMany
    } else if r < rate * 0.75 {
        Fault::Reset
    } else if r < rate * 0.9 && class != "other" {
        Fault::LoseAnswer
    } else if r < rate * 2.0 {
        Fault::Latency(Duration::from_millis(20 + (s.dice(class).roll() * 280.0) as u64))
    } else {
        Fault::None
    }
}

fn record<B>(settings: &Settings, fault: &str, class: &str, req: &Request<B>) {
    if let Some(log) = &settings.log
        && let Ok(mut f) = log.lock()
    {
        let _ = writeln!(f, "{fault} {class} {} {}", req.method(), req.uri().path());
    }
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    upstream: &str,
    req: Request<Body>,
) -> Result<Response<Incoming>, String> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = format!("{upstream}{path}").parse().map_err(|e| format!("{e}"))?;
    parts.headers.remove("host");
    client.request(Request::from_parts(parts, body)).await.map_err(|e| format!("upstream: {e}"))
}

async fn handle(
    req: Request<Incoming>,
    settings: Arc<Settings>,
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Body>,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let class = class(&req);
    let mut fault = choose(&state, &settings, class);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if matches!(fault, Fault::LoseFirst) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let key = (parts.method.to_string(), parts.uri.to_string(), hasher.finish());
        let first = state.lock().map(|mut s| s.lost.insert(key)).unwrap_or(false);
        fault = if first { Fault::LoseAnswer } else { Fault::None };
    }
    let req = Request::from_parts(parts, Full::new(body).map_err(|never| match never {}).boxed());
    let name = match &fault {
        Fault::None => None,
        Fault::Status(c) => Some(format!("http-{c}")),
        Fault::TooMany => Some("http-429".into()),
        Fault::Reset => Some("reset".into()),
        Fault::LoseAnswer => Some("lost-answer".into()),
        Fault::Latency(_) => Some("latency".into()),
        Fault::Cut(_) => Some("cut".into()),
        Fault::LoseFirst => None,
    };
    if let Some(name) = &name {
        record(&settings, name, class, &req);
    }
    match fault {
        Fault::Status(code) => return Ok(full(code, "injected by the fault proxy", false)),
        Fault::TooMany => return Ok(full(429, "too many requests (injected)", true)),
        // An error from the service makes hyper close the connection with no answer.
        Fault::Reset => return Err("injected reset".into()),
        Fault::Latency(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let response = match forward(&client, &settings.upstream, req).await {
        Ok(r) => r,
        Err(e) => return Ok(full(502, &e, false)),
    };
    match fault {
        Fault::LoseAnswer => {
            // The server acted; the client is told it failed.
            let _ = response.into_body().collect().await;
            Ok(full(500, "answer lost (injected)", false))
        }
        Fault::Cut(after) => {
            let (parts, body) = response.into_parts();
            let stream = body.into_data_stream().take_until(tokio::time::sleep(after));
            let stream = stream.map(|chunk| chunk.map(Frame::data).map_err(|e| e.into()));
            Ok(Response::from_parts(parts, BodyExt::boxed(StreamBody::new(stream))))
        }
        _ => Ok(response.map(|b| b.map_err(|e| e.into()).boxed())),
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let upstream = arg(&args, "--upstream").ok_or("--upstream http://HOST:PORT is required")?;
    let seed: u64 = arg(&args, "--seed").unwrap_or_else(|| "1".into()).parse()?;
    let rate: f64 = arg(&args, "--rate").unwrap_or_else(|| "0.05".into()).parse()?;
    let only = arg(&args, "--only").map(|o| o.split(',').map(str::to_string).collect()).unwrap_or_default();
    let log = arg(&args, "--log").map(|p| std::fs::File::create(p).map(Mutex::new)).transpose()?;
    let fail_all = arg(&args, "--fail-all").map(|c| c.parse()).transpose()?;
    let lose_first = args.iter().any(|a| a == "--lose-first");
    let settings = Arc::new(Settings {
        upstream: upstream.trim_end_matches('/').to_string(),
        rate,
        fail_all,
        lose_first,
        only,
        log,
    });
    let state =
        Arc::new(Mutex::new(State { seed, dice: Default::default(), lost: Default::default(), burst: Vec::new() }));
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let (settings, state, client) = (settings.clone(), state.clone(), client.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, settings.clone(), state.clone(), client.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
