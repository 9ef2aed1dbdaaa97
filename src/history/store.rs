//! The run history: an embedded SQLite database (bundled, nothing to install), by default in
//! kubevet's cache folder. Every run is one transaction of rows: the run, its cells (the
//! Kubernetes version asked for, the server's, the node image) and per case and attempt the
//! outcome, class, reason, seconds and phases. The schema is versioned (`user_version`) and
//! migrated forward; concurrent writers wait for each other (WAL, a busy timeout, immediate
//! transactions); a damaged file is set aside under a new name and reported, never truncated.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};
use serde_json::Value;

use crate::util::run_file::{MetricFile, RunFile, UsageFile};

/// What went wrong with the history database: SQLite's own error kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("integrity check failed: {0}")]
    Damaged(String),
    #[error("the history's {what} does not read back: {source}")]
    Unreadable {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} has history schema {found}, newer than this kubevet's ({supported}); upgrade kubevet or use --history with another file"
    )]
    Newer { path: PathBuf, found: usize, supported: usize },
    #[error("migrating the history to schema {schema}: {source}")]
    Migration {
        schema: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{damage}; and it cannot be moved aside: {source}")]
    CannotSetAside {
        damage: Box<StoreError>,
        #[source]
        source: std::io::Error,
    },
}

/// Each entry takes the schema one version further; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: runs, cells, cases and attempts.
    "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        suite TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT NOT NULL,
        versions TEXT NOT NULL,
        changed TEXT NOT NULL,
        root TEXT
    );
    CREATE INDEX runs_by_suite ON runs (suite, started);
    CREATE TABLE cells (
        run TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        cell INTEGER NOT NULL,
        kubernetes TEXT NOT NULL,
        asked TEXT,
        server TEXT,
        image TEXT,
        PRIMARY KEY (run, cell)
    );
    CREATE TABLE cases (
        run TEXT NOT NULL,
        cell INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        name TEXT NOT NULL,
        profile TEXT,
        tier TEXT,
        outcome TEXT NOT NULL,
        class TEXT,
        reason TEXT,
        seconds REAL NOT NULL,
        phases TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        artifacts TEXT,
        log_tail TEXT,
        PRIMARY KEY (run, cell, case_id),
        FOREIGN KEY (run, cell) REFERENCES cells (run, cell) ON DELETE CASCADE
    );
    CREATE INDEX cases_by_id ON cases (case_id);
    CREATE TABLE attempts (
        run TEXT NOT NULL,
        cell INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        class TEXT,
        reason TEXT,
        seconds REAL NOT NULL,
        PRIMARY KEY (run, cell, case_id, attempt),
        FOREIGN KEY (run, cell, case_id) REFERENCES cases (run, cell, case_id) ON DELETE CASCADE
    );",
    // 2: a cell's setup time (cluster up, images loaded, operators installed), which plans
    // take as a shard's fixed cost; unknown (NULL) for runs recorded before.
    "ALTER TABLE cells ADD COLUMN setup_seconds REAL;",
    // 3: the shards a merged run was made of, predicted against actual, so that plans can
    // say how far off the last ones were.
    "CREATE TABLE shards (
        run TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        shard TEXT NOT NULL,
        kubernetes TEXT,
        attempt INTEGER NOT NULL,
        cases INTEGER NOT NULL,
        predicted_seconds REAL NOT NULL,
        actual_seconds REAL,
        PRIMARY KEY (run, shard)
    );",
    // 4: what each container of a case used, and the case's totals (core-seconds summed, the
    // highest peak, the least coverage) that health compares run over run; NULL: not measured.
    "CREATE TABLE container_usage (
        run TEXT NOT NULL,
        cell INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        pod TEXT NOT NULL,
        container TEXT NOT NULL,
        cpu_seconds REAL,
        peak_memory_bytes REAL,
        coverage REAL NOT NULL,
        low_confidence INTEGER NOT NULL,
        oom_killed INTEGER NOT NULL,
        average_cores REAL,
        runtime_seconds REAL,
        cpu_request REAL,
        cpu_limit REAL,
        memory_request REAL,
        memory_limit REAL,
        accelerators TEXT NOT NULL,
        PRIMARY KEY (run, cell, case_id, pod, container),
        FOREIGN KEY (run, cell, case_id) REFERENCES cases (run, cell, case_id) ON DELETE CASCADE
    );
    ALTER TABLE cases ADD COLUMN cpu_seconds REAL;
    ALTER TABLE cases ADD COLUMN peak_memory_bytes REAL;
    ALTER TABLE cases ADD COLUMN usage_coverage REAL;",
    // 5: a case's metric assertions as judged (JSON, as run.json has them), which the report
    // shows with their series before, after and the change; NULL: none.
    "ALTER TABLE cases ADD COLUMN metrics TEXT;",
];

