//! A case's metric assertions: each source its assertions read is scraped through the API
//! server's proxy before the case's objects are applied and again after its verdict (until
//! two scrapes in a row agree on what the assertions read), every scrape kept as evidence
//! (`metrics/<source>-before.txt`, its route and time first). An assertion that does not name
//! the case's namespace reads series other cases move too (controller-runtime's carry no
//! namespace), so it is judged only when no other case ran at the same time, and is
//! inconclusive otherwise, naming them: never guessed.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

mod workload;
pub use workload::WorkloadReader;

use crate::{
    cluster::{ApiError, Cluster},
    outcome::{MetricCheck, StepOutcome, StepReport},
    suite::metrics::{MetricAssertion, MetricSource, MetricsSettings, Target, When},
    util::{
        exposition::{self, Sample},
        promql::{Assertion, Snapshots},
    },
};

/// How often, and how many times, the after-snapshot is read until it is stable.
const SETTLE_INTERVAL: Duration = Duration::from_secs(1);
const SETTLE_TRIES: u32 = 10;
/// How many samples of each snapshot a check's report keeps.
const SHOWN_SAMPLES: usize = 20;

/// A source that could not be read: the case is an infrastructure error naming the route.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics source {source_name} could not be read at {route}: {cause}")]
    Unreadable {
        source_name: String,
        route: String,
        #[source]
        cause: Box<ApiError>,
    },
    #[error(
        "metrics source {source_name} at {route} answered {code}: the endpoint wants a bearer token, which the API \
         server's proxy does not pass on, and kubevet does not mint one (TokenRequest) and port-forward to the pod; \
         turn the endpoint's authentication off on the test cluster (Kubeflow Trainer v2: metrics.auth.enabled: \
         false) or name a port that serves metrics without it"
    )]
    NeedsToken { source_name: String, route: String, code: u16 },
    #[error("metrics source {source_name} at {route} is not Prometheus' text format: {cause}")]
    NotExposition {
        source_name: String,
        route: String,
        #[source]
        cause: exposition::ParseError,
    },
    #[error("metrics source {source_name}: no running pod in {namespace} matches {selector}")]
    NoPod { source_name: String, namespace: String, selector: String },
    #[error("metrics source {source_name}: {cause}")]
    Pods {
        source_name: String,
        #[source]
        cause: Box<ApiError>,
    },
    #[error("metrics source {source_name}: the cluster failed every read of the workload's pods: {cause}")]
    Workload { source_name: String, cause: String },
    #[error("no metrics source {0:?}")]
    Unknown(String),
}

/// One read of a source: where, when, what it said.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub route: String,
    pub at: jiff::Timestamp,
    pub text: String,
    pub samples: Vec<Sample>,
}

/// The scrapes of each source a case's assertions read.
pub type Snapshot = BTreeMap<String, Scrape>;

/// Reads `source` once, through the API server's service or pod proxy (and the request layer).
pub async fn scrape(cluster: &Cluster, source: &MetricSource) -> Result<Scrape, MetricsError> {
    let pod = match &source.target {
        Target::Service(_) => None,
        // A workload source is read by `WorkloadReader`, in the case's namespace.
        Target::Pods(selector) | Target::Workload(selector) => Some(running_pod(cluster, source, selector).await?),
    };
    let route = source.route(pod.as_deref());
    let source_name = source.name.clone();
    let text = match cluster.proxied_text(&route).await {
        Ok(text) => text,
        Err(cause) => {
            return Err(match refused_by_endpoint(&cause) {
                Some(code) => MetricsError::NeedsToken { source_name, route, code },
                None => MetricsError::Unreadable { source_name, route, cause: Box::new(cause) },
            });
        }
    };
    let samples = match exposition::parse(&text) {
        Ok(samples) => samples,
        Err(cause) => return Err(MetricsError::NotExposition { source_name, route, cause }),
    };
    Ok(Scrape { route, at: jiff::Timestamp::now(), text, samples })
}

