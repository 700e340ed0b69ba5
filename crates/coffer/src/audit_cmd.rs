//! `coffer audit verify FILE`, and opening the audit log for `coffer serve`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Settings;

/// Checks the hash chain of an audit log. Exit 0 with a summary when intact; exit 1 naming
/// the first altered, removed or reordered record (line number and reason); exit 2 when the
/// file cannot be read.
pub fn verify(file: &Path) -> ExitCode {
    let opened = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("coffer: cannot open {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match coffer_audit::verify(std::io::BufReader::new(opened)) {
        Err(e) => {
            eprintln!("coffer: cannot read {}: {e}", file.display());
            ExitCode::from(2)
        }
        Ok(Ok(summary)) => {
            println!(
                "{}: intact, {} records{}; head {}",
                file.display(),
                summary.records,
                match (&summary.first_time, &summary.last_time) {
                    (Some(a), Some(b)) => format!(" from {a} to {b}"),
                    _ => String::new(),
                },
                hex_of(&summary.head)
            );
            ExitCode::SUCCESS
        }
        Ok(Err(broken)) => {
            println!("{}: NOT intact", file.display());
            println!("{}: {broken}", file.display());
            ExitCode::from(1)
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the configured audit log (default `<data_dir>/audit.log`), continuing its chain.
pub fn open(settings: &Settings) -> anyhow::Result<Arc<coffer_audit::AuditLog>> {
    let path = settings.audit_log_path();
    let log = coffer_audit::AuditLog::open(
        &path,
        coffer_audit::Options {
            fsync: settings.audit_fsync,
        },
    )?;
    tracing::info!(path = %path.display(), fsync = settings.audit_fsync, "Audit log open");
    Ok(Arc::new(log))
}