pub struct Store {
    conn: Connection,
    pub path: PathBuf,
    /// Where a damaged file was moved, when it was.
    pub set_aside: Option<PathBuf>,
}

/// One run as the history holds it.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub suite: String,
    pub started: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    pub versions: Value,
    pub changed: Vec<String>,
    /// The folder its `run.json` was in, for links to evidence.
    pub root: Option<String>,
    pub cells: Vec<CellRow>,
}

/// One shard of a merged run: predicted and actual seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardRow {
    pub shard: String,
    pub kubernetes: Option<String>,
    pub attempt: u32,
    pub cases: usize,
    pub predicted_seconds: f64,
    /// None: the shard reported nothing.
    pub actual_seconds: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct CellRow {
    /// The Kubernetes version this cell stands for: the one asked for, else the server's.
    pub kubernetes: String,
    pub server: Option<String>,
    pub image: Option<String>,
    /// The version the matrix asked for (none for an existing cluster).
    pub asked: Option<String>,
    /// From the cell's start to its first case, where recorded.
    pub setup_seconds: Option<f64>,
    pub cases: Vec<CaseRow>,
}

#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: String,
    pub name: String,
    pub profile: Option<String>,
    pub tier: Option<String>,
    pub outcome: String,
    pub class: Option<String>,
    pub reason: Option<String>,
    pub seconds: f64,
    pub phases: Value,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    pub artifacts: Option<String>,
    pub log_tail: Option<String>,
    /// The case's containers' core-seconds summed, their highest peak memory, and the least
    /// of their coverages; none when nothing was measured.
    pub cpu_seconds: Option<f64>,
    pub peak_memory_bytes: Option<f64>,
    pub usage_coverage: Option<f64>,
}

/// The metric assertions of one case of a run, as `run.json` gave them.
#[derive(Debug, Clone)]
pub struct CaseMetrics {
    pub cell: i64,
    pub case_id: String,
    pub checks: Vec<MetricFile>,
}

/// One container of a case of a run, as the history keeps its usage: the figures as
/// `run.json` gives them, read back.
#[derive(Debug, Clone, Default)]
pub struct ContainerRow {
    pub cell: i64,
    pub case_id: String,
    pub usage: UsageFile,
}

impl StoreError {
    /// The file is not a sound SQLite database (not one at all, or corrupt).
    fn is_damage(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match self {
            StoreError::Damaged(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, NotADatabase | DatabaseCorrupt)
            }
            _ => false,
        }
    }
}

/// How long a writer waits for another to finish.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

