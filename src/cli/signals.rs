//! Ctrl-C and SIGTERM during training: the first asks the loop to stop after the current
//! step (it then saves a checkpoint and exits 130 or 143), a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// A stop requested by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

impl Stop {
    /// The shell's exit status for death by this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT (Ctrl-C)",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// Watches SIGINT and SIGTERM from [`StopRequests::install`] on.
pub struct StopRequests {
    signal: Arc<AtomicUsize>,
}

impl StopRequests {
    pub fn install() -> anyhow::Result<StopRequests> {
        let armed = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
            // Handlers run in the order registered: the shutdown checks the flag before the
            // first signal sets it, so only a second signal exits straight away.
            signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&armed))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
            signal_hook::flag::register(sig, Arc::clone(&armed))?;
        }
        Ok(StopRequests { signal })
    }

    /// The signal that asked to stop, if one has.
    pub fn requested(&self) -> Option<Stop> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s if s == SIGTERM as usize => Some(Stop::Terminate),
            _ => Some(Stop::Interrupt),
        }
    }
}