/// A 401 or 403 the endpoint behind the proxy answered: the API server's own refusal of the
/// proxy request (RBAC on `services/proxy`) names the object it refused in its details.
fn refused_by_endpoint(cause: &ApiError) -> Option<u16> {
    let names_the_proxied_object = cause.details.as_ref().is_some_and(|d| !d.kind.is_empty());
    cause.code.filter(|code| matches!(code, 401 | 403) && !names_the_proxied_object)
}

async fn running_pod(cluster: &Cluster, source: &MetricSource, selector: &str) -> Result<String, MetricsError> {
    let source_name = source.name.clone();
    let pods = cluster
        .list_pods(&source.namespace, Some(selector))
        .await
        .map_err(|cause| MetricsError::Pods { source_name: source_name.clone(), cause: Box::new(cause) })?;
    pods.into_iter()
        .find(|p| p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some()))
        .and_then(|p| p.metadata.name)
        .ok_or_else(|| MetricsError::NoPod {
            source_name,
            namespace: source.namespace.clone(),
            selector: selector.into(),
        })
}

/// The operators' sources the assertions read, in their settings (not the workload's, which
/// `WorkloadReader` reads while it runs).
fn sources<'a>(
    assertions: &[MetricAssertion],
    settings: &'a MetricsSettings,
) -> Result<Vec<&'a MetricSource>, MetricsError> {
    let mut names: Vec<&str> = assertions.iter().map(|a| a.source.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let known: Result<Vec<&MetricSource>, MetricsError> =
        names.into_iter().map(|n| settings.source(n).ok_or_else(|| MetricsError::Unknown(n.to_string()))).collect();
    Ok(known?.into_iter().filter(|s| !s.is_workload()).collect())
}

/// The snapshot before the case.
pub async fn before(
    cluster: &Cluster,
    assertions: &[MetricAssertion],
    settings: &MetricsSettings,
) -> Result<Snapshot, MetricsError> {
    let mut snapshot = Snapshot::new();
    for source in sources(assertions, settings)? {
        snapshot.insert(source.name.clone(), scrape(cluster, source).await?);
    }
    Ok(snapshot)
}

/// The snapshot after the verdict: each source re-read until two reads in a row agree on the
/// metrics the assertions read (at most 10 reads, a second apart; the last is taken, and said,
/// when they never agree).
pub async fn after(
    cluster: &Cluster,
    assertions: &[MetricAssertion],
    settings: &MetricsSettings,
) -> Result<(Snapshot, Vec<String>), MetricsError> {
    let mut snapshot = Snapshot::new();
    let mut notes = Vec::new();
    for source in sources(assertions, settings)? {
        let read: Vec<&MetricAssertion> = assertions.iter().filter(|a| a.source == source.name).collect();
        let names: std::collections::BTreeSet<String> = read.iter().flat_map(|a| a.expect.metric_names()).collect();
        let relevant =
            |s: &Scrape| -> Vec<Sample> { s.samples.iter().filter(|x| names.contains(&x.name)).cloned().collect() };
        let mut last = scrape(cluster, source).await?;
        let mut settled = false;
        for _ in 1..SETTLE_TRIES {
            tokio::time::sleep(SETTLE_INTERVAL).await;
            let next = scrape(cluster, source).await?;
            let same = relevant(&next) == relevant(&last);
            last = next;
            if same {
                settled = true;
                break;
            }
        }
        if !settled {
            notes.push(format!("metrics source {} still changing after {SETTLE_TRIES} reads", source.name));
        }
        snapshot.insert(source.name.clone(), last);
    }
    Ok((snapshot, notes))
}

/// Keeps each scrape as evidence: `metrics/<source>-<when>.txt`, its route and time first.
pub fn keep(dir: &Path, when: &str, snapshot: &Snapshot) -> Result<(), std::io::Error> {
    let folder = dir.join("metrics");
    std::fs::create_dir_all(&folder)?;
    for (source, scrape) in snapshot {
        let header = format!("# kubevet: {} at {} via the API server's proxy\n", scrape.route, scrape.at);
        std::fs::write(folder.join(format!("{source}-{when}.txt")), format!("{header}{}", scrape.text))?;
    }
    Ok(())
}

