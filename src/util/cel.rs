//! The one CEL engine (the `cel` crate, cel-rust) for every expression kubevet evaluates: the
//! `cel` checks of examples, the assertions of scenarios, and the CRDs' own
//! `x-kubernetes-validations` rules in lint. On top of CEL's standard library it has the
//! Kubernetes libraries these uses need: the strings and lists extensions, regular
//! expressions (`matches`, `find`, `findAll`), list helpers (`isSorted`, `sum`, `min`, `max`)
//! and quantities (`quantity`, `isQuantity`, comparisons). A function kubevet does not have
//! is an error that names it, at compile time when it is one of Kubernetes' libraries kubevet
//! lacks (URLs, IPs, CIDRs, semver, the authorizer), at evaluation otherwise: never a silent
//! true.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, ExecutionError, Program, Value as CelValue, extractors::This, objects::Key};
use regex::Regex;
use serde_json::Value;

/// Kubernetes CEL library functions kubevet does not evaluate.
const UNSUPPORTED: &[&str] = &[
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "semver",
    "isSemver",
    "authorizer",
    "serviceAccount",
    "subresource",
];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Both extensions are registered once into a fresh environment: they cannot clash.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    Arc::new(env)
});

/// A compiled expression and its source.
#[derive(Debug)]
pub struct Expression {
    pub source: String,
    program: Program,
}

/// Why an expression does not compile: the message, and the 1-based column in the expression
/// when the parser knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    pub message: String,
    pub column: Option<u64>,
    /// The function kubevet does not support, when that is the reason.
    pub unsupported: Option<String>,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

static PARSE_POSITION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<input>:(\d+):(\d+): (.*)").expect("a valid regular expression"));

impl Expression {
    pub fn compile(source: &str) -> Result<Expression, CompileError> {
        let program = ENV.compile(source).map_err(|e| {
            let text = e.to_string();
            match PARSE_POSITION.captures(&text) {
                Some(c) => CompileError {
                    message: format!("invalid CEL: {}", &c[3]),
                    column: c[2].parse().ok(),
                    unsupported: None,
                },
                None => CompileError {
                    message: format!("invalid CEL: {}", text.lines().next().unwrap_or("syntax error")),
                    column: None,
                    unsupported: None,
                },
            }
        })?;
        // The first written, so that the message is the same at every run.
        let references = program.references();
        let first = references
            .functions()
            .into_iter()
            .filter(|f| UNSUPPORTED.contains(f))
            .min_by_key(|f| source.find(&format!("{f}(")).unwrap_or(usize::MAX))
            .map(str::to_string);
        if let Some(name) = first {
            return Err(CompileError {
                message: format!("uses `{name}()`, a Kubernetes CEL function kubevet does not evaluate"),
                column: source.find(&format!("{name}(")).map(|i| i as u64 + 1),
                unsupported: Some(name),
            });
        }
        Ok(Expression { source: source.to_string(), program })
    }

    /// Whether the expression uses this variable.
    pub fn uses(&self, variable: &str) -> bool {
        self.program.references().has_variable(variable)
    }

    /// The value, as JSON.
    pub fn evaluate(&self, variables: &[(&str, &Value)]) -> Result<Value, EvalError> {
        let mut context = Context::with_env(ENV.clone());
        kubernetes_functions(&mut context);
        for (name, value) in variables {
            let value = cel::to_value(value).map_err(|e| EvalError::Other(format!("{name}: {e}")))?;
            let _ = context.add_variable(*name, value);
        }
        let value = self.program.execute(&context).map_err(|e| self.explain(e))?;
        value.json().map_err(|e| EvalError::Other(format!("the result cannot be shown as JSON: {e}")))
    }

    /// Whether the expression holds: true, false, or why it could not be told (an error, or a
    /// value that is not a boolean).
    pub fn holds(&self, variables: &[(&str, &Value)]) -> Result<bool, EvalError> {
        match self.evaluate(variables)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::Other(format!("evaluated to {}, not true or false", brief(&other)))),
        }
    }

    /// The values of the paths the expression reads (`object.status.succeeded = 1`), to show
    /// what a false expression saw.
    pub fn observed(&self, variables: &[(&str, &Value)]) -> String {
        static PATH: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r#"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:'[^']*'|"[^"]*"|[0-9]+)\])+"#)
                .expect("a valid regular expression")
        });
        let mut seen: Vec<String> = Vec::new();
        for m in PATH.find_iter(&self.source) {
            let path = m.as_str();
            let root = path.split(['.', '[']).next().unwrap_or_default();
            if !variables.iter().any(|(name, _)| *name == root) || seen.iter().any(|s| s.starts_with(path)) {
                continue;
            }
            let shown = match Expression::compile(path).map(|e| e.evaluate(variables)) {
                Ok(Ok(value)) => brief(&value),
                Ok(Err(e)) => format!("<{e}>"),
                Err(_) => continue,
            };
            seen.push(format!("{path} = {shown}"));
            if seen.len() == 6 {
                break;
            }
        }
        seen.join(", ")
    }

    fn explain(&self, error: ExecutionError) -> EvalError {
        match error {
            ExecutionError::UndeclaredReference(name) if self.program.references().has_function(name.as_str()) => {
                EvalError::Unsupported(name.to_string())
            }
            ExecutionError::UndeclaredReference(name) => EvalError::Other(format!("no variable `{name}` here")),
            ExecutionError::NoSuchKey(key) => EvalError::NoSuchKey(key.to_string()),
            other => EvalError::Other(other.to_string()),
        }
    }
}

