//! The steps that judge objects as they are: assert, error, wait (each on every snapshot a
//! watch of its target brings) and delete.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tracing::debug;

use super::{Judged, Scope, Verdict, failed, name_of, names};
use crate::{
    cluster::{Applied, Kind},
    plan::{Target, scenario::WaitFor},
    suite::FailureClass,
    util::{
        cel::{EvalError, brief},
        duration::Dur,
    },
};

impl Scope<'_> {
    async fn kind_of(&self, target: &Target) -> Result<Kind, Verdict> {
        self.cluster.kind(&target.api_version, &target.kind).await.map_err(|e| {
            if e.infrastructure { Verdict::Error(e.message) } else { Verdict::Failed(e.message, FailureClass::Example) }
        })
    }

    fn describe(&self, target: &Target) -> String {
        let mut what = target.kind.clone();
        if let Some(name) = &target.name {
            what.push_str(&format!(" {}", self.substitute(name)));
        }
        if let Some(selector) = &target.selector {
            what.push_str(&format!(" ({})", self.substitute(selector)));
        }
        what
    }

    fn judge(&self, target: &Target, objects: &[Value]) -> Judged {
        let what = self.describe(target);
        if objects.is_empty() {
            return Judged::NotYet(format!("no {what}"));
        }
        if let Some(expected) = &target.matches {
            let expected = self.substitute_value(expected);
            let mismatches: Vec<String> = objects
                .iter()
                .filter_map(|o| partial_match(o, &expected, "").err().map(|m| format!("{}: {m}", name_of(o))))
                .collect();
            if mismatches.len() == objects.len() {
                return Judged::NotYet(format!("{what} does not match: {}", mismatches.join("; ")));
            }
        }
        if let Some(expression) = &target.cel {
            let names = self.names();
            let list = Value::Array(objects.to_vec());
            let mut variables: Vec<(&str, &Value)> = names.iter().map(|(k, v)| (*k, v)).collect();
            variables.push(("objects", &list));
            if target.name.is_some() {
                variables.push(("object", &objects[0]));
            }
            return match expression.holds(&variables) {
                Ok(true) => Judged::Holds(format!("exists and `{}` holds", expression.source)),
                Ok(false) => {
                    Judged::NotYet(format!("`{}` is false; saw {}", expression.source, expression.observed(&variables)))
                }
                Err(e @ EvalError::Unsupported(_)) => Judged::Broken(format!("`{}` {e}", expression.source)),
                Err(e) => Judged::NotYet(format!("`{}`: {e}", expression.source)),
            };
        }
        Judged::Holds(if target.matches.is_some() { "exists and matches".into() } else { "exists".into() })
    }

    /// Watches the target until `until` says it is done, or the timeout. Each snapshot of the
    /// watch is judged as it comes.
    pub(super) async fn watch(
        &self,
        target: &Target,
        timeout: Duration,
        mut until: impl FnMut(&[Value]) -> Option<Verdict>,
        at_timeout: impl FnOnce() -> Verdict,
    ) -> Verdict {
        let kind = match self.kind_of(target).await {
            Ok(kind) => kind,
            Err(verdict) => return verdict,
        };
        let name = target.name.as_ref().map(|n| self.substitute(n));
        let selector = target.selector.as_ref().map(|s| self.substitute(s));
        let mut snapshots =
            self.cluster.watch_matching(&kind, self.namespace, name.as_deref(), selector.as_deref()).boxed();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut cancel = self.cancel.clone();
        loop {
            tokio::select! {
                snapshot = snapshots.next() => match snapshot {
                    Some(Ok(objects)) => if let Some(verdict) = until(&objects) { return verdict },
                    Some(Err(e)) => debug!(error = %e, "a step's watch failed; it starts again"),
                    None => return Verdict::Error(format!("the watch of {} ended", self.describe(target))),
                },
                _ = &mut deadline => return at_timeout(),
                _ = cancel.wait_for(|c| *c) => return Verdict::Error("interrupted".into()),
            }
        }
    }

    /// Until the target is as it must be, or the timeout (then: what it saw last).
    pub async fn assert(&self, target: &Target, timeout: Duration) -> Verdict {
        let last = std::sync::Mutex::new(String::from("the watch gave nothing"));
        self.watch(
            target,
            timeout,
            |objects| match self.judge(target, objects) {
                Judged::Holds(why) => Some(Verdict::Passed(Some(format!("{} {why}", self.describe(target))))),
                Judged::Broken(why) => Some(Verdict::Error(why)),
                Judged::NotYet(why) => {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = why;
                    None
                }
            },
            || failed(format!("not true within {}: {}", Dur(timeout), last.lock().unwrap_or_else(|e| e.into_inner()))),
        )
        .await
    }

    /// The target must not exist or not match: at once, or for as long as `hold`.
    pub async fn error(&self, target: &Target, hold: Duration) -> Verdict {
        let once = hold.is_zero();
        // Checked once: the first snapshot (the watch's initial listing) decides.
        let limit = if once { Duration::from_secs(30) } else { hold };
        self.watch(
            target,
            limit,
            |objects| match self.judge(target, objects) {
                Judged::Holds(why) => Some(failed(format!("{} {why}", self.describe(target)))),
                Judged::Broken(why) => Some(Verdict::Error(why)),
                Judged::NotYet(_) if once => Some(Verdict::Passed(None)),
                Judged::NotYet(_) => None,
            },
            || match once {
                true => Verdict::Error(format!("no answer from the watch of {} in 30s", self.describe(target))),
                false => Verdict::Passed(Some(format!("held for {}", Dur(hold)))),
            },
        )
        .await
    }

    /// Until every object of the target is gone, or has a condition True.
    pub async fn wait(&self, target: &Target, until: &WaitFor, timeout: Duration) -> Verdict {
        let last = std::sync::Mutex::new(String::from("the watch gave nothing"));
        let what = self.describe(target);
        self.watch(
            target,
            timeout,
            |objects| {
                let done = match until {
                    WaitFor::Deleted => objects.is_empty(),
                    WaitFor::Condition(c) => !objects.is_empty() && objects.iter().all(|o| condition_true(o, c)),
                };
                *last.lock().unwrap_or_else(|e| e.into_inner()) = match until {
                    WaitFor::Deleted => format!("still there: {}", names(objects)),
                    WaitFor::Condition(c) if objects.is_empty() => format!("no {what} (waiting for {c})"),
                    WaitFor::Condition(c) => format!("{c} is not True on {}", names(objects)),
                };
                done.then_some(Verdict::Passed(None))
            },
            || failed(format!("not within {}: {}", Dur(timeout), last.lock().unwrap_or_else(|e| e.into_inner()))),
        )
        .await
    }

    /// Deletes every object of the target (background propagation); a later `wait` can wait
    /// for them to go.
    pub async fn delete(&self, target: &Target) -> Verdict {
        let kind = match self.kind_of(target).await {
            Ok(kind) => kind,
            Err(verdict) => return verdict,
        };
        let name = target.name.as_ref().map(|n| self.substitute(n));
        let selector = target.selector.as_ref().map(|s| self.substitute(s));
        let objects =
            match self.cluster.list_matching(&kind, self.namespace, name.as_deref(), selector.as_deref()).await {
                Ok(objects) => objects,
                Err(e) => return Verdict::Error(e.message),
            };
        if objects.is_empty() {
            return failed(format!("nothing to delete: no {}", self.describe(target)));
        }
        for object in &objects {
            let applied = Applied {
                kind: kind.clone(),
                namespace: kind.namespaced.then(|| self.namespace.to_string()),
                name: name_of(object).to_string(),
            };
            if let Err(e) = self.cluster.delete(&applied).await {
                return Verdict::Error(e.message);
            }
        }
        Verdict::Passed(Some(format!("deleted {}", names(&objects))))
    }
}