/// How a case's workload ended, for assertions that hold only one way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ended {
    Succeeded,
    Failed,
    Neither,
}

impl Ended {
    pub fn of(ending: &crate::cluster::wait::Ending) -> Ended {
        use crate::cluster::wait::Ending;
        match ending {
            Ending::Succeeded(_) => Ended::Succeeded,
            Ending::Failed(_) => Ended::Failed,
            _ => Ended::Neither,
        }
    }
}

/// Each assertion judged over the two snapshots; `overlapping`: the cases that ran while this
/// one did.
pub fn judge(
    assertions: &[MetricAssertion],
    (before, after): (&Snapshot, &Snapshot),
    (namespace, case): (&str, &str),
    ended: Ended,
    overlapping: &[String],
) -> Vec<MetricCheck> {
    assertions
        .iter()
        .map(|a| {
            let expect = a.expect.text.replace("$NAMESPACE", namespace).replace("$CASE", case);
            let mut check = MetricCheck {
                name: a.name.clone(),
                source: a.source.clone(),
                expect: expect.clone(),
                verdict: String::new(),
                result: Vec::new(),
                before: Vec::new(),
                after: Vec::new(),
                notes: Vec::new(),
                overlapping: Vec::new(),
            };
            let wanted = match a.when {
                When::Always => true,
                When::Succeeded => ended == Ended::Succeeded,
                When::Failed => ended == Ended::Failed,
            };
            let (Some(b), Some(f)) = (before.get(&a.source), after.get(&a.source)) else {
                check.verdict = "error".into();
                check.notes.push(format!("no snapshot of {}", a.source));
                return check;
            };
            let parsed = match Assertion::parse(&expect) {
                Ok(parsed) => parsed,
                Err(e) => {
                    check.verdict = "error".into();
                    check.notes.push(e.message);
                    return check;
                }
            };
            let names = parsed.metric_names();
            let shown = |samples: &[Sample]| -> Vec<(String, f64)> {
                samples
                    .iter()
                    .filter(|s| names.contains(&s.name) && (!a.namespaced || s.labels.values().any(|v| v == namespace)))
                    .take(SHOWN_SAMPLES)
                    .map(|s| (series(s), s.value))
                    .collect()
            };
            check.before = shown(&b.samples);
            check.after = shown(&f.samples);
            if !wanted {
                check.verdict = "not judged".into();
                return check;
            }
            if !a.namespaced && !overlapping.is_empty() {
                check.verdict = "inconclusive".into();
                check.overlapping = overlapping.to_vec();
                return check;
            }
            match parsed.evaluate(&Snapshots { before: &b.samples, after: &f.samples }) {
                Ok(evaluated) => {
                    check.verdict = verdict(&evaluated, &parsed).into();
                    check.result = evaluated.result;
                    check.notes = evaluated.notes;
                    if check.verdict == "inconclusive" {
                        check.notes.push(LOST_COUNTS.into());
                    }
                }
                Err(e) => {
                    check.verdict = "error".into();
                    check.notes.push(e.to_string());
                }
            }
            check
        })
        .collect()
}

const LOST_COUNTS: &str = "what the endpoint counted before it restarted (or before a counter fell) is lost, \
     and these counts prove nothing either way for this assertion";

/// Held or not; when some increase is only a lower bound (the endpoint restarted during the
/// case), only an assertion that a lower bound proves (`increase(…) >= n`) and that held is
/// judged; anything else is inconclusive, never blamed on the example nor passed on a guess.
fn verdict(evaluated: &crate::util::promql::Evaluated, parsed: &Assertion) -> &'static str {
    match (evaluated.held, evaluated.lower_bounds) {
        (held, false) => {
            if held {
                "passed"
            } else {
                "failed"
            }
        }
        (true, true) if parsed.holds_on_lower_bounds() => "passed",
        (_, true) => "inconclusive",
    }
}

fn series(s: &Sample) -> String {
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", s.name, labels.join(","))
}

