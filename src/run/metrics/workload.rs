//! A case's own workload's metrics (a training script that serves them): the pods its sources
//! select in the case's namespace are read every couple of seconds while the case waits for its
//! verdict, since a finished pod serves nothing. Every read is kept as evidence
//! (`metrics/<source>-<pod>-<n>.txt`). The snapshot after is each pod's last good read, its
//! samples labelled `namespace` and `pod` as Prometheus' Kubernetes discovery labels them; the
//! snapshot before is empty, since the process did not exist: every counter counts from zero.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{MetricsError, Scrape, Snapshot, refused_by_endpoint};
use crate::{
    cluster::Cluster,
    suite::metrics::{MetricAssertion, MetricSource, MetricsSettings, Target},
    util::exposition,
};

/// How often the workload's pods are read.
const READ_INTERVAL: Duration = Duration::from_secs(2);
/// How long one read may take: a pod that is not listening yet costs one round, not a budget
/// of retries.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// How many reads of a source are kept as files; later ones are read and counted, not kept.
const KEPT_READS: usize = 200;

/// What was read of one workload source.
#[derive(Default)]
struct SourceReads {
    /// Each pod's last good read.
    last: BTreeMap<String, Scrape>,
    reads: usize,
    kept: usize,
    pods_seen: BTreeSet<String>,
    /// The last read that failed, and whether the cluster (not the pod) failed it.
    last_failure: Option<(String, bool)>,
    /// The endpoint wants a token (the route and the status it answered): not read again.
    refused: Option<(String, u16)>,
}

/// The workload sources a case's assertions read, and what was read of them.
pub struct WorkloadReader<'a> {
    /// Each workload source the assertions read, with its pod selector.
    sources: Vec<(&'a MetricSource, &'a str)>,
    namespace: String,
    dir: PathBuf,
    reads: BTreeMap<String, SourceReads>,
}

