//! Join or spawn: a producer connects to its run's sidecar, or starts one.
//!
//! Under an `flock` on `RUN/.spawn.lock` (so that of many producers starting
//! at once exactly one spawns), it connects to the run's socket; if nothing
//! answers it starts `rlcollect run --listen SOCKET --exit-when-idle` in a
//! session of its own, and keeps the first connection that succeeds as its
//! own: a probe that closed again could end an idle run at once.

use crate::error::Error;
use crate::run_dir::RunDir;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a spawned sidecar may take to open its socket (it may be
/// recovering a crashed run first).
const SPAWN_WAIT: Duration = Duration::from_secs(150);

/// A connection to the run's sidecar, and the sidecar if this process started it.
pub(crate) struct Joined {
    pub stream: UnixStream,
    pub child: Option<Child>,
}

/// Connects to the sidecar of `run`, starting one with `args` if none listens.
pub(crate) fn join_or_spawn(run: &RunDir, binary: Option<&Path>, args: &[OsString]) -> Result<Joined, Error> {
    std::fs::create_dir_all(run.path()).map_err(Error::io(format!("create {}", run.path().display())))?;
    let lock_path = run.spawn_lock_path();
    let lock = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&lock_path)
        .map_err(Error::io(format!("open {}", lock_path.display())))?;
    lock.lock()
        .map_err(Error::io(format!("lock {}", lock_path.display())))?;
    let socket = run.socket_path();
    if let Ok(stream) = UnixStream::connect(&socket) {
        return Ok(Joined { stream, child: None });
    }
    let binary = match binary {
        Some(b) => b.to_owned(),
        None => find_binary()?,
    };
    // A sidecar that finds only a dead producer's ring drains it and, with
    // `--exit-when-idle`, may end cleanly before this process connected.
    for _ in 0..3 {
        if let Some(joined) = start(&binary, run, &socket, args)? {
            return Ok(joined);
        }
        tracing::warn!("the sidecar ended before this producer connected; starting it again");
    }
    Err(Error::Io {
        context: format!(
            "{} run ended three times before this producer could connect",
            binary.display()
        ),
        source: std::io::Error::other("sidecar exited"),
    })
}

/// Starts one sidecar and connects to it; `None` when it ended cleanly first.
fn start(binary: &Path, run: &RunDir, socket: &Path, args: &[OsString]) -> Result<Option<Joined>, Error> {
    let mut child = spawn(binary, run, socket, args)?;
    let deadline = Instant::now() + SPAWN_WAIT;
    loop {
        if let Ok(stream) = UnixStream::connect(socket) {
            return Ok(Some(Joined {
                stream,
                child: Some(child),
            }));
        }
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(None),
            Ok(Some(status)) => {
                return Err(Error::Io {
                    context: format!("the sidecar {} exited ({status}) before listening", binary.display()),
                    source: std::io::Error::other("sidecar exited"),
                })
            }
            _ => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(Error::Timeout(SPAWN_WAIT));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(binary: &Path, run: &RunDir, socket: &Path, args: &[OsString]) -> Result<Child, Error> {
    let mut cmd = Command::new(binary);
    cmd.arg("run")
        .arg("--out")
        .arg(run.out())
        .arg("--run")
        .arg(run.id())
        .arg("--listen")
        .arg(socket)
        .args(["--exit-when-idle", "--wait-lock", "120"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    // A session of its own: a Ctrl-C meant for the engine does not stop the
    // collector; it ends when its last producer leaves.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(Error::io(format!("start the sidecar {}", binary.display())))
}

/// The `rlcollect` binary: `RLCOLLECT_BIN`, then `PATH`.
pub(crate) fn find_binary() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("RLCOLLECT_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("rlcollect"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::Config(
                "the rlcollect binary was not found: set RLCOLLECT_BIN or put it on PATH \
                 (cargo install --path crates/rlcollect-cli)"
                    .into(),
            )
        })
}
