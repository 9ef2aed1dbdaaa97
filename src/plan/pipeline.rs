//! Pipeline cases (Kubeflow Pipelines): a compiled pipeline file (KFP IR YAML), a Python
//! pipeline file compiled with the KFP SDK (`kfp dsl compile`, cached by the source's hash and
//! the SDK's version), or a pipeline that already lives in KFP at a floating or pinned version.
//! The run parameters an override gives are typed here as the pipeline declares them, so a
//! wrong one is said before anything runs.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::util::{
    command::{self, CommandError},
    files::{FileError, cache_dir, short_hash, write_atomically},
    yaml::{self, Document},
};

/// A compiled pipeline is a document with `pipelineInfo` (or `deploymentSpec`) and no `kind`.
pub fn is_pipeline(doc: &Value) -> bool {
    doc.get("kind").is_none() && (doc.get("pipelineInfo").is_some() || doc.get("deploymentSpec").is_some())
}

/// The optional second document of a compiled pipeline: `platforms: {kubernetes: …}`.
pub fn is_platform_spec(doc: &Value) -> bool {
    doc.get("kind").is_none() && doc.get("platforms").is_some()
}

/// What a pipeline case runs.
#[derive(Debug, Clone)]
pub enum PipelineSource {
    /// A compiled pipeline: its IR document and optional platform document (built images
    /// already swapped into its executors by the session).
    Compiled { spec: Value, platform: Option<Value> },
    /// A Python file, compiled before the run (a failure is the case's error).
    Python(PathBuf),
    /// A pipeline in KFP, by name: `latest` or a version name.
    Existing { version: String },
}

#[derive(Debug, Clone)]
pub struct PipelineCase {
    /// The pipeline's name in KFP: the case's id for files, the listed name for existing ones.
    pub name: String,
    pub source: PipelineSource,
    /// As the override (or the `existing` entry) gives them; typed once the spec is known.
    pub parameters: Map<String, Value>,
    /// For a Python pipeline: whether its compiled result came from the cache.
    pub compiled_from_cache: Option<bool>,
    /// How many tasks kubevet turned KFP's cache off for (none: caching kept, or a pipeline
    /// already in KFP, which kubevet cannot rewrite).
    pub caching_turned_off: Option<usize>,
}

/// A compiled pipeline's text as uploaded (JSON documents, which YAML readers take as they
/// are) and its content hash: the version's name, so unchanged content reuses its version.
pub fn upload(spec: &Value, platform: Option<&Value>) -> (String, String) {
    let mut text = spec.to_string();
    if let Some(p) = platform {
        text.push_str("\n---\n");
        text.push_str(&p.to_string());
    }
    let hash = short_hash(&text);
    (text, format!("kv-{hash}"))
}

/// Turns KFP's cache off for every task of a compiled pipeline, nested DAGs included (what
/// the SDK's client does when asked to run without caching): KFP keys its cache by the task's
/// fingerprint and the pipeline's name, not by run, so a cached task would pass without
/// running. How many tasks had it on.
pub fn without_cache(spec: &mut Value) -> usize {
    let mut turned_off = spec.pointer_mut("/root/dag").map(tasks_without_cache).unwrap_or(0);
    if let Some(components) = spec.get_mut("components").and_then(Value::as_object_mut) {
        turned_off += components.values_mut().filter_map(|c| c.get_mut("dag")).map(tasks_without_cache).sum::<usize>();
    }
    turned_off
}

fn tasks_without_cache(dag: &mut Value) -> usize {
    let mut turned_off = 0;
    for task in dag.get_mut("tasks").and_then(Value::as_object_mut).into_iter().flat_map(|t| t.values_mut()) {
        let Some(task) = task.as_object_mut() else { continue };
        let options = task.entry("cachingOptions").or_insert_with(|| Value::Object(Default::default()));
        if !options.is_object() {
            *options = Value::Object(Default::default());
        }
        if let Some(options) = options.as_object_mut()
            && options.insert("enableCache".into(), Value::Bool(false)) != Some(Value::Bool(false))
        {
            turned_off += 1;
        }
    }
    turned_off
}

