//! Metric assertions: a PromQL subset, parsed by `promql-parser` (GreptimeTeam's parser; no
//! Rust PromQL engine exists) and evaluated here over two snapshots of one endpoint, the one
//! before a case's objects were applied and the one after its verdict. A selector is the
//! value after; `increase`, `delta` and `last_over_time` take a range, which is read as "over
//! the case" (its length is ignored). An expression holds when its result is not empty (as an
//! alerting rule fires), or, for a number, when it is not zero.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::{
    label::Matchers,
    parser::{self, AggregateExpr, BinaryExpr, Call, Expr, VectorSelector, token},
};

use super::exposition::Sample;

/// The functions kubevet evaluates.
pub const FUNCTIONS: &[&str] = &["increase", "delta", "last_over_time", "absent"];
/// The aggregations kubevet evaluates.
pub const AGGREGATIONS: &[&str] = &["sum", "max", "min", "count"];

/// An expression kubevet cannot evaluate: where in it (a byte offset) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Unsupported {
    pub offset: usize,
    pub message: String,
}

/// A parsed assertion, checked to be within the subset.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub text: String,
    expr: Expr,
}

impl Assertion {
    /// Parses `text` and refuses what is outside the subset, with its position.
    pub fn parse(text: &str) -> Result<Assertion, Unsupported> {
        let expr = parser::parse(text).map_err(|message| Unsupported { offset: 0, message })?;
        supported(&expr, text)?;
        Ok(Assertion { text: text.to_string(), expr })
    }

    /// The metric names the assertion reads (a scrape is stable when these stop changing).
    pub fn metric_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        selectors(&self.expr, &mut |s| {
            if let Some(name) = &s.name {
                names.insert(name.clone());
            }
        });
        names
    }
}

/// What an assertion came to: held or not, the series it returned (labels, value), and notes
/// (a counter reset, an operator restart).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub held: bool,
    pub result: Vec<(String, f64)>,
    pub notes: Vec<String>,
    /// Some increase is a lower bound: the endpoint restarted or a counter fell between the
    /// snapshots, and what it counted before that is lost.
    pub lower_bounds: bool,
}

/// An expression that cannot be evaluated over the snapshots (one the subset check let through
/// with operands of the wrong type).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// One series' labels (`__name__` among them until a function or an aggregation drops it).
type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
enum Value {
    Vector(Vec<(Labels, f64)>),
    Scalar(f64),
}

/// The two snapshots an assertion is evaluated over.
pub struct Snapshots<'a> {
    pub before: &'a [Sample],
    pub after: &'a [Sample],
}

impl Snapshots<'_> {
    /// The endpoint's process restarted between the snapshots: its start time changed.
    fn restarted(&self) -> bool {
        let start =
            |samples: &[Sample]| samples.iter().find(|s| s.name == "process_start_time_seconds").map(|s| s.value);
        matches!((start(self.before), start(self.after)), (Some(a), Some(b)) if a != b)
    }
}

impl Assertion {
    pub fn evaluate(&self, snapshots: &Snapshots<'_>) -> Result<Evaluated, EvalError> {
        let mut notes = Notes::default();
        let value = eval(&self.expr, snapshots, &mut notes)?;
        let Notes { lines: mut notes, lower_bounds } = notes;
        let (held, result) = match value {
            Value::Scalar(v) => (v != 0.0, vec![(String::new(), v)]),
            Value::Vector(series) => {
                (!series.is_empty(), series.into_iter().map(|(labels, v)| (show(&labels), v)).collect())
            }
        };
        notes.sort();
        notes.dedup();
        Ok(Evaluated { held, result, notes, lower_bounds })
    }

    /// Whether holding on lower bounds (counts lost before a restart) proves it holds on the
    /// true counts: it only asks that increases, or their sum, max or min, reach a number.
    /// `increase(x) >= 1` is proved by a lower bound; `increase(x) == 0` is not.
    pub fn holds_on_lower_bounds(&self) -> bool {
        rises_with_counts(&self.expr)
    }
}

fn rises_with_counts(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => rises_with_counts(&p.expr),
        Expr::Binary(b) if b.op.is_set_operator() => {
            b.op.id() != token::T_LUNLESS && rises_with_counts(&b.lhs) && rises_with_counts(&b.rhs)
        }
        Expr::Binary(b) if b.modifier.as_ref().is_some_and(|m| m.return_bool) => false,
        Expr::Binary(b) => match (b.op.id(), b.lhs.as_ref(), b.rhs.as_ref()) {
            (token::T_GTR | token::T_GTE, counted, Expr::NumberLiteral(_))
            | (token::T_LSS | token::T_LTE, Expr::NumberLiteral(_), counted) => lower_bound(counted),
            _ => false,
        },
        other => lower_bound(other),
    }
}