/// Why an expression has no value.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// A function kubevet's CEL does not have.
    Unsupported(String),
    /// A field that is not there (guard it with `has()`).
    NoSuchKey(String),
    Other(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Unsupported(name) => write!(f, "uses `{name}()`, which kubevet's CEL does not support"),
            EvalError::NoSuchKey(key) => write!(f, "no field `{key}` (use has() to test for it)"),
            EvalError::Other(message) => f.write_str(message),
        }
    }
}

/// A value in a line of text: JSON, cut at 120 characters.
pub fn brief(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
}

fn function_error(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn regex(function: &str, pattern: &str) -> Result<Regex, ExecutionError> {
    Regex::new(pattern).map_err(|e| function_error(function, e))
}

fn numbers(function: &str, list: &[CelValue]) -> Result<Vec<f64>, ExecutionError> {
    list.iter()
        .map(|v| match v {
            CelValue::Int(i) => Ok(*i as f64),
            CelValue::UInt(u) => Ok(*u as f64),
            CelValue::Float(f) => Ok(*f),
            other => Err(function_error(function, format!("not a number: {other:?}"))),
        })
        .collect()
}

/// A number back in the type the list held: an int stays an int.
fn number(list: &[CelValue], value: f64) -> CelValue {
    if list.iter().all(|v| matches!(v, CelValue::Int(_))) {
        CelValue::Int(value as i64)
    } else {
        CelValue::Float(value)
    }
}

fn comparable(a: &CelValue, b: &CelValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (CelValue::String(a), CelValue::String(b)) => Some(a.cmp(b)),
        _ => {
            let (a, b) = (
                numbers("isSorted", std::slice::from_ref(a)).ok()?,
                numbers("isSorted", std::slice::from_ref(b)).ok()?,
            );
            a[0].partial_cmp(&b[0])
        }
    }
}

/// A Kubernetes quantity (`500m`, `1Gi`, `2.5e3`) as a number. kubevet compares quantities as
/// 64-bit floats: exact for whole numbers up to 2^53, which covers CPU and memory sizes.
pub fn parse_quantity(text: &str) -> Option<f64> {
    static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
            .expect("a valid regular expression")
    });
    let c = QUANTITY.captures(text.trim())?;
    let number: f64 = c[1].parse().ok()?;
    let scale = match c.get(2).map(|m| m.as_str()) {
        None => 1.0,
        Some("Ki") => 1024f64,
        Some("Mi") => 1024f64.powi(2),
        Some("Gi") => 1024f64.powi(3),
        Some("Ti") => 1024f64.powi(4),
        Some("Pi") => 1024f64.powi(5),
        Some("Ei") => 1024f64.powi(6),
        Some("n") => 1e-9,
        Some("u") => 1e-6,
        Some("m") => 1e-3,
        Some("k") => 1e3,
        Some("M") => 1e6,
        Some("G") => 1e9,
        Some("T") => 1e12,
        Some("P") => 1e15,
        Some("E") => 1e18,
        Some(exponent) => 10f64.powi(exponent[1..].parse().ok()?),
    };
    Some(number * scale)
}