impl Store {
    /// Opens (or makes) the history at `path`, migrated to this kubevet's schema. A file that
    /// is not a sound SQLite database is moved aside (`<path>.damaged-<time>`) and a new one
    /// started; one written by a newer kubevet is refused, not touched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut set_aside = None;
        let conn = match Self::connect(path) {
            Ok(conn) => conn,
            // Only a file SQLite calls damaged is set aside: one it cannot open (a folder, no
            // permission) is an error, never moved.
            Err(why) if path.is_file() && why.is_damage() => {
                let aside = PathBuf::from(format!("{}.damaged-{}", path.display(), jiff::Timestamp::now().as_second()));
                if let Err(source) = std::fs::rename(path, &aside) {
                    return Err(StoreError::CannotSetAside { damage: Box::new(why), source });
                }
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                tracing::warn!(history = %path.display(), moved_to = %aside.display(), "the history database is damaged ({why}); it was set aside and a new one started");
                set_aside = Some(aside);
                Self::connect(path)?
            }
            Err(why) => return Err(why),
        };
        let mut store = Store { conn, path: path.to_path_buf(), set_aside };
        store.migrate()?;
        Ok(store)
    }

    /// A history that lives as long as the process: a report of one run with `--no-history`.
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        let mut store = Store { conn, path: PathBuf::from(":memory:"), set_aside: None };
        store.migrate()?;
        Ok(store)
    }

    /// A connection, checked and in WAL mode. Two processes that open a new file at once
    /// can meet SQLite's busy error where its busy handler is not called (the switch to WAL
    /// takes the file whole): that is retried, within the same 30 s a writer would wait.
    fn connect(path: &Path) -> Result<Connection, StoreError> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::try_connect(path) {
                Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                    if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn try_connect(path: &Path) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(sql)?;
        if check != "ok" {
            return Err(StoreError::Damaged(check));
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        Ok(conn)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
        let version = version.max(0) as usize;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Newer { path: self.path.clone(), found: version, supported: MIGRATIONS.len() });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(migration).map_err(|source| StoreError::Migration { schema: i + 1, source })?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Adds one run (its `run.json`; `root` the folder it was in). False when a run with its
    /// id is there already: importing twice stores once.
    pub fn append(&mut self, run: &RunFile, root: Option<&Path>) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO runs (id, suite, started, ended, versions, changed, root) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run.id,
                run.suite,
                run.started,
                run.ended,
                serde_json::to_string(&run.versions).unwrap_or_default(),
                serde_json::to_string(&run.changed).unwrap_or_default(),
                root.map(|r| r.to_string_lossy().into_owned()),
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        for (c, cell) in run.cells.iter().enumerate() {
            let c = i64::try_from(c).unwrap_or(i64::MAX);
            let kubernetes = cell.kubernetes_version.clone().unwrap_or_else(|| cell.kubernetes.clone());
            tx.execute(
                "INSERT INTO cells (run, cell, kubernetes, asked, server, image, setup_seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run.id, c, kubernetes, cell.kubernetes_version, cell.kubernetes, cell.image, cell.setup_seconds],
            )?;
            let mut case_insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO cases (run, cell, case_id, name, profile, tier, outcome, class, reason, seconds, phases, attempts, artifacts, log_tail,
                 cpu_seconds, peak_memory_bytes, usage_coverage, metrics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?;
            let mut usage_insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO container_usage (run, cell, case_id, pod, container, cpu_seconds, peak_memory_bytes, coverage, low_confidence, oom_killed,
                 average_cores, runtime_seconds, cpu_request, cpu_limit, memory_request, memory_limit, accelerators)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            let mut attempt_insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO attempts (run, cell, case_id, attempt, outcome, class, reason, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for case in &cell.cases {
                let attempts = i64::try_from(case.attempts.len()).unwrap_or(i64::MAX).saturating_add(1);
                case_insert.execute(params![
                    run.id,
                    c,
                    case.id,
                    case.name,
                    case.profile,
                    case.tier,
                    case.outcome,
                    case.class,
                    case.reason,
                    case.seconds,
                    serde_json::to_string(&case.phases).unwrap_or_default(),
                    attempts,
                    case.artifacts,
                    case.log_tail,
                    case.usage.iter().filter_map(|u| u.cpu_seconds).reduce(|a, b| a + b),
                    case.usage.iter().filter_map(|u| u.peak_memory_bytes).reduce(f64::max),
                    case.usage.iter().map(|u| u.coverage).reduce(f64::min),
                    (!case.metrics.is_empty()).then(|| serde_json::to_string(&case.metrics).unwrap_or_default()),
                ])?;
                for u in &case.usage {
                    usage_insert.execute(params![
                        run.id,
                        c,
                        case.id,
                        u.pod,
                        u.container,
                        u.cpu_seconds,
                        u.peak_memory_bytes,
                        u.coverage,
                        u.low_confidence,
                        u.oom_killed,
                        u.average_cores,
                        u.runtime_seconds,
                        u.cpu_request_cores,
                        u.cpu_limit_cores,
                        u.memory_request_bytes,
                        u.memory_limit_bytes,
                        u.accelerators.join(",")
                    ])?;
                }
                // The earlier attempts, then the last: the case itself.
                let last = (&case.outcome, &case.class, &case.reason, case.seconds);
                let earlier = case.attempts.iter().map(|a| (&a.outcome, &a.class, &a.reason, a.seconds));
                for (n, (outcome, class, reason, seconds)) in earlier.chain(std::iter::once(last)).enumerate() {
                    let n = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1);
                    attempt_insert.execute(params![run.id, c, case.id, n, outcome, class, reason, seconds])?;
                }
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Runs of a suite (or of every suite), oldest first: the last `last` of them, started
    /// at or after `since`.
    pub fn runs(
        &self,
        suite: Option<&str>,
        last: usize,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<RunRow>, StoreError> {
        let since = since.map(|t| t.to_string()).unwrap_or_default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, suite, started, ended, versions, changed, root FROM runs
                 WHERE (?1 IS NULL OR suite = ?1) AND started >= ?2 ORDER BY started DESC, id DESC LIMIT ?3",
            )
            .map_err(sql)?;
        let mut runs: Vec<RunRow> = stmt
            .query_map(params![suite, since, last as i64], |r| {
                let time = |s: String| s.parse::<jiff::Timestamp>().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                Ok(RunRow {
                    id: r.get(0)?,
                    suite: r.get(1)?,
                    started: time(r.get(2)?),
                    ended: time(r.get(3)?),
                    versions: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                    changed: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    root: r.get(6)?,
                    cells: Vec::new(),
                })
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        runs.reverse();
        let mut cells = self
            .conn
            .prepare_cached(
                "SELECT cell, kubernetes, server, image, asked, setup_seconds FROM cells WHERE run = ?1 ORDER BY cell",
            )
            .map_err(sql)?;
        let mut cases = self
            .conn
            .prepare_cached(
                "SELECT case_id, name, profile, tier, outcome, class, reason, seconds, phases, attempts, artifacts, log_tail,
                 cpu_seconds, peak_memory_bytes, usage_coverage
                 FROM cases WHERE run = ?1 AND cell = ?2 ORDER BY name",
            )
            .map_err(sql)?;
        for run in &mut runs {
            let found: Vec<(i64, CellRow)> = cells
                .query_map(params![run.id], |r| {
                    Ok((
                        r.get(0)?,
                        CellRow {
                            kubernetes: r.get(1)?,
                            server: r.get(2)?,
                            image: r.get(3)?,
                            asked: r.get(4)?,
                            setup_seconds: r.get(5)?,
                            cases: Vec::new(),
                        },
                    ))
                })
                .map_err(sql)?
                .collect::<Result<_, _>>()
                .map_err(sql)?;
            for (index, mut cell) in found {
                cell.cases = cases
                    .query_map(params![run.id, index], |r| {
                        Ok(CaseRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            profile: r.get(2)?,
                            tier: r.get(3)?,
                            outcome: r.get(4)?,
                            class: r.get(5)?,
                            reason: r.get(6)?,
                            seconds: r.get(7)?,
                            phases: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or(Value::Null),
                            attempts: r.get(9)?,
                            artifacts: r.get(10)?,
                            log_tail: r.get(11)?,
                            cpu_seconds: r.get(12)?,
                            peak_memory_bytes: r.get(13)?,
                            usage_coverage: r.get(14)?,
                        })
                    })
                    .map_err(sql)?
                    .collect::<Result<_, _>>()
                    .map_err(sql)?;
                run.cells.push(cell);
            }
        }
        Ok(runs)
    }

    /// The shards a merged run was made of (a shard that reported nothing has no actual
    /// seconds); once per run.
    pub fn append_shards(&mut self, run: &str, shards: &[ShardRow]) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO shards (run, shard, kubernetes, attempt, cases, predicted_seconds, actual_seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for s in shards {
                let cases = i64::try_from(s.cases).unwrap_or(i64::MAX);
                insert.execute(params![
                    run,
                    s.shard,
                    s.kubernetes,
                    s.attempt,
                    cases,
                    s.predicted_seconds,
                    s.actual_seconds
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The latest shards recorded for a suite, newest first.
    pub fn shards(&self, suite: &str, last: usize) -> Result<Vec<ShardRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.shard, s.kubernetes, s.attempt, s.cases, s.predicted_seconds, s.actual_seconds
             FROM shards s JOIN runs r ON r.id = s.run WHERE r.suite = ?1 ORDER BY r.started DESC, s.shard LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![suite, i64::try_from(last).unwrap_or(i64::MAX)], |r| {
            Ok(ShardRow {
                shard: r.get(0)?,
                kubernetes: r.get(1)?,
                attempt: r.get(2)?,
                cases: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
                predicted_seconds: r.get(4)?,
                actual_seconds: r.get(5)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// The metric assertions of run `run`'s cases, by cell and case (cases with none left out).
    pub fn metric_checks(&self, run: &str) -> Result<Vec<CaseMetrics>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT cell, case_id, metrics FROM cases WHERE run = ?1 AND metrics IS NOT NULL ORDER BY cell, case_id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(sql)?;
        let mut found = Vec::new();
        for row in rows {
            let (cell, case_id, text) = row.map_err(sql)?;
            let checks = serde_json::from_str(&text)
                .map_err(|source| StoreError::Unreadable { what: format!("metric assertions of {case_id}"), source })?;
            found.push(CaseMetrics { cell, case_id, checks });
        }
        Ok(found)
    }

    /// What each container of run `run` used, by cell and case.
    pub fn container_usage(&self, run: &str) -> Result<Vec<ContainerRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT cell, case_id, pod, container, cpu_seconds, peak_memory_bytes, coverage, low_confidence, oom_killed,
                 average_cores, runtime_seconds, cpu_request, cpu_limit, memory_request, memory_limit, accelerators
                 FROM container_usage WHERE run = ?1 ORDER BY cell, case_id, pod, container",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![run], |r| {
                let accelerators: String = r.get(15)?;
                Ok(ContainerRow {
                    cell: r.get(0)?,
                    case_id: r.get(1)?,
                    usage: UsageFile {
                        pod: r.get(2)?,
                        container: r.get(3)?,
                        cpu_seconds: r.get(4)?,
                        peak_memory_bytes: r.get(5)?,
                        coverage: r.get(6)?,
                        low_confidence: r.get(7)?,
                        oom_killed: r.get(8)?,
                        average_cores: r.get(9)?,
                        runtime_seconds: r.get(10)?,
                        cpu_request_cores: r.get(11)?,
                        cpu_limit_cores: r.get(12)?,
                        memory_request_bytes: r.get(13)?,
                        memory_limit_bytes: r.get(14)?,
                        accelerators: accelerators.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
                        rest: Default::default(),
                    },
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// How many runs the history holds, and its schema version.
    pub fn summary(&self) -> Result<(usize, usize), StoreError> {
        let runs: i64 = self.conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).map_err(sql)?;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
        Ok((runs as usize, version as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_migrated_and_a_newer_schema_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.sqlite");
        let store = Store::open(&path).expect("a new history");
        assert_eq!(store.summary().expect("summary"), (0, MIGRATIONS.len()));
        drop(store);
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("pragma");
        drop(conn);
        let err = Store::open(&path).err().expect("refused").to_string();
        let expected = format!("has history schema 99, newer than this kubevet's ({})", MIGRATIONS.len());
        assert!(err.contains(&expected), "{err}");
        assert!(
            !dir.path().read_dir().expect("dir").flatten().any(|e| e.file_name().to_string_lossy().contains("damaged"))
        );
    }

    #[test]
    fn a_run_is_stored_once_with_its_cells_cases_and_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("h.sqlite")).expect("history");
        let run = serde_json::json!({"schemaVersion": 1, "id": "r1", "suite": "s", "started": "2026-12-01T00:00:00Z", "ended": "2026-12-01T00:01:00Z",
            "versions": {"op": "v1"}, "changed": [], "rendered": {},
            "cells": [{"run": "x", "kubernetesVersion": "1.33", "kubernetes": "v1.33.1", "image": "kindest/node:v1.33.1", "requests": {}, "leftBehind": [], "cases": [
                {"id": "a", "name": "a.yaml", "profile": "job", "outcome": "flaky", "seconds": 3.0, "phases": [], "artifacts": "a",
                 "attempts": [{"outcome": "failed", "class": "timeout", "seconds": 1.0}]}]}]});
        let run = RunFile::parse(&run.to_string()).expect("a run.json of this schema");
        assert!(store.append(&run, None).expect("stored"));
        assert!(!store.append(&run, None).expect("stored"), "the same run twice is stored once");
        let runs = store.runs(Some("s"), 10, None).expect("runs");
        let case = &runs[0].cells[0].cases[0];
        assert_eq!((runs[0].cells[0].kubernetes.as_str(), case.outcome.as_str(), case.attempts), ("1.33", "flaky", 2));
        let attempts: i64 = store.conn.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0)).expect("count");
        assert_eq!(attempts, 2);
    }
}