impl<'a> WorkloadReader<'a> {
    pub fn new(
        assertions: &[MetricAssertion],
        settings: &'a MetricsSettings,
        namespace: &str,
        dir: &Path,
    ) -> WorkloadReader<'a> {
        // The settings hold each source once, by name.
        let sources = settings
            .sources
            .iter()
            .filter(|s| assertions.iter().any(|a| a.source == s.name))
            .filter_map(|s| match &s.target {
                Target::Workload(selector) => Some((s, selector.as_str())),
                _ => None,
            })
            .collect();
        WorkloadReader { sources, namespace: namespace.to_string(), dir: dir.to_path_buf(), reads: BTreeMap::new() }
    }

    /// `waiting` (the wait for the case's verdict), with the workload read until it ends.
    pub async fn while_running<T>(&mut self, cluster: &Cluster, waiting: impl Future<Output = T>) -> T {
        if self.sources.is_empty() {
            return waiting.await;
        }
        tokio::pin!(waiting);
        let mut tick = tokio::time::interval(READ_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ended = &mut waiting => return ended,
                _ = tick.tick() => {
                    // A round is cut off as soon as the verdict comes: what it read so far stays.
                    tokio::select! {
                        ended = &mut waiting => return ended,
                        () = self.round(cluster) => {}
                    }
                }
            }
        }
    }

    async fn round(&mut self, cluster: &Cluster) {
        let sources = self.sources.clone();
        for (source, selector) in sources {
            let reads = self.reads.entry(source.name.clone()).or_default();
            if reads.refused.is_some() {
                continue;
            }
            let pods = match cluster.list_pods(&self.namespace, Some(selector)).await {
                Ok(pods) => pods,
                Err(e) => {
                    reads.last_failure = Some((e.message, e.infrastructure));
                    continue;
                }
            };
            for pod in pods {
                let running = pod.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running"));
                let Some(name) = pod.metadata.name.filter(|_| running) else { continue };
                reads.pods_seen.insert(name.clone());
                let route = source.route_in(&self.namespace, "pods", &name);
                let read = cluster.proxied_text_within(&route, READ_TIMEOUT).await;
                let at = jiff::Timestamp::now();
                reads.reads = reads.reads.saturating_add(1);
                match read.map_err(|e| (refused_by_endpoint(&e), e)) {
                    Ok(text) => {
                        if reads.kept < KEPT_READS {
                            let kept = keep_read(&self.dir, &source.name, &name, reads.kept, &route, at, &text);
                            reads.kept = reads.kept.saturating_add(usize::from(kept.is_ok()));
                        }
                        match exposition::parse(&text) {
                            Ok(samples) => {
                                let samples = labelled(samples, &self.namespace, &name);
                                reads.last.insert(name, Scrape { route, at, text, samples });
                            }
                            Err(cause) => {
                                let e = MetricsError::NotExposition { source_name: source.name.clone(), route, cause };
                                reads.last_failure = Some((e.to_string(), false));
                            }
                        }
                    }
                    Err((Some(code), _)) => reads.refused = Some((route, code)),
                    Err((None, e)) => reads.last_failure = Some((e.message, e.infrastructure)),
                }
            }
        }
    }

    /// The snapshots before (empty) and after (each pod's last good read) of every workload
    /// source, with what the reads came to; an endpoint that wants a token, or a cluster that
    /// failed every read, is an error.
    pub fn finish(self) -> Result<(Snapshot, Snapshot, Vec<String>), MetricsError> {
        let mut before = Snapshot::new();
        let mut after = Snapshot::new();
        let mut notes = Vec::new();
        for &(source, selector) in &self.sources {
            let source_name = source.name.clone();
            let reads = self.reads.get(&source.name);
            if let Some((route, code)) = reads.and_then(|r| r.refused.clone()) {
                return Err(MetricsError::NeedsToken { source_name, route, code });
            }
            if let Some(r) = reads {
                if let (true, Some((cause, true))) = (r.last.is_empty(), &r.last_failure) {
                    return Err(MetricsError::Workload { source_name, cause: cause.clone() });
                }
                notes.push(summary(&source.name, r));
            } else {
                notes.push(format!("metrics source {source_name}: no pod of the workload ran while the case did"));
            }
            let at = jiff::Timestamp::now();
            let route = format!("pods matching {selector} in {}", self.namespace);
            before.insert(
                source.name.clone(),
                Scrape { route: route.clone(), at, text: String::new(), samples: Vec::new() },
            );
            let samples = reads.map(|r| r.last.values().flat_map(|s| s.samples.clone()).collect()).unwrap_or_default();
            after.insert(source.name.clone(), Scrape { route, at, text: String::new(), samples });
        }
        Ok((before, after, notes))
    }
}

/// What the reads of a source came to, for the case's notes.
fn summary(name: &str, reads: &SourceReads) -> String {
    let mut line = format!(
        "metrics source {name}: {} reads of {} pods, {} answered",
        reads.reads,
        reads.pods_seen.len(),
        reads.last.len()
    );
    if reads.kept < reads.reads {
        line.push_str(&format!("; the first {} kept as evidence", reads.kept));
    }
    if let (Some((why, _)), true) = (&reads.last_failure, reads.last.len() < reads.pods_seen.len().max(1)) {
        line.push_str(&format!("; last failure: {why}"));
    }
    line
}

/// The samples of one pod, labelled with its namespace and name unless they carry their own.
fn labelled(samples: Vec<exposition::Sample>, namespace: &str, pod: &str) -> Vec<exposition::Sample> {
    samples
        .into_iter()
        .map(|mut s| {
            s.labels.entry("namespace".into()).or_insert_with(|| namespace.to_string());
            s.labels.entry("pod".into()).or_insert_with(|| pod.to_string());
            s
        })
        .collect()
}

fn keep_read(
    dir: &Path,
    source: &str,
    pod: &str,
    index: usize,
    route: &str,
    at: jiff::Timestamp,
    text: &str,
) -> Result<(), std::io::Error> {
    let folder = dir.join("metrics");
    std::fs::create_dir_all(&folder)?;
    let header = format!("# kubevet: {route} at {at} via the API server's proxy\n");
    std::fs::write(folder.join(format!("{source}-{pod}-{:03}.txt", index.saturating_add(1))), format!("{header}{text}"))
}