/// The compiled documents of a pipeline file: its IR and optional platform document.
pub fn compiled(docs: &[Document]) -> Option<PipelineSource> {
    let spec = docs.iter().find(|d| is_pipeline(&d.value))?.value.clone();
    let platform = docs.iter().find(|d| is_platform_spec(&d.value)).map(|d| d.value.clone());
    Some(PipelineSource::Compiled { spec, platform })
}

/// A run parameter the suite gets wrong: its name, and what is wrong in the user's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterProblem {
    pub name: String,
    pub message: String,
}

/// The problems as one line.
pub fn problems_line(problems: &[ParameterProblem]) -> String {
    problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// The run parameters `given`, checked against what `spec` declares and typed as it declares
/// them (KFP rejects an integer given as a string): every problem, in the user's terms.
pub fn typed_parameters(spec: &Value, given: &Map<String, Value>) -> Result<Map<String, Value>, Vec<ParameterProblem>> {
    let declared = spec.pointer("/root/inputDefinitions/parameters").and_then(Value::as_object);
    let mut problems = Vec::new();
    let mut typed = Map::new();
    for (name, value) in given {
        let Some(decl) = declared.and_then(|d| d.get(name)) else {
            let known: Vec<&str> = declared.into_iter().flat_map(|d| d.keys().map(String::as_str)).collect();
            let message = format!(
                "parameter {name:?} is not declared by the pipeline (it declares: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
            problems.push(ParameterProblem { name: name.clone(), message });
            continue;
        };
        let kind = decl["parameterType"].as_str().unwrap_or("STRING");
        let fitted = match (kind, value) {
            ("STRING", Value::String(_)) => Some(value.clone()),
            ("NUMBER_INTEGER", Value::Number(n))
                if n.as_i64().is_some() || n.as_f64().is_some_and(|f| f.fract() == 0.0) =>
            {
                Some(value.clone())
            }
            ("NUMBER_DOUBLE", Value::Number(_)) => Some(value.clone()),
            ("BOOLEAN", Value::Bool(_)) => Some(value.clone()),
            ("LIST", Value::Array(_)) => Some(value.clone()),
            ("STRUCT", Value::Object(_)) => Some(value.clone()),
            _ => None,
        };
        match fitted {
            Some(v) => {
                typed.insert(name.clone(), v);
            }
            None => problems.push(ParameterProblem {
                name: name.clone(),
                message: format!(
                    "parameter {name:?} is declared {kind}, but the suite gives {value} ({})",
                    match kind {
                        "NUMBER_INTEGER" => "write a whole number without quotes",
                        "NUMBER_DOUBLE" => "write a number without quotes",
                        "BOOLEAN" => "write true or false",
                        "LIST" => "write a list",
                        "STRUCT" => "write a mapping",
                        _ => "write a string, quoted if it looks like a number",
                    }
                ),
            }),
        }
    }
    for (name, decl) in declared.into_iter().flatten() {
        let required = decl["isOptional"] != true && decl.get("defaultValue").is_none();
        if required && !given.contains_key(name) {
            let message = format!(
                "parameter {name:?} is required (no default) but the suite gives none: add it under the override's parameters"
            );
            problems.push(ParameterProblem { name: name.clone(), message });
        }
    }
    if problems.is_empty() { Ok(typed) } else { Err(problems) }
}

/// Why a Python pipeline could not be compiled, or a compiled one read.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("compiling {} with the KFP SDK {sdk}: {source}", source_file.display())]
    Compile {
        source_file: PathBuf,
        sdk: String,
        #[source]
        source: CommandError,
    },
    #[error(transparent)]
    File(#[from] FileError),
    /// The compiled file does not read as YAML (at its position).
    #[error(transparent)]
    Read(#[from] crate::util::error::Error),
    #[error("{} holds no compiled pipeline", .0.display())]
    NotCompiled(PathBuf),
}

/// The KFP SDK's version (`kfp --version`), part of every compiled pipeline's cache key.
pub async fn sdk_version() -> Result<String, CommandError> {
    let out = command::output("kfp", &["--version"], None).await?;
    Ok(out.trim().trim_start_matches("kfp").trim().to_string())
}

/// A Python pipeline compiled with the real SDK, or its compiled result from the cache (keyed
/// by the source's content hash and the SDK version): the compiled file and whether it was a
/// cache hit.
/// The compile cache's key: the SDK's version, the source, and every local module it imports
/// (`import helper`, `from helper import x`, `from .helper import x`, `from pkg.mod import x`:
/// a `.py` file or package folder beside it), followed transitively, so an edit of a helper
/// the pipeline imports compiles it again.
fn compile_key(source: &Path, sdk: &str) -> Result<String, FileError> {
    let dir = source.parent().unwrap_or(Path::new("."));
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut queue = vec![source.to_path_buf()];
    let mut material = format!("{sdk}\n");
    while let Some(file) = queue.pop() {
        if seen.contains(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|e| FileError::read(&file, e))?;
        material.push_str(&format!("\0{}\0{text}", crate::util::files::relative(dir, &file).display()));
        queue.extend(local_imports(dir, &text));
        seen.push(file);
    }
    Ok(short_hash(&material))
}

/// The files of `dir` that a Python source's imports name: `name.py`, or every `.py` of the
/// package folder `name/`.
fn local_imports(dir: &Path, text: &str) -> Vec<PathBuf> {
    let mut names = Vec::new();
    for line in text.lines().map(str::trim_start) {
        if let Some(rest) = line.strip_prefix("from ") {
            names.extend(rest.split_whitespace().next().map(|m| m.trim_start_matches('.').to_string()));
        } else if let Some(rest) = line.strip_prefix("import ") {
            names.extend(rest.split(',').filter_map(|m| m.split_whitespace().next().map(str::to_string)));
        }
    }
    let mut files = Vec::new();
    for name in names {
        let Some(top) = name.split('.').next().filter(|t| !t.is_empty()) else { continue };
        let module = dir.join(format!("{top}.py"));
        if module.is_file() {
            files.push(module);
        } else if dir.join(top).is_dir() {
            let mut package: Vec<PathBuf> = ignore::WalkBuilder::new(dir.join(top))
                .standard_filters(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|p| p.extension().is_some_and(|x| x == "py"))
                .collect();
            package.sort();
            files.extend(package);
        }
    }
    files
}

pub async fn compile(source: &Path, sdk: &str) -> Result<(PathBuf, bool), CompileError> {
    let key = compile_key(source, sdk)?;
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let cached = cache_dir().join("pipelines").join(format!("{stem}-{key}.yaml"));
    if cached.is_file() {
        return Ok((cached, true));
    }
    let dir = cached.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FileError::write(dir, e))?;
    let out = dir.join(format!(".{stem}-{key}.compiling.yaml"));
    let (src, dst) = (source.to_string_lossy(), out.to_string_lossy());
    command::output("kfp", &["dsl", "compile", "--py", &src, "--output", &dst], None).await.map_err(
        |source_error| CompileError::Compile {
            source_file: source.to_path_buf(),
            sdk: sdk.to_string(),
            source: source_error,
        },
    )?;
    let compiled = std::fs::read(&out).map_err(|e| FileError::read(&out, e))?;
    let _ = std::fs::remove_file(&out);
    write_atomically(&cached, &compiled).map_err(|e| FileError::write(&cached, e))?;
    Ok((cached, false))
}

/// `kubevet render`'s part for pipelines: every Python pipeline the suite compiles, compiled
/// into the cache (or found there), one line each: `PIPELINE  SDK  CACHE  FILE`. Exit 0, or 3
/// when one did not compile.
pub async fn compile_command(suite: &crate::suite::Suite) -> crate::util::error::Result<i32> {
    let sources: Vec<super::Picked> =
        super::example_files(suite).into_iter().filter(|p| p.example && p.rel.ends_with(".py")).collect();
    if sources.is_empty() {
        return Ok(0);
    }
    let sdk = sdk_version().await?;
    let mut failed = false;
    println!("PIPELINE\tSDK\tCACHE\tFILE");
    for source in sources {
        match compile(&source.path, &sdk).await {
            Ok((file, hit)) => {
                println!("{}\t{sdk}\t{}\t{}", source.rel, if hit { "hit" } else { "miss" }, file.display())
            }
            Err(e) => {
                eprintln!("kubevet: pipeline {}: {e}", source.rel);
                failed = true;
            }
        }
    }
    Ok(if failed { crate::util::error::EXIT_INFRASTRUCTURE } else { 0 })
}

/// The compiled file's pipeline documents.
pub fn read_compiled(path: &Path) -> Result<PipelineSource, CompileError> {
    let text = yaml::read(path)?;
    let docs = yaml::documents(path, &text)?;
    compiled(&docs).ok_or_else(|| CompileError::NotCompiled(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_typed_as_declared() {
        let spec = json!({"root": {"inputDefinitions": {"parameters": {
            "epochs": {"parameterType": "NUMBER_INTEGER"},
            "rate": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.5, "isOptional": true},
        }}}});
        let given = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(typed_parameters(&spec, &given(json!({"epochs": 3}))).is_ok());
        let problems = typed_parameters(&spec, &given(json!({"epochs": "3", "lr": 1}))).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("declared NUMBER_INTEGER"), "{problems:?}");
        assert_eq!(problems[1].name, "lr");
        assert!(problems[1].message.contains("\"lr\" is not declared") && problems[1].message.contains("epochs, rate"));
        let missing = typed_parameters(&spec, &Map::new()).unwrap_err();
        assert!(missing[0].message.contains("\"epochs\" is required"), "{missing:?}");
    }

    #[test]
    fn the_compile_key_covers_the_local_modules_a_pipeline_imports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("pipe.py", "import kfp\nfrom helper import make\nimport pkg.steps as steps\n");
        write("helper.py", "from .deep import x\n");
        write("deep.py", "x = 1\n");
        write("pkg/steps.py", "y = 2\n");
        write("unrelated.py", "z = 3\n");
        let source = dir.path().join("pipe.py");
        let key = || compile_key(&source, "2.15.2").expect("key");
        let first = key();
        write("unrelated.py", "z = 4\n");
        assert_eq!(key(), first, "a module it does not import changes nothing");
        for (file, text) in
            [("helper.py", "from .deep import x\n# edited\n"), ("deep.py", "x = 2\n"), ("pkg/steps.py", "y = 3\n")]
        {
            let before = key();
            write(file, text);
            assert_ne!(key(), before, "{file}, imported (transitively), is part of the key");
        }
        assert_ne!(compile_key(&source, "2.16.0").expect("key"), key(), "the SDK's version too");
    }

    #[test]
    fn caching_is_turned_off_in_every_dag() {
        let mut spec = json!({
            "root": {"dag": {"tasks": {"a": {"cachingOptions": {"enableCache": true}}, "b": {}, "c": {"cachingOptions": "odd"}}}},
            "components": {"comp-inner": {"dag": {"tasks": {"d": {"cachingOptions": {"enableCache": true}}}}}, "comp-x": {}},
        });
        assert_eq!(without_cache(&mut spec), 4);
        for path in
            ["/root/dag/tasks/a", "/root/dag/tasks/b", "/root/dag/tasks/c", "/components/comp-inner/dag/tasks/d"]
        {
            assert_eq!(spec.pointer(&format!("{path}/cachingOptions/enableCache")), Some(&json!(false)), "{path}");
        }
        assert_eq!(without_cache(&mut spec), 0, "already off");
    }

    #[test]
    fn unchanged_content_keeps_its_version_name() {
        let (_, a) = upload(&json!({"pipelineInfo": {"name": "x"}}), None);
        let (_, b) = upload(&json!({"pipelineInfo": {"name": "x"}}), None);
        let (_, c) = upload(&json!({"pipelineInfo": {"name": "y"}}), None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("kv-"));
    }
}