/// An expression whose value can only rise with the counts it reads.
fn lower_bound(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => lower_bound(&p.expr),
        Expr::Call(c) => c.func.name == "increase",
        Expr::Aggregate(a) => ["sum", "max", "min"].contains(&a.op.to_string().as_str()) && lower_bound(&a.expr),
        _ => false,
    }
}

/// `name{a="x",b="y"}`.
fn show(labels: &Labels) -> String {
    let name = labels.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> =
        labels.iter().filter(|(k, _)| k.as_str() != "__name__").map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", rest.join(","))
}

fn unsupported(text: &str, needle: &str, message: String) -> Unsupported {
    Unsupported { offset: text.find(needle).unwrap_or(0), message }
}

/// Refuses what kubevet does not evaluate, naming it and where it is.
fn supported(expr: &Expr, text: &str) -> Result<(), Unsupported> {
    match expr {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::VectorSelector(s) => plain_selector(s, text),
        Expr::Paren(p) => supported(&p.expr, text),
        Expr::Unary(u) => supported(&u.expr, text),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            let known =
                b.op.is_comparison_operator() || b.op.is_set_operator() || ["+", "-", "*", "/"].contains(&op.as_str());
            if !known {
                return Err(unsupported(
                    text,
                    &op,
                    format!("the operator {op} is not one kubevet evaluates (+ - * /, comparisons, and, or, unless)"),
                ));
            }
            if b.modifier.as_ref().is_some_and(|m| m.matching.is_some()) {
                return Err(unsupported(
                    text,
                    "on",
                    "on(…)/ignoring(…) matching is not supported: series match on all their labels".into(),
                ));
            }
            supported(&b.lhs, text)?;
            supported(&b.rhs, text)
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) || a.param.is_some() {
                return Err(unsupported(
                    text,
                    &op,
                    format!("the aggregation {op} is not supported; use one of {}", AGGREGATIONS.join(", ")),
                ));
            }
            supported(&a.expr, text)
        }
        Expr::Call(call) => {
            let name = call.func.name;
            if !FUNCTIONS.contains(&name) {
                return Err(unsupported(
                    text,
                    name,
                    format!("the function {name} is not supported; use one of {}", FUNCTIONS.join(", ")),
                ));
            }
            for arg in &call.args.args {
                match arg.as_ref() {
                    Expr::MatrixSelector(m) => plain_selector(&m.vs, text)?,
                    other => supported(other, text)?,
                }
            }
            Ok(())
        }
        Expr::MatrixSelector(_) => {
            Err(unsupported(text, "[", "a range is only read inside increase, delta or last_over_time".into()))
        }
        Expr::Subquery(_) => Err(unsupported(text, ":", "subqueries are not supported".into())),
        Expr::StringLiteral(_) => Err(unsupported(text, "\"", "a string is not an assertion".into())),
        Expr::Extension(_) => Err(unsupported(text, "", "this expression is not supported".into())),
    }
}

fn plain_selector(s: &VectorSelector, text: &str) -> Result<(), Unsupported> {
    if s.offset.is_some() || s.at.is_some() {
        return Err(unsupported(
            text,
            if s.offset.is_some() { "offset" } else { "@" },
            "offset and @ are not supported: an assertion reads the case's two snapshots".into(),
        ));
    }
    if !s.matchers.or_matchers.is_empty() {
        return Err(unsupported(text, " or ", "or inside a selector is not supported".into()));
    }
    Ok(())
}

fn selectors(expr: &Expr, each: &mut dyn FnMut(&VectorSelector)) {
    match expr {
        Expr::VectorSelector(s) => each(s),
        Expr::MatrixSelector(m) => each(&m.vs),
        Expr::Paren(p) => selectors(&p.expr, each),
        Expr::Unary(u) => selectors(&u.expr, each),
        Expr::Binary(b) => {
            selectors(&b.lhs, each);
            selectors(&b.rhs, each);
        }
        Expr::Aggregate(a) => selectors(&a.expr, each),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, each)),
        _ => {}
    }
}

fn matches(name: &Option<String>, matchers: &Matchers, sample: &Sample) -> bool {
    if name.as_ref().is_some_and(|n| *n != sample.name) {
        return false;
    }
    matchers.matchers.iter().all(|m| {
        let value = if m.name == "__name__" { sample.name.as_str() } else { sample.label(&m.name) };
        m.is_match(value)
    })
}

