//! `kubevet sweep --schedule CRON`: stays up and starts a run at each trigger of a cron
//! schedule (croner: five fields, or six with seconds). Each run is made afresh (the suite
//! read again, floating versions resolved again) and added to the history, its report
//! written. Never two at once: a trigger that falls during a run is skipped and logged; no
//! catch-up of triggers missed during a run or a pause. SIGTERM or SIGINT between runs stops
//! it at once; during a run, the run is interrupted as `kubevet run` is and the sweep ends.

use croner::{Cron, parser::CronParser, parser::Seconds};
use jiff::Zoned;
use tracing::{info, warn};

use crate::{
    session::Session,
    util::error::{EXIT_INTERRUPTED, Error, Result},
};

pub fn schedule(pattern: &str) -> Result<Cron> {
    CronParser::builder().seconds(Seconds::Optional).build().parse(pattern).map_err(|e| {
        Error::usage(format!(
            "--schedule {pattern:?}: {e}; write a cron schedule: five fields (\"0 3 * * *\": at 03:00 every day) or six with seconds first (\"*/30 * * * * *\")"
        ))
    })
}

/// Runs a session at each trigger; `make` builds each one afresh. With `once`, one run now.
pub async fn sweep(cron: Option<Cron>, once: bool, make: impl Fn() -> Result<Session>) -> Result<i32> {
    let mut cancel = crate::util::interrupt::interrupt_signal();
    loop {
        if !once {
            let cron = cron.as_ref().ok_or_else(|| Error::usage("--schedule is needed without --once"))?;
            let now = Zoned::now();
            let next = cron
                .find_next_occurrence(&now, false)
                .map_err(|e| Error::usage_because("the schedule has no next trigger", e))?;
            let wait = next.duration_since(&now).unsigned_abs();
            info!(next = %next.timestamp(), "waiting for the next trigger");
            eprintln!("kubevet sweep: next run at {}", next.timestamp());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.wait_for(|c| *c) => {
                    eprintln!("kubevet sweep: stopped between runs");
                    return Ok(0);
                }
            }
        }
        let started = Zoned::now();
        eprintln!("kubevet sweep: run starting at {}", started.timestamp());
        let code = match make() {
            Ok(session) => session.run(cancel.clone()).await?,
            // A suite broken since the last run: said, and the sweep goes on to the next trigger.
            Err(e) if !once => {
                warn!("this trigger's run could not start: {e}");
                eprintln!("kubevet sweep: run not started: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        eprintln!("kubevet sweep: run ended at {} (exit code {code})", jiff::Timestamp::now());
        if code == EXIT_INTERRUPTED || *cancel.borrow() {
            eprintln!("kubevet sweep: stopped during a run");
            return Ok(EXIT_INTERRUPTED);
        }
        if once {
            return Ok(code);
        }
        // Triggers that fell while the run went on are skipped, not made up for.
        if let Some(cron) = &cron {
            let ended = Zoned::now();
            let mut after = started.clone();
            while let Ok(missed) = cron.find_next_occurrence(&after, false) {
                if missed >= ended {
                    break;
                }
                warn!(trigger = %missed.timestamp(), "skipped: a run was still going");
                eprintln!("kubevet sweep: skipped the trigger at {}: a run was still going", missed.timestamp());
                after = missed;
            }
        }
    }
}
