//! A CRD's own validation rules (`x-kubernetes-validations`), evaluated offline with kubevet's
//! CEL engine, each where the schema declares it: `self` is the value at that node, for every
//! item of a list and every value of a map. As on the API server at create: transition rules
//! (those reading `oldSelf`) do not apply, a node the object does not set is not checked.
//! What kubevet cannot evaluate (a function it lacks, a field Kubernetes might default) is a
//! note, never a pass or an error made up.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::finding::{Finding, Severity};
use crate::util::cel::{EvalError, Expression};

/// One rule as the CRD writes it, compiled when kubevet can evaluate it.
#[derive(Debug)]
struct Rule {
    source: String,
    message: Option<String>,
    message_expression: Option<Expression>,
    /// Where a violation is shown, below the node: the rule's `fieldPath`, or else the one field
    /// of `self` the rule reads (`self.metadata.name` → `/metadata/name`).
    field: Option<String>,
    compiled: Result<Expression, String>,
}

/// The one field of `self` a rule reads, as a JSON pointer below its node.
fn field_of(rule: &Value, source: &str) -> Option<String> {
    if let Some(path) = rule["fieldPath"].as_str() {
        return Some(path.replace('.', "/"));
    }
    let mut paths = source
        .match_indices("self.")
        .map(|(i, _)| {
            source[i + 5..].split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).next().unwrap_or("")
        })
        .map(|p| p.trim_end_matches('.'))
        .filter(|p| !p.is_empty());
    let first = paths.next()?;
    // Method calls (`self.name.matches(`) end in a name that is not a field: keep the fields.
    let fields: Vec<&str> = first.split('.').collect();
    let fields = if source.contains(&format!("self.{first}(")) { &fields[..fields.len() - 1] } else { &fields[..] };
    paths.all(|p| p.starts_with(first) || first.starts_with(p)).then(|| format!("/{}", fields.join("/")))
}

/// The rules of a schema, as a tree that follows the object: only branches that hold a rule.
#[derive(Debug, Default)]
pub struct RuleTree {
    rules: Vec<Rule>,
    properties: BTreeMap<String, RuleTree>,
    items: Option<Box<RuleTree>>,
    values: Option<Box<RuleTree>>,
}

/// How many of a schema's rules kubevet evaluates.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    pub total: usize,
    pub evaluated: usize,
    /// Rules on updates only (`oldSelf`): they never apply to an object being created.
    pub transition: usize,
    /// Rules using a function kubevet does not have, or that do not compile.
    pub unsupported: usize,
}

impl RuleCounts {
    pub fn add(&mut self, other: RuleCounts) {
        self.total += other.total;
        self.evaluated += other.evaluated;
        self.transition += other.transition;
        self.unsupported += other.unsupported;
    }
}

/// The rules of every version of a CRD object.
pub fn count_in_crd(crd: &Value) -> RuleCounts {
    let mut all = RuleCounts::default();
    for version in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
        all.add(RuleTree::of(version.pointer("/schema/openAPIV3Schema").unwrap_or(&Value::Null)).1);
    }
    all
}