fn kubernetes_functions(context: &mut Context) {
    // The names are not in the standard library nor in the two extensions, so adding them
    // cannot fail; a clash would only leave the function out, reported when used.
    let _ = context.add_function("find", |This(s): This<Arc<String>>, pattern: Arc<String>| {
        let found = regex("find", &pattern)?.find(&s).map(|m| m.as_str().to_string()).unwrap_or_default();
        Ok::<_, ExecutionError>(CelValue::from(found))
    });
    let _ = context.add_function("findAll", |This(s): This<Arc<String>>, pattern: Arc<String>| {
        let found: Vec<CelValue> =
            regex("findAll", &pattern)?.find_iter(&s).map(|m| CelValue::from(m.as_str().to_string())).collect();
        Ok::<_, ExecutionError>(CelValue::List(Arc::new(found)))
    });
    let _ = context.add_function("isSorted", |This(list): This<Arc<Vec<CelValue>>>| {
        Ok::<_, ExecutionError>(CelValue::Bool(
            list.windows(2).all(|w| comparable(&w[0], &w[1]).is_some_and(|o| o.is_le())),
        ))
    });
    let _ = context.add_function("sum", |This(list): This<Arc<Vec<CelValue>>>| {
        Ok::<_, ExecutionError>(number(&list, numbers("sum", &list)?.iter().sum()))
    });
    let _ = context.add_function("min", |This(list): This<Arc<Vec<CelValue>>>| {
        let all = numbers("min", &list)?;
        let least = all.iter().copied().reduce(f64::min).ok_or_else(|| function_error("min", "empty list"))?;
        Ok::<_, ExecutionError>(number(&list, least))
    });
    let _ = context.add_function("max", |This(list): This<Arc<Vec<CelValue>>>| {
        let all = numbers("max", &list)?;
        let most = all.iter().copied().reduce(f64::max).ok_or_else(|| function_error("max", "empty list"))?;
        Ok::<_, ExecutionError>(number(&list, most))
    });
    let _ = context.add_function("quantity", |s: Arc<String>| {
        parse_quantity(&s)
            .map(CelValue::Float)
            .ok_or_else(|| function_error("quantity", format!("{s:?} is not a quantity")))
    });
    let _ = context.add_function("isQuantity", |s: Arc<String>| parse_quantity(&s).is_some());
    let _ = context.add_function("isGreaterThan", |This(a): This<f64>, b: f64| a > b);
    let _ = context.add_function("isLessThan", |This(a): This<f64>, b: f64| a < b);
    let _ = context
        .add_function("compareTo", |This(a): This<f64>, b: f64| a.partial_cmp(&b).map(|o| o as i64).unwrap_or(0));
    let _ = context.add_function("asInteger", |This(a): This<f64>| {
        if a.fract() == 0.0 && a.abs() < 9.2e18 {
            Ok(CelValue::Int(a as i64))
        } else {
            Err(function_error("asInteger", format!("{a} is not a whole number")))
        }
    });
    let _ = context.add_function("asApproximateFloat", |This(a): This<f64>| a);
    let _ = context.add_function("isInteger", |This(a): This<f64>| a.fract() == 0.0);
}

/// A map key as text, for messages.
pub fn key_text(key: &Key) -> String {
    match key {
        Key::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(source: &str, object: &Value) -> Result<bool, EvalError> {
        Expression::compile(source).expect("compiles").holds(&[("self", object)])
    }

    #[test]
    fn kubernetes_libraries() {
        let o = json!({"name": "ab12cd34", "mem": "1Gi", "cpu": "500m", "list": [1, 2, 3], "words": ["a", "c", "b"]});
        for ok in [
            "self.name.find('[0-9]+') == '12'",
            "self.name.findAll('[0-9]+') == ['12', '34']",
            "self.name.matches('^[a-z0-9]+$') && self.name.upperAscii() == 'AB12CD34'",
            "quantity(self.mem).isGreaterThan(quantity('1000Mi')) && quantity(self.cpu).compareTo(quantity('0.5')) == 0",
            "quantity('2k').asInteger() == 2000 && isQuantity('1.5Gi') && !isQuantity('one')",
            "self.list.isSorted() && !self.words.isSorted() && self.list.sum() == 6 && self.list.max() == 3",
            "[has(self.name), has(self.torch)].filter(x, x).size() <= 1",
            "self.words.all(w, w.size() == 1) && self.list.exists(x, x > 2)",
        ] {
            assert_eq!(holds(ok, &o), Ok(true), "{ok}");
        }
        assert_eq!(holds("self.list.size() == 2", &o), Ok(false));
    }

    #[test]
    fn what_kubevet_cannot_evaluate_is_named_never_true() {
        let err = Expression::compile("url(self.u).getHost() == 'x'").expect_err("unsupported");
        assert_eq!(err.unsupported.as_deref(), Some("url"));
        assert_eq!(err.column, Some(1));
        assert_eq!(
            holds("self.name.noSuchFunction()", &json!({"name": "a"})),
            Err(EvalError::Unsupported("noSuchFunction".into()))
        );
        assert_eq!(holds("self.absent == 1", &json!({})), Err(EvalError::NoSuchKey("absent".into())));
        let not_bool = holds("1 + 1", &json!({})).expect_err("not a boolean").to_string();
        assert_eq!(not_bool, "evaluated to 2, not true or false");
        let syntax = Expression::compile("self.a ==").expect_err("syntax");
        assert_eq!(syntax.column, Some(10), "{syntax:?}");
    }

    #[test]
    fn observed_shows_the_values_read() {
        let e = Expression::compile("object.status.replicaStatuses.Worker.succeeded == 2").expect("compiles");
        let object = json!({"status": {"replicaStatuses": {"Worker": {"succeeded": 1}}}});
        assert_eq!(e.holds(&[("object", &object)]), Ok(false));
        assert_eq!(e.observed(&[("object", &object)]), "object.status.replicaStatuses.Worker.succeeded = 1");
    }
}
