//! Retention (`rlcollect gc`): removing a whole finished run, safely.

use super::{RunDir, RunLock, LATEST_LINK};
use crate::error::Error;
use crate::manifest::RunStatus;

impl RunDir {
    /// Removes this whole run. Refused while a collector holds it, and for a
    /// run whose status is still `running` (live, or crashed and not yet
    /// recovered: its log may hold rows no part has). The run's name goes
    /// first in one rename, so no reader ever sees half a run.
    pub fn remove_finished(&self) -> Result<(), Error> {
        let lock = RunLock::acquire(self)?;
        let manifest = self.load_manifest()?;
        if manifest.status == RunStatus::Running {
            return Err(Error::Io {
                context: format!("remove {}", self.path().display()),
                source: std::io::Error::other("it is running, or crashed and not recovered"),
            });
        }
        let doomed = self.out().join(format!(".{}.gc.tmp", self.id()));
        std::fs::rename(self.path(), &doomed).map_err(Error::io(format!(
            "rename {} to {}",
            self.path().display(),
            doomed.display()
        )))?;
        drop(lock);
        std::fs::remove_dir_all(&doomed).map_err(Error::io(format!("remove {}", doomed.display())))
    }

    /// The run `OUT/latest` points at, if any.
    pub fn latest_id(out: &std::path::Path) -> Option<String> {
        let target = std::fs::read_link(Self::latest(out)).ok()?;
        target.to_str().map(str::to_owned)
    }

    /// Points `OUT/latest` at `run`, or removes it when `None`.
    pub fn set_latest(out: &std::path::Path, run: Option<&RunDir>) -> Result<(), Error> {
        match run {
            Some(run) => run.point_latest(),
            None => {
                let link = out.join(LATEST_LINK);
                std::fs::remove_file(&link).map_err(Error::io(format!("remove {}", link.display())))
            }
        }
    }
}