impl RuleTree {
    /// The rules of an openAPIV3Schema (before it is rewritten into JSON Schema).
    pub fn of(schema: &Value) -> (RuleTree, RuleCounts) {
        let mut counts = RuleCounts::default();
        let mut tree = RuleTree::default();
        for rule in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
            let source = rule["rule"].as_str().unwrap_or_default().to_string();
            counts.total += 1;
            let compiled = Expression::compile(&source).map_err(|e| e.to_string());
            match &compiled {
                Ok(e) if e.uses("oldSelf") => {
                    counts.transition += 1;
                    continue;
                }
                Ok(_) => counts.evaluated += 1,
                Err(_) => counts.unsupported += 1,
            }
            tree.rules.push(Rule {
                field: field_of(rule, &source),
                source,
                message: rule["message"].as_str().map(str::to_string),
                message_expression: rule["messageExpression"].as_str().and_then(|m| Expression::compile(m).ok()),
                compiled,
            });
        }
        let mut child = |schema: &Value| -> Option<RuleTree> {
            let (sub, sub_counts) = RuleTree::of(schema);
            counts.add(sub_counts);
            (!sub.is_empty()).then_some(sub)
        };
        for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            if let Some(sub) = child(property) {
                tree.properties.insert(name.clone(), sub);
            }
        }
        tree.items = schema.get("items").and_then(&mut child).map(Box::new);
        tree.values = schema.get("additionalProperties").filter(|a| a.is_object()).and_then(&mut child).map(Box::new);
        (tree, counts)
    }

    fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.properties.is_empty() && self.items.is_none() && self.values.is_none()
    }

    /// The findings of one object: a violated rule is an error at the node that declares it.
    pub fn check(&self, object: &Value, origin: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.walk(object, "", origin, &mut out);
        out
    }

    fn walk(&self, value: &Value, pointer: &str, origin: &str, out: &mut Vec<Finding>) {
        if value.is_null() {
            return;
        }
        for rule in &self.rules {
            let compiled = match &rule.compiled {
                Ok(e) => e,
                Err(why) => {
                    out.push(Finding::new(
                        "not-checked",
                        Severity::Note,
                        pointer,
                        format!(
                            "CRD rule `{}` not evaluated: {why} (against {origin}); the API server will check it",
                            rule.source
                        ),
                    ));
                    continue;
                }
            };
            let variables = [("self", value)];
            match compiled.holds(&variables) {
                Ok(true) => {}
                Ok(false) => {
                    let message = rule
                        .message_expression
                        .as_ref()
                        .and_then(|m| m.evaluate(&variables).ok())
                        .and_then(|v| v.as_str().map(str::to_string))
                        .or_else(|| rule.message.clone())
                        .unwrap_or_else(|| format!("failed rule: {}", rule.source));
                    let shown = rule
                        .field
                        .as_ref()
                        .map(|f| format!("{pointer}{f}"))
                        .filter(|p| !p.ends_with('/') && value.pointer(&p[pointer.len()..]).is_some());
                    out.push(Finding::new(
                        "crd-rule",
                        Severity::Error,
                        shown.as_deref().unwrap_or(pointer),
                        format!("{}: {message} (rule `{}`, against {origin})", at(pointer), rule.source),
                    ));
                }
                Err(e @ (EvalError::Unsupported(_) | EvalError::NoSuchKey(_))) => out.push(Finding::new(
                    "not-checked",
                    Severity::Note,
                    pointer,
                    format!(
                        "CRD rule `{}` at {} not evaluated: {e}{}",
                        rule.source,
                        at(pointer),
                        if matches!(e, EvalError::NoSuchKey(_)) { " (the API server may default it)" } else { "" }
                    ),
                )),
                Err(e) => out.push(Finding::new(
                    "crd-rule",
                    Severity::Error,
                    pointer,
                    format!(
                        "{}: the rule `{}` cannot be evaluated on this value: {e} (against {origin})",
                        at(pointer),
                        rule.source
                    ),
                )),
            }
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let tree = self.properties.get(key).or(self.values.as_deref());
                    if let Some(tree) = tree {
                        tree.walk(
                            child,
                            &format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")),
                            origin,
                            out,
                        );
                    }
                }
            }
            Value::Array(items) => {
                if let Some(tree) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        tree.walk(item, &format!("{pointer}/{i}"), origin, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `/spec/runtimeRef/name` → `spec.runtimeRef.name`, the root as `the object`.
fn at(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the object".into();
    }
    pointer.trim_start_matches('/').replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_apply_where_declared_for_each_item_and_not_on_update_only() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object",
                "x-kubernetes-validations": [
                    {"rule": "!(has(self.a) && has(self.b))", "message": "a and b are exclusive"},
                    {"rule": "self == oldSelf", "message": "immutable"}],
                "properties": {
                    "items": {"type": "array", "items": {"type": "object",
                        "x-kubernetes-validations": [{"rule": "self.n >= 1", "messageExpression": "'n is ' + string(self.n)"}]}},
                    "site": {"type": "string", "x-kubernetes-validations": [{"rule": "url(self).getHost() != ''"}]}}}}});
        let (tree, counts) = RuleTree::of(&schema);
        assert_eq!(counts, RuleCounts { total: 4, evaluated: 2, transition: 1, unsupported: 1 });
        let object = json!({"spec": {"a": 1, "b": 2, "items": [{"n": 1}, {"n": 0}], "site": "http://x"}});
        let found: Vec<(String, &str, String)> =
            tree.check(&object, "test").into_iter().map(|f| (f.pointer, f.rule, f.message)).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!((found[0].0.as_str(), found[0].1), ("/spec", "crd-rule"));
        assert!(
            found[0].2.starts_with("spec: a and b are exclusive (rule `!(has(self.a) && has(self.b))`"),
            "{}",
            found[0].2
        );
        assert_eq!((found[1].0.as_str(), found[1].1), ("/spec/items/1/n", "crd-rule"));
        assert!(found[1].2.contains("n is 0"), "{}", found[1].2);
        assert_eq!((found[2].0.as_str(), found[2].1), ("/spec/site", "not-checked"));
        assert!(found[2].2.contains("`url()`"), "{}", found[2].2);
        assert!(tree.check(&json!({"spec": {"a": 1, "items": [{"n": 3}]}}), "test").is_empty());
    }
}
