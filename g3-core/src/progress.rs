//! How a long library job tells its caller how far it got.
//!
//! Jobs that run for minutes or hours (embedding a photo set, building a database, training,
//! a dataset run) take a `&dyn Progress`. The `g3` command-line tool passes progress bars;
//! a library user passes [`NoProgress`] (or `&()`), or their own implementation that logs,
//! feeds a notebook widget or a metrics system. Every method has a default that does
//! nothing, so an implementation overrides only what it shows.

/// Receives a job's progress: phases of counted work, and notices for the user.
///
/// Calls come from the job's own thread, in order: [`start`](Progress::start), then any
/// number of [`advance`](Progress::advance), then [`finish`](Progress::finish), possibly
/// several phases in a row.
pub trait Progress: Sync {
    /// A phase of `total` units begins (`None` when the count is not known in advance, as
    /// while an archive is being indexed). `phase` names the work ("embedding", "images",
    /// "texts"), `unit` what is counted ("images", "rows", "vectors").
    fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
        let _ = (phase, unit, total);
    }

    /// `units` more units of the current phase are done.
    fn advance(&self, units: u64) {
        let _ = units;
    }

    /// A short status beside the current phase's count (the loss so far, how many photos
    /// failed), replacing the previous one.
    fn message(&self, message: &str) {
        let _ = message;
    }

    /// The current phase is over.
    fn finish(&self) {}

    /// Something the user should read (a part resumed, a file already complete), which a
    /// terminal prints without breaking its progress bars.
    fn notice(&self, message: &str) {
        let _ = message;
    }
}

/// Progress that goes nowhere: for callers that do not show it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

impl Progress for () {}

impl<P: Progress + ?Sized> Progress for &P {
    fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
        (**self).start(phase, unit, total);
    }
    fn advance(&self, units: u64) {
        (**self).advance(units);
    }
    fn message(&self, message: &str) {
        (**self).message(message);
    }
    fn finish(&self) {
        (**self).finish();
    }
    fn notice(&self, message: &str) {
        (**self).notice(message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Progress for Recorder {
        fn start(&self, phase: &str, unit: &str, total: Option<u64>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {phase} {unit} {total:?}"));
        }
        fn advance(&self, units: u64) {
            self.0.lock().unwrap().push(format!("advance {units}"));
        }
    }

    fn job(progress: &dyn Progress) {
        progress.start("embedding", "images", Some(3));
        progress.advance(2);
        progress.advance(1);
        progress.finish();
        progress.notice("done");
    }

    #[test]
    fn a_reference_forwards_and_defaults_do_nothing() {
        let recorder = Recorder::default();
        job(&&recorder);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            ["start embedding images Some(3)", "advance 2", "advance 1"]
        );
        job(&NoProgress);
        job(&());
    }
}