fn select(s: &VectorSelector, samples: &[Sample]) -> Vec<(Labels, f64)> {
    samples
        .iter()
        .filter(|sample| matches(&s.name, &s.matchers, sample))
        .map(|sample| {
            let mut labels = sample.labels.clone();
            labels.insert("__name__".into(), sample.name.clone());
            (labels, sample.value)
        })
        .collect()
}

/// What evaluating said along the way, and whether some increase is only a lower bound.
#[derive(Default)]
struct Notes {
    lines: Vec<String>,
    lower_bounds: bool,
}

fn eval(expr: &Expr, snapshots: &Snapshots<'_>, notes: &mut Notes) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::NumberLiteral(n) => Value::Scalar(n.val),
        Expr::VectorSelector(s) => Value::Vector(select(s, snapshots.after)),
        Expr::Paren(p) => eval(&p.expr, snapshots, notes)?,
        Expr::Unary(u) => match eval(&u.expr, snapshots, notes)? {
            Value::Scalar(v) => Value::Scalar(-v),
            Value::Vector(series) => Value::Vector(series.into_iter().map(|(l, v)| (without_name(l), -v)).collect()),
        },
        Expr::Call(call) => function(call, snapshots, notes)?,
        Expr::Aggregate(a) => aggregate(a, eval(&a.expr, snapshots, notes)?)?,
        Expr::Binary(b) => binary(b, eval(&b.lhs, snapshots, notes)?, eval(&b.rhs, snapshots, notes)?)?,
        other => return Err(EvalError(format!("{other} cannot be evaluated"))),
    })
}

fn without_name(mut labels: Labels) -> Labels {
    labels.remove("__name__");
    labels
}

/// `increase`/`delta` over the case: after − before per series. A counter absent before had not
/// been incremented (it counts from zero); one that fell, or an endpoint that restarted, counts
/// from zero again, and that is noted.
fn function(call: &Call, snapshots: &Snapshots<'_>, notes: &mut Notes) -> Result<Value, EvalError> {
    let name = call.func.name;
    let arg = call.args.args.first().ok_or_else(|| EvalError(format!("{name} needs an argument")))?;
    if name == "absent" {
        let empty = match eval(arg, snapshots, notes)? {
            Value::Vector(series) => series.is_empty(),
            Value::Scalar(_) => return Err(EvalError("absent takes a vector".into())),
        };
        return Ok(Value::Vector(if empty { vec![(Labels::new(), 1.0)] } else { Vec::new() }));
    }
    let Expr::MatrixSelector(m) = arg.as_ref() else {
        return Err(EvalError(format!("{name} takes a selector with a range")));
    };
    let after = select(&m.vs, snapshots.after);
    if name == "last_over_time" {
        return Ok(Value::Vector(after.into_iter().map(|(l, v)| (without_name(l), v)).collect()));
    }
    let before: BTreeMap<Labels, f64> = select(&m.vs, snapshots.before).into_iter().collect();
    let restarted = snapshots.restarted();
    if restarted && name == "increase" {
        notes.lower_bounds = true;
        notes.lines.push("the endpoint restarted between the snapshots (process_start_time_seconds changed): counters counted from zero, a lower bound".into());
    }
    let mut out = Vec::new();
    for (labels, now) in after {
        let earlier = before.get(&labels).copied();
        let change = match (name, earlier) {
            ("increase", _) if restarted => now,
            ("increase", Some(was)) if now < was => {
                notes.lower_bounds = true;
                notes
                    .lines
                    .push(format!("{} fell from {was} to {now}: a counter reset, counted from zero", show(&labels)));
                now
            }
            ("increase", was) => now - was.unwrap_or(0.0),
            (_, Some(was)) => now - was,
            // A gauge that was not there before has no change to give.
            (_, None) => continue,
        };
        out.push((without_name(labels), change));
    }
    Ok(Value::Vector(out))
}

