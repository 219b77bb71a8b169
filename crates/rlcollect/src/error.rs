//! Errors of the library. Each variant says when it happens; none is a panic.

use std::path::PathBuf;

/// Why one NDJSON line was rejected (SPEC §2 "Bad input"). The line goes to
/// `rejected.ndjson` with this message; nothing else is lost.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The line's bytes are not UTF-8.
    #[error("not valid UTF-8 (at byte {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The line is not JSON (or is truncated).
    #[error("not valid JSON at byte {offset}: {message}")]
    InvalidJson {
        /// Byte offset where reading failed.
        offset: usize,
        /// What was wrong there.
        message: &'static str,
    },
    /// The line is JSON but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// The object has no `stream` field.
    #[error("no stream field")]
    MissingStream,
    /// `stream` is not a valid stream name.
    #[error("invalid stream name {0:?}: expected one of the core streams or [a-z][a-z0-9_]{{0,63}}")]
    InvalidStreamName(String),
    /// A required core field is missing or null.
    #[error("required field {field} is missing")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A core field has a value that cannot be coerced to its type.
    #[error("core field {field}: {value} is not {expected}")]
    WrongType {
        /// The field's name.
        field: String,
        /// The offending value as JSON text (cut to 64 bytes).
        value: String,
        /// What the field needs, e.g. "a number".
        expected: &'static str,
    },
    /// A field name reserved for the collector's own columns (`_seq`, ...).
    #[error("field {0} is reserved for the collector")]
    ReservedField(String),
    /// A control record with an unknown or missing `op`.
    #[error("unknown control op {0:?} (expected \"checkpoint\", \"hello\" or \"bye\")")]
    UnknownControl(String),
    /// The line is longer than the configured maximum.
    #[error("line is {len} bytes, over the limit of {max} bytes")]
    LineTooLong {
        /// The line's length (or a lower bound when it was cut while reading).
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Errors of the collector itself.
///
/// A variant that wraps a cause says what failed and shows the cause's message
/// too, so `to_string()` alone is a complete sentence for a log line; the cause
/// is also its [`source`](std::error::Error::source), for callers that walk the
/// chain (the `rlcollect` binary picks its exit code that way).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed; `context` says which operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding a part file failed.
    #[error("writing {path}: {message}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// Another collector holds the run directory's lock.
    #[error("run directory {run_dir} is already in use by another collector ({holder})")]
    RunLocked {
        /// The run directory.
        run_dir: PathBuf,
        /// Who holds it, from the lock file: pid, run, start time.
        holder: String,
    },
    /// A configuration value is not usable (the caller's mistake, not the disk's).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file of a run (manifest, summary) could not be understood.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The output filesystem has less free space than required.
    #[error("only {available_mb} MiB free for {path}; at least {required_mb} MiB are required (min free space)")]
    LowDiskSpace {
        /// The output folder.
        path: PathBuf,
        /// Free space now.
        available_mb: u64,
        /// The configured minimum.
        required_mb: u64,
    },
    /// A checkpoint could not publish the buffered rows. They stay in memory
    /// (and in the write-ahead log) and the next checkpoint retries.
    #[error("checkpoint failed: {source}")]
    Checkpoint {
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The final flush of a run failed. Its status stays `running` and its
    /// write-ahead log stays intact, so `recover` can finish it.
    #[error("final flush of {run_dir} failed: {source}")]
    FinalFlush {
        /// The run directory.
        run_dir: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Recovering a crashed run failed; the run is left as it was.
    #[error("recovering {run_dir} failed: {source}")]
    Recovery {
        /// The run directory.
        run_dir: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The worker thread is gone (it panicked or was already shut down).
    #[error("the collector's worker thread has stopped")]
    WorkerGone,
    /// The shutdown handshake did not complete in time.
    #[error("the final flush did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// True when the error is the caller's configuration, not the machine:
    /// `Config` itself, or a wrapper around it.
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config(_) => true,
            Error::Checkpoint { source } | Error::FinalFlush { source, .. } | Error::Recovery { source, .. } => {
                source.is_config()
            }
            _ => false,
        }
    }
}
