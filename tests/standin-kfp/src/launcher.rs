//! The launcher a task's `main` container runs its command through, as KFP's `kfp-launcher`
//! does: it makes the outputs folder, runs the user's command with its own standard streams,
//! and hands the output parameters back — here as the container's termination message (a
//! JSON object of name to value), which the runner reads from the pod's status. Output
//! artifacts get their folders made first and must exist after a command that succeeded, as
//! the real launcher uploads them (here they stay where they are: on the node's store).

use std::{collections::BTreeMap, io::Write, os::unix::fs::PermissionsExt, process::Command};

/// Where `{{$.outputs.parameters['x'].output_file}}` points, as in KFP.
pub const OUTPUTS_DIR: &str = "/tmp/kfp/outputs";

/// `copy-launcher DEST`: this binary into the shared volume (the `kfp-launcher` init container).
pub fn copy_self(dest: Option<&str>) -> i32 {
    let Some(dest) = dest else {
        eprintln!("copy-launcher: no destination");
        return 2;
    };
    let copied = std::env::current_exe()
        .and_then(|me| std::fs::copy(me, dest))
        .and_then(|_| std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)));
    match copied {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("copy-launcher: {dest}: {e}");
            1
        }
    }
}

/// The comma-separated list after `flag` among the launcher's own arguments.
fn list<'a>(own: &'a [String], flag: &str) -> Vec<&'a str> {
    own.iter()
        .position(|a| a == flag)
        .and_then(|i| own.get(i + 1))
        .map(|list| list.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// `launch [--outputs a,b] [--artifacts PATH,…] -- COMMAND…`: the exit code is the command's.
pub fn launch(args: &[String]) -> i32 {
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (own, command) = (&args[..split], args.get(split + 1..).unwrap_or_default());
    let outputs = list(own, "--outputs");
    let artifacts = list(own, "--artifacts");
    for path in &artifacts {
        if let Some(parent) = std::path::Path::new(path).parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("launcher: failed to prepare the output artifact folder {}: {e}", parent.display());
            return 1;
        }
    }
    let Some((program, rest)) = command.split_first() else {
        eprintln!("launcher: no command to run");
        return 2;
    };
    if let Err(e) = std::fs::create_dir_all(OUTPUTS_DIR) {
        eprintln!("launcher: cannot create {OUTPUTS_DIR}: {e}");
    }
    eprintln!("I launcher.go] TEST STAND-IN launcher: executing {command:?}");
    let status = match Command::new(program).args(rest).status() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("launcher: cannot run {program}: {e}");
            return 127;
        }
    };
    let code = status.code().unwrap_or(1);
    if code == 0
        && let Some(missing) = artifacts.iter().find(|p| !std::path::Path::new(p).exists())
    {
        eprintln!("launcher: failed to upload output artifact {missing}: the command did not write it");
        return 1;
    }
    let mut values = BTreeMap::new();
    for name in outputs {
        match std::fs::read_to_string(format!("{OUTPUTS_DIR}/{name}")) {
            Ok(text) => {
                values.insert(name.to_string(), text);
            }
            Err(e) if code == 0 => {
                eprintln!("launcher: output parameter {name} was not written ({e})");
                return 1;
            }
            Err(_) => {}
        }
    }
    let message = serde_json::to_string(&values).unwrap_or_default();
    if let Ok(mut f) = std::fs::File::create("/dev/termination-log") {
        let _ = f.write_all(message.as_bytes());
    }
    eprintln!("I launcher.go] TEST STAND-IN launcher: command exited with code {code}");
    code
}
