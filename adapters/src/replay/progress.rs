//! The progress bar of `drover replay`: drawn on standard output when, and
//! only when, it is a terminal, so that piped or redirected output carries
//! no control characters. The bar clears itself when finished or dropped,
//! before the summary table is printed.

use std::borrow::Cow;
use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// The bar's layout: label, bar, calls done of all, and the time left.
const TEMPLATE: &str = "{prefix:>24} [{bar:36}] {pos}/{len} calls ({percent}%), {eta} left";

/// A progress bar over a number of calls.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total` calls labelled `label`, shown when standard
    /// output is a terminal.
    pub fn new(total: u64, label: &str) -> Progress {
        Progress::with_visibility(total, label, io::stdout().is_terminal())
    }

    /// A bar over `total` calls labelled `label`, drawn on standard output
    /// if `visible` (and it is a terminal: indicatif draws on nothing else).
    pub fn with_visibility(total: u64, label: &str, visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        let style = ProgressStyle::with_template(TEMPLATE)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style)
            .with_prefix(Cow::Owned(label.to_owned()))
            .with_finish(ProgressFinish::AndClear);
        Progress { bar }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Changes the label (for example to the policy now running).
    pub fn set_label(&self, label: &str) {
        self.bar.set_prefix(Cow::Owned(label.to_owned()));
    }

    /// Counts `n` more calls done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Calls done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Calls in all.
    pub fn total(&self) -> Option<u64> {
        self.bar.length()
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_unless_asked_and_on_a_terminal() {
        let p = Progress::with_visibility(10, "p2c", false);
        assert!(!p.is_visible());
        // Under the test harness standard output is captured, not a terminal.
        if !io::stdout().is_terminal() {
            assert!(!Progress::new(10, "p2c").is_visible());
            assert!(!Progress::with_visibility(10, "p2c", true).is_visible());
        }
    }

    #[test]
    fn counts_calls_whether_drawn_or_not() {
        let p = Progress::with_visibility(10, "p2c", false);
        assert_eq!((p.position(), p.total()), (0, Some(10)));
        p.inc(3);
        p.set_label("round_robin");
        p.inc(7);
        assert_eq!(p.position(), 10);
        p.finish();
        assert_eq!(p.position(), 10);
    }
}