/// A scenario's metrics step's verdict over its checks: the first that did not hold fails it
/// (class `test`), one that could not be evaluated makes it an error; inconclusive and not
/// judged ones fail nothing.
pub fn step_verdict(checks: &[MetricCheck]) -> crate::run::steps::Verdict {
    use crate::run::steps::Verdict;
    let detail = |c: &MetricCheck, what: &str| {
        format!("metric assertion {:?} {what}: {}", c.name, step(c).detail.unwrap_or_default())
    };
    if let Some(c) = checks.iter().find(|c| c.verdict == "error") {
        return Verdict::Error(detail(c, "could not be evaluated"));
    }
    if let Some(c) = checks.iter().find(|c| c.verdict == "failed") {
        return Verdict::Failed(detail(c, "did not hold"), crate::suite::FailureClass::Test);
    }
    let each: Vec<String> = checks.iter().map(|c| format!("{} {}", c.name, c.verdict)).collect();
    Verdict::Passed(Some(each.join("; ")))
}

/// A check as a report line among the case's steps.
pub fn step(check: &MetricCheck) -> StepReport {
    let outcome = match check.verdict.as_str() {
        "passed" => StepOutcome::Passed,
        "failed" => StepOutcome::Failed,
        "error" => StepOutcome::Error,
        _ => StepOutcome::Skipped,
    };
    let mut detail = format!("{} → {}", check.expect, shown(&check.result));
    if check.result.is_empty() && !check.after.is_empty() {
        // Say what was read, so that a filter that let nothing through can be told from no data.
        detail.push_str(&format!(" (read: {})", shown(&check.after)));
    }
    if !check.overlapping.is_empty() {
        detail = format!(
            "inconclusive: it reads series of no namespace and {} ran at the same time",
            check.overlapping.join(", ")
        );
    } else if check.verdict == "not judged" {
        detail = "not judged: the workload did not end as its `when` says".into();
    }
    for note in &check.notes {
        detail.push_str("; ");
        detail.push_str(note);
    }
    StepReport {
        section: "metrics".into(),
        name: check.name.clone(),
        action: "promql".into(),
        outcome,
        seconds: 0.0,
        detail: Some(detail),
    }
}

fn shown(result: &[(String, f64)]) -> String {
    if result.is_empty() {
        return "no series".into();
    }
    let parts: Vec<String> = result.iter().take(5).map(|(s, v)| format!("{s} {v}")).collect();
    parts.join(", ")
}

/// A case's span from its first metrics snapshot to its last (none while it runs).
type Window = (String, Instant, Option<Instant>);

/// When each case of the run read its metrics.
#[derive(Clone, Default)]
pub struct CaseWindows {
    windows: Arc<Mutex<Vec<Window>>>,
}

impl CaseWindows {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Window>> {
        // Plain data that no panic leaves half-written.
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A case started reading (its before-snapshot): its index among the windows.
    pub fn open(&self, case: &str) -> usize {
        let mut windows = self.lock();
        windows.push((case.to_string(), Instant::now(), None));
        windows.len().saturating_sub(1)
    }

    /// The case of window `index` took its after-snapshot: the other cases whose windows
    /// overlapped its own (still open, or closed after it opened).
    pub fn close(&self, index: usize) -> Vec<String> {
        let overlapping = self.overlapping(index);
        if let Some((_, _, end)) = self.lock().get_mut(index) {
            *end = Some(Instant::now());
        }
        overlapping
    }

    /// The other cases whose windows overlapped window `index` up to now, which stays open (a
    /// scenario's metrics step, with more to come).
    pub fn overlapping(&self, index: usize) -> Vec<String> {
        let windows = self.lock();
        let now = Instant::now();
        let Some((name, start, _)) = windows.get(index) else { return Vec::new() };
        let (name, start) = (name.clone(), *start);
        let mut others: Vec<String> = windows
            .iter()
            .enumerate()
            .filter(|(i, (other, opened, closed))| {
                *i != index && *other != name && *opened < now && closed.is_none_or(|c| c > start)
            })
            .map(|(_, (other, _, _))| other.clone())
            .collect();
        others.sort();
        others.dedup();
        others
    }
}