fn aggregate(a: &AggregateExpr, value: Value) -> Result<Value, EvalError> {
    let Value::Vector(series) = value else { return Err(EvalError("an aggregation takes a vector".into())) };
    let op = a.op.to_string();
    let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    for (labels, v) in series {
        let key: Labels = match &a.modifier {
            Some(parser::LabelModifier::Include(by)) => {
                labels.into_iter().filter(|(k, _)| by.labels.contains(k)).collect()
            }
            Some(parser::LabelModifier::Exclude(without)) => {
                without_name(labels).into_iter().filter(|(k, _)| !without.labels.contains(k)).collect()
            }
            None => Labels::new(),
        };
        groups.entry(key).or_default().push(v);
    }
    let reduce = |values: &[f64]| -> f64 {
        match op.as_str() {
            "sum" => values.iter().sum(),
            "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
            _ => values.len() as f64,
        }
    };
    Ok(Value::Vector(groups.into_iter().map(|(labels, values)| (labels, reduce(&values))).collect()))
}

fn binary(b: &BinaryExpr, lhs: Value, rhs: Value) -> Result<Value, EvalError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    if b.op.is_set_operator() {
        let (Value::Vector(l), Value::Vector(r)) = (lhs, rhs) else {
            return Err(EvalError("and, or and unless take vectors".into()));
        };
        let key = |labels: &Labels| without_name(labels.clone());
        let right: BTreeSet<Labels> = r.iter().map(|(l, _)| key(l)).collect();
        return Ok(Value::Vector(match op {
            token::T_LAND => l.into_iter().filter(|(labels, _)| right.contains(&key(labels))).collect(),
            token::T_LUNLESS => l.into_iter().filter(|(labels, _)| !right.contains(&key(labels))).collect(),
            _ => {
                let left: BTreeSet<Labels> = l.iter().map(|(l, _)| key(l)).collect();
                l.into_iter().chain(r.into_iter().filter(|(labels, _)| !left.contains(&key(labels)))).collect()
            }
        }));
    }
    let comparison = b.op.is_comparison_operator();
    let apply = |x: f64, y: f64| -> Option<f64> {
        if !comparison {
            return Some(arithmetic(op, x, y));
        }
        let held = compare(op, x, y);
        if return_bool { Some(f64::from(u8::from(held))) } else { held.then_some(x) }
    };
    let keep_name = |labels: Labels| if comparison && !return_bool { labels } else { without_name(labels) };
    Ok(match (lhs, rhs) {
        // Between two numbers a comparison is 1 or 0 (PromQL asks for `bool` there).
        (Value::Scalar(x), Value::Scalar(y)) => {
            Value::Scalar(if comparison { f64::from(u8::from(compare(op, x, y))) } else { arithmetic(op, x, y) })
        }
        (Value::Vector(series), Value::Scalar(y)) => {
            Value::Vector(series.into_iter().filter_map(|(l, x)| apply(x, y).map(|v| (keep_name(l), v))).collect())
        }
        (Value::Scalar(x), Value::Vector(series)) => {
            Value::Vector(series.into_iter().filter_map(|(l, y)| apply(x, y).map(|v| (keep_name(l), v))).collect())
        }
        (Value::Vector(l), Value::Vector(r)) => {
            let right: BTreeMap<Labels, f64> = r.into_iter().map(|(labels, v)| (without_name(labels), v)).collect();
            Value::Vector(
                l.into_iter()
                    .filter_map(|(labels, x)| {
                        let y = *right.get(&without_name(labels.clone()))?;
                        apply(x, y).map(|v| (keep_name(labels), v))
                    })
                    .collect(),
            )
        }
    })
}

fn arithmetic(op: token::TokenId, x: f64, y: f64) -> f64 {
    match op {
        token::T_ADD => x + y,
        token::T_SUB => x - y,
        token::T_MUL => x * y,
        _ => x / y,
    }
}