/// Every field written in `expected` is in `actual` with that value; a list written must have
/// each of its items matched by some item of the actual list.
pub fn partial_match(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().try_for_each(|(key, want)| match a.get(key) {
            Some(got) => partial_match(got, want, &format!("{path}.{key}")),
            None if want.is_null() => Ok(()),
            None => Err(format!("{}: absent, want {}", path_or_root(&format!("{path}.{key}")), brief(want))),
        }),
        (Value::Array(a), Value::Array(e)) => e.iter().enumerate().try_for_each(|(i, want)| {
            if a.iter().any(|got| partial_match(got, want, "").is_ok()) {
                Ok(())
            } else {
                Err(format!(
                    "{}: no item matches {} (saw {})",
                    path_or_root(&format!("{path}[{i}]")),
                    brief(want),
                    brief(actual)
                ))
            }
        }),
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => Ok(()),
        (a, e) if a == e => Ok(()),
        (Value::String(a), Value::Number(e)) | (Value::Number(e), Value::String(a)) if *a == e.to_string() => Ok(()),
        (a, e) => Err(format!("{}: {} , want {}", path_or_root(path), brief(a), brief(e)).replace(" ,", ",")),
    }
}

fn path_or_root(path: &str) -> &str {
    let path = path.trim_start_matches('.');
    if path.is_empty() { "(root)" } else { path }
}

fn condition_true(object: &Value, condition: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(condition)) && c["status"] == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_objects_match_fields_written_and_list_items_anywhere() {
        let job = json!({"metadata": {"name": "pt", "labels": {"a": "1"}}, "status": {"conditions": [
            {"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}], "replicas": 2}});
        assert_eq!(
            partial_match(&job, &json!({"status": {"conditions": [{"type": "Running", "status": "True"}]}}), ""),
            Ok(())
        );
        assert_eq!(
            partial_match(&job, &json!({"status": {"replicas": 2.0}, "metadata": {"labels": {"a": 1}}}), ""),
            Ok(())
        );
        let err =
            partial_match(&job, &json!({"status": {"conditions": [{"type": "Succeeded"}]}}), "").expect_err("no item");
        assert!(err.starts_with("status.conditions[0]: no item matches {\"type\":\"Succeeded\"}"), "{err}");
        let err = partial_match(&job, &json!({"metadata": {"name": "tf"}}), "").expect_err("differs");
        assert_eq!(err, "metadata.name: \"pt\", want \"tf\"");
        assert_eq!(
            partial_match(&job, &json!({"spec": {"x": 1}}), "").expect_err("absent"),
            "spec: absent, want {\"x\":1}"
        );
    }
}
