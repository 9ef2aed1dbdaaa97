//! Property-based fuzzing of the four readers of user input: the suite parser, the example
//! reader (what `run` and `list` plan from), the scenario reader and the lint reader. Inputs are real suites and
//! examples of this repository mutated at random (characters cut, YAML punctuation, anchors,
//! aliases, tabs, octals and odd unicode, long digit runs, huge durations and counts put in,
//! lines doubled and swapped). For every input:
//! no panic, an answer within a bound, and every rejection an input error with a file:line:col
//! (exit 2 from the binary). `KUBEVET_FUZZ_CASES` sets the inputs per target (default 300).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use kubevet::{
    lint::{self, LintOptions},
    plan, suite,
    util::error::Error,
};
use proptest::{prelude::*, test_runner::Config};

/// A generous bound that only a hang (or a quadratic blow-up) crosses.
const BOUND: Duration = Duration::from_secs(5);

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "&b [*a, *a, *a]",
    "!!binary ",
    "!!str ",
    "\t",
    "\n",
    "\n  ",
    "'",
    "\"",
    "---\n",
    "...\n",
    "? ",
    "null",
    "~",
    "0755",
    "0x1F",
    "1e999",
    "-1",
    "4294967296",
    "true",
    "yes",
    "é",
    "\u{202e}",
    "\u{0}",
    "#",
    "|\n  ",
    ">-\n  ",
    "<<: *a\n",
    "metadata:",
    "name:",
    "kind: Suite\n",
    "apiVersion: v1\n",
    "include:",
    "timeout: 5",
    "concurrency: ",
    "version: '>>>1'",
    "cel: ",
    " && object.status.x ==",
    "url(",
    "expectError: '('",
    "steps:\n",
    "- assert: ",
    // Long digit runs, huge durations and counts: values no clock or integer can hold.
    "99999999999999999999h",
    "timeout: 99999999999999999999h",
    "failureGrace: 1e308s",
    "timeout: 720h1ms",
    "100000000000000000000000000000000000000",
    "retries: 18446744073709551616",
    "concurrency: 99999999999999999999",
    "logLimitBytes: 340282366920938463463374607431768211456",
    "attempts: 4294967296",
    "hold: 9999999999999999999999999999999m",
];

fn cases() -> u32 {
    std::env::var("KUBEVET_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML file under the fixture and example folders: the seeds.
fn seeds(filter: fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join("tests/fixtures"), repo().join("examples"), repo().join("scenarios")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && let Ok(text) = std::fs::read_to_string(&path)
                && filter(&text)
            {
                out.push(text);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no seed files found");
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Cut(usize, usize),
    Insert(usize, usize),
    DoubleLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Mutation::Cut(at, len)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        any::<usize>().prop_map(Mutation::DoubleLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(seed: &str, mutations: &[Mutation]) -> String {
    let mut text = seed.to_string();
    for m in mutations {
        match m {
            Mutation::Cut(at, len) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, start + len);
                if end > start {
                    text.replace_range(start..end, "");
                }
            }
            Mutation::Insert(at, t) => {
                let at = boundary(&text, *at);
                text.insert_str(at, TOKENS[*t]);
            }
            Mutation::DoubleLine(i) | Mutation::SwapLines(i, _) if text.lines().count() == 0 => {
                let _ = i;
            }
            Mutation::DoubleLine(i) => {
                let mut lines: Vec<&str> = text.lines().collect();
                let i = i % lines.len();
                lines.insert(i, lines[i]);
                text = lines.join("\n");
            }
            Mutation::SwapLines(a, b) => {
                let mut lines: Vec<&str> = text.lines().collect();
                let (a, b) = (a % lines.len(), b % lines.len());
                lines.swap(a, b);
                text = lines.join("\n");
            }
        }
    }
    text
}

/// A rejection of user input must say where: exit 2 with file:line:col.
fn located(e: &Error) -> Result<(), TestCaseError> {
    match e {
        Error::Input { line, column, .. } if *line >= 1 && *column >= 1 => Ok(()),
        other => Err(TestCaseError::fail(format!("a rejection without a position: {other}"))),
    }
}

fn timed<T>(what: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let started = Instant::now();
    let out = what();
    prop_assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    Ok(out)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn the_suite_parser_locates_every_rejection(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds(|t| t.contains("kind: Suite"));
        let text = mutate(seed.get::<String>(&seeds), &mutations);
        let dir = tempfile::tempdir().expect("tempdir");
        // Suites name folders (images, operators): the ones the seeds use exist here, empty.
        for sub in ["examples", "operator", "charts", "app", "deploy"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let path = write(dir.path(), "kubevet.yaml", &text);
        if let Err(e) = timed(|| suite::load(&path))? {
            located(&e)?;
        }
    }

    #[test]
    fn the_example_reader_locates_every_rejection(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds(|t| t.contains("apiVersion") && !t.contains("kind: Suite"));
        let text = mutate(seed.get::<String>(&seeds), &mutations);
        let dir = tempfile::tempdir().expect("tempdir");
        let suite_file = write(dir.path(), "kubevet.yaml", "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\n");
        write(dir.path(), "examples/example.yaml", &text);
        let suite = suite::load(&suite_file).expect("the fixed suite loads");
        match timed(|| plan::plan(&suite, Default::default()))? {
            Ok(cases) => prop_assert_eq!(cases.len(), 1, "one file, one case"),
            Err(e) => located(&e)?,
        }
    }

    #[test]
    fn the_lint_reader_reports_everything_at_a_position(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds(|t| t.contains("apiVersion"));
        let text = mutate(seed.get::<String>(&seeds), &mutations);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), "example.yaml", &text);
        let options = LintOptions::default();
        let report = timed(|| lint::lint(std::slice::from_ref(&file), &options))?;
        let report = report.map_err(|e| TestCaseError::fail(format!("lint gave up on a readable file: {e}")))?;
        for f in report.files.iter().flat_map(|f| &f.findings) {
            prop_assert!(f.line >= 1 && f.column >= 1, "{} without a position: {}", f.rule, f.message);
        }
    }

    #[test]
    fn the_scenario_reader_locates_every_rejection(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds(|t| t.contains("kind: Scenario"));
        let text = mutate(seed.get::<String>(&seeds), &mutations);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "scenarios/scenario.yaml", &text);
        let _ = timed(|| plan::scenario::is_scenario(&text))?;
        if let Err(e) = timed(|| plan::scenario::read(&path, &text, &Default::default()))? {
            located(&e)?;
        }
    }
}
