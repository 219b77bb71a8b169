//! SIGINT, SIGTERM and SIGHUP (`ctrlc` with `termination`): the handler only
//! sends an event; the main thread does the rest. A second signal exits 1 at
//! once, after saying so.

use super::inputs::Event;
use anyhow::{Context, Result};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many termination signals arrived; the second one exits at once.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler; every first signal becomes [`Event::Signal`].
pub fn install_signal_handler(events: Sender<Event>) -> Result<()> {
    ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = events.send(Event::Signal);
        } else {
            eprintln!("rlcollect: second signal during the final flush: exiting now without finishing it");
            std::process::exit(1);
        }
    })
    .context("installing the signal handler")
}
