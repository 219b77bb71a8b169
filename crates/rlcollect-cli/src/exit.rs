//! From an error to what the user sees: one message line and an exit code,
//! both read off the error chain (as ripgrep does), never off a string.

/// Exit code 2 for usage and configuration errors anywhere in the chain, 1
/// for everything else (a full disk, a dead worker, a corrupt file, ...).
pub fn code(e: &anyhow::Error) -> u8 {
    let config = e
        .chain()
        .filter_map(|cause| cause.downcast_ref::<rlcollect::Error>())
        .any(rlcollect::Error::is_config);
    if config {
        2
    } else {
        1
    }
}

/// The error and its causes on one line. A library error already shows its
/// cause's message, so a cause whose text is already there is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlcollect::Error;

    fn disk_full() -> Error {
        Error::Checkpoint {
            source: Box::new(Error::Io {
                context: "create trades/.part-000001.parquet.tmp".into(),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            }),
        }
    }

    #[test]
    fn a_full_disk_is_1_and_configuration_anywhere_in_the_chain_is_2() {
        assert_eq!(
            code(&anyhow::Error::new(disk_full()).context("ingesting spool files")),
            1
        );
        let config = anyhow::Error::new(Error::Config("bad".into())).context("starting");
        assert_eq!(code(&config), 2);
        let wrapped = Error::Recovery {
            run_dir: "r".into(),
            source: Box::new(Error::Config("bad".into())),
        };
        assert_eq!(code(&anyhow::Error::new(wrapped)), 2);
    }

    #[test]
    fn messages_name_each_cause_once() {
        let e = anyhow::Error::new(disk_full()).context("ingesting spool files");
        let text = message(&e);
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        assert!(
            text.starts_with("ingesting spool files: checkpoint failed: create "),
            "{text}"
        );
    }
}