fn compare(op: token::TokenId, x: f64, y: f64) -> bool {
    match op {
        token::T_EQLC => x == y,
        token::T_NEQ => x != y,
        token::T_GTR => x > y,
        token::T_GTE => x >= y,
        token::T_LSS => x < y,
        _ => x <= y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::exposition::parse;

    fn held(expr: &str, before: &str, after: &str) -> Evaluated {
        let (before, after) = (parse(before).expect("before"), parse(after).expect("after"));
        Assertion::parse(expr)
            .expect("supported")
            .evaluate(&Snapshots { before: &before, after: &after })
            .expect("evaluates")
    }

    const BEFORE: &str = "process_start_time_seconds 100\n\
        training_operator_jobs_created_total{job_namespace=\"other\",framework=\"pytorch\"} 3\n";
    const AFTER: &str = "process_start_time_seconds 100\n\
        training_operator_jobs_created_total{job_namespace=\"other\",framework=\"pytorch\"} 3\n\
        training_operator_jobs_created_total{job_namespace=\"kv-a\",framework=\"pytorch\"} 1\n\
        controller_runtime_reconcile_panics_total{controller=\"pytorchjob-controller\"} 0\n";

    #[test]
    fn a_counter_first_seen_after_the_case_increased_from_zero() {
        let e = held(r#"increase(training_operator_jobs_created_total{job_namespace="kv-a"}[1m]) >= 1"#, BEFORE, AFTER);
        assert!(e.held, "{e:?}");
        assert_eq!(e.result, vec![(r#"{framework="pytorch",job_namespace="kv-a"}"#.to_string(), 1.0)]);
        let other =
            held(r#"increase(training_operator_jobs_created_total{job_namespace="other"}[1m]) >= 1"#, BEFORE, AFTER);
        assert!(!other.held, "it did not move: {other:?}");
    }

    #[test]
    fn no_panics_is_the_absence_of_an_increase() {
        let e = held("absent(increase(controller_runtime_reconcile_panics_total[5m]) > 0)", BEFORE, AFTER);
        assert!(e.held, "{e:?}");
        let panicked = AFTER.replace("controller\"} 0", "controller\"} 2");
        assert!(!held("absent(increase(controller_runtime_reconcile_panics_total[5m]) > 0)", BEFORE, &panicked).held);
    }

    #[test]
    fn only_an_increase_reaching_a_number_is_proved_by_lower_bounds() {
        for (text, proved) in [
            ("increase(a_total[1m]) >= 1", true),
            ("sum(increase(a_total[1m])) > 0 and max(increase(b_total[1m])) >= 2", true),
            ("1 <= sum by (x) (increase(a_total[1m]))", true),
            ("sum(increase(a_total[1m])) == 0", false),
            ("increase(a_total[1m]) < 3", false),
            ("increase(a_total[1m]) > bool 1", false),
            ("delta(a[1m]) > 0", false),
            ("increase(a_total[1m]) > 0 unless increase(b_total[1m]) > 0", false),
        ] {
            let parsed = Assertion::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.holds_on_lower_bounds(), proved, "{text}");
        }
    }

    #[test]
    fn a_restart_or_a_fall_counts_from_zero_and_is_noted() {
        let restarted =
            AFTER.replace("process_start_time_seconds 100", "process_start_time_seconds 200").replace("} 3", "} 1");
        let e = held(r#"sum(increase(training_operator_jobs_created_total[1m]))"#, BEFORE, &restarted);
        assert_eq!(e.result, vec![("{}".to_string(), 2.0)], "{e:?}");
        assert!(e.notes[0].starts_with("the endpoint restarted") && e.lower_bounds, "{e:?}");
        assert!(!held("sum(increase(training_operator_jobs_created_total[1m]))", BEFORE, AFTER).lower_bounds);
        let fell = AFTER.replace("} 3", "} 1");
        let e = held(r#"increase(training_operator_jobs_created_total{job_namespace="other"}[1m])"#, BEFORE, &fell);
        assert_eq!(e.result[0].1, 1.0);
        assert!(e.notes[0].contains("fell from 3 to 1") && e.lower_bounds, "{e:?}");
    }

    #[test]
    fn aggregations_group_by_their_labels_and_set_operators_combine() {
        let e = held("sum by (framework) (training_operator_jobs_created_total)", BEFORE, AFTER);
        assert_eq!(e.result, vec![(r#"{framework="pytorch"}"#.to_string(), 4.0)]);
        assert_eq!(held("count(training_operator_jobs_created_total)", BEFORE, AFTER).result[0].1, 2.0);
        assert!(
            held(
                "max(training_operator_jobs_created_total) == 3 and min(training_operator_jobs_created_total) == 1",
                BEFORE,
                AFTER
            )
            .held
        );
        assert!(!held("training_operator_jobs_created_total > 5 or absent(nothing_total) == 0", BEFORE, AFTER).held);
        assert_eq!(held("delta(process_start_time_seconds[1m])", BEFORE, AFTER).result[0].1, 0.0);
    }

    #[test]
    fn what_kubevet_does_not_evaluate_is_refused_with_its_position() {
        let e = Assertion::parse("rate(x_total[5m]) > 0").expect_err("rate is not supported");
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("the function rate is not supported"), "{e}");
        let e = Assertion::parse("sum(x) + topk(3, y)").expect_err("topk");
        assert_eq!(e.offset, 9, "{e}");
        assert!(Assertion::parse("x offset 5m").expect_err("offset").message.contains("offset"));
        assert!(Assertion::parse("x[5m]").is_err());
        assert!(Assertion::parse("sum(").is_err());
    }
}
