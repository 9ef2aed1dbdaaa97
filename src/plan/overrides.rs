//! What the suite's overrides say of one file, resolved once for every kind of case: for a
//! setting the last override that gives it wins; lists (log assertions, checks, a pipeline's
//! run parameters) add up in the order the overrides are written.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::Case;
use crate::{
    suite::assertions::LogAssertion,
    suite::checks::Check,
    suite::profile::Profile,
    suite::{Expect, Suite, gpu::GpuMode},
    util::duration::Dur,
};

/// A case's timeout when nothing gives one.
pub const DEFAULT_TIMEOUT: Dur = Dur(std::time::Duration::from_secs(600));

#[derive(Debug, Default)]
pub struct Resolved {
    pub timeout: Option<Dur>,
    pub retries: Option<u32>,
    pub tier: Option<String>,
    pub expect: Option<Expect>,
    pub skip: Option<String>,
    /// The profile an override forces on the file's objects.
    pub profile: Option<String>,
    pub logs: Vec<LogAssertion>,
    pub checks: Vec<Check>,
    pub metrics: Vec<crate::suite::metrics::MetricAssertion>,
    pub parameters: Map<String, Value>,
    pub gpu: Option<GpuMode>,
    pub judge: Option<crate::suite::notebooks::Judge>,
    /// The line of the last override that gives parameters, for errors about them.
    parameters_line: Option<u64>,
}

impl Resolved {
    pub fn of(suite: &Suite, rel: &str) -> Resolved {
        let mut r = Resolved::default();
        for o in suite.overrides.iter().filter(|o| o.pattern.is_match(rel)) {
            r.timeout = o.timeout.or(r.timeout);
            r.retries = o.retries.or(r.retries);
            r.tier = o.tier.clone().or(r.tier);
            r.expect = o.expect.or(r.expect);
            r.skip = o.skip.clone().unwrap_or(r.skip);
            r.profile = o.profile.clone().or(r.profile);
            r.gpu = o.gpu.or(r.gpu);
            r.judge = o.judge.or(r.judge);
            r.logs.extend(o.logs.iter().cloned());
            r.checks.extend(o.checks.iter().cloned());
            r.metrics.extend(o.metrics.iter().cloned());
            if !o.parameters.is_empty() {
                r.parameters_line = Some(o.line);
            }
            r.parameters.extend(o.parameters.clone());
        }
        r
    }

    /// Where the parameters come from (`kubevet.yaml:LINE`), for errors about them.
    pub fn parameters_at(&self, suite: &Suite) -> String {
        match self.parameters_line {
            Some(line) => format!("{}:{line}", suite.path.display()),
            None => format!("{} (no override gives parameters)", suite.path.display()),
        }
    }

    /// A case's timeout (the overrides', the profile's, the suite's, the framework's own)
    /// and retries (the overrides', the profile's, the suite's).
    pub fn timeout_and_retries(&self, suite: &Suite, profile: Option<&Profile>) -> (Dur, u32) {
        let timeout = self
            .timeout
            .or_else(|| profile.and_then(|p| p.timeout))
            .or(suite.defaults.timeout)
            .or_else(|| profile.map(|p| p.default_timeout))
            .unwrap_or(DEFAULT_TIMEOUT);
        let retries = self.retries.or_else(|| profile.and_then(|p| p.retries)).unwrap_or(suite.defaults.retries);
        (timeout, retries)
    }

    /// What a case does when it asks for an extended resource no node offers: the overrides',
    /// the profile's, the suite's `gpu.mode`.
    pub fn gpu(&self, suite: &Suite, profile: Option<&Profile>) -> GpuMode {
        self.gpu.or_else(|| profile.and_then(|p| p.gpu)).unwrap_or(suite.gpu.mode)
    }

    /// The case of file `rel` with what the overrides say and nothing of its kind yet: the
    /// builder of each kind adds its objects, steps or pipeline.
    pub fn case(&self, id: String, rel: String, path: PathBuf, (timeout, retries): (Dur, u32)) -> Case {
        Case {
            id,
            name: rel,
            path,
            objects: Vec::new(),
            workloads: Vec::new(),
            timeout,
            tier: self.tier.clone(),
            expect: self.expect.unwrap_or(Expect::Success),
            skip: self.skip.clone(),
            logs: Vec::new(),
            checks: Vec::new(),
            metrics: Vec::new(),
            scenario: None,
            pipeline: None,
            retries,
            problem: None,
            changed: None,
            gpu: GpuMode::default(),
            notebook: None,
        }
    }
}
