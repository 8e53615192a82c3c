//! How long the loop polls for events before it sleeps (pure).
//!
//! Request/response traffic through rlnet is a chain of wake-ups: the
//! namespace's client wakes rlnet, rlnet wakes the host's server, and back.
//! Where a sleeping CPU is expensive to wake (a VM's halted vCPU costs an
//! exit and an IPI), each link of the chain costs more than the work it
//! carries. So after a turn that moved little data, the loop keeps polling
//! for a short while before it sleeps, the way the kernel's haltpoll idle
//! governor and socket busy-polling do: an answer that comes within the
//! window is picked up without a wake-up. The window adapts like haltpoll's:
//! it grows while waits end just after it and shrinks while they last
//! longer than its cap, so a slow peer costs no spinning. Bulk transfers
//! (turns that move a lot) never spin: they are not waiting on a round trip,
//! and spinning would only add CPU per byte.

use std::time::Duration;

/// The longest the loop polls before sleeping.
pub const MAX: Duration = Duration::from_micros(100);
/// Where a window that was closed starts when it grows.
const START: Duration = Duration::from_micros(10);
/// Turns moving less than this on average (bytes) are request/response.
const SMALL_TURN: u64 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinWindow {
    limit: Duration,
    /// Moving average of the bytes a turn moved (weight 1/4 to the newest).
    avg_bytes: u64,
    /// The last turn did something (frames or bytes moved).
    active: bool,
}

impl Default for SpinWindow {
    fn default() -> Self {
        SpinWindow {
            limit: Duration::ZERO,
            avg_bytes: 0,
            active: false,
        }
    }
}

impl SpinWindow {
    /// A turn ended having moved `bytes` (frames read and written, bytes
    /// spliced).
    pub fn after_turn(&mut self, bytes: u64) {
        // A turn that moved nothing (a socket's write space, a timer) says
        // nothing about the traffic: the judgement stands.
        if bytes > 0 {
            self.active = true;
            self.avg_bytes = (self.avg_bytes * 3 + bytes) / 4;
        }
    }

    /// How long to poll before sleeping, at most `timeout` (None: no
    /// deadline). Zero after a turn that moved nothing (a timer, a signal,
    /// an idle loop) or after bulk turns.
    pub fn budget(&self, timeout: Option<Duration>) -> Duration {
        if !self.eligible() {
            return Duration::ZERO;
        }
        timeout.map_or(self.limit, |t| t.min(self.limit))
    }

    /// The wait that followed an eligible turn lasted `idle` (spinning and
    /// sleeping): grow the window if a slightly longer one would have caught
    /// the event, shrink it if the wait was longer than the cap.
    pub fn after_wait(&mut self, idle: Duration) {
        if !self.eligible() {
            return;
        }
        if idle > MAX {
            // Gently: one late answer (a preempted peer) should not cost the
            // next round trips their window; a run of them closes it.
            self.limit = self.limit * 3 / 4;
            if self.limit < START {
                self.limit = Duration::ZERO;
            }
        } else if idle > self.limit {
            self.limit = (self.limit * 2).clamp(START, MAX);
        }
    }

    fn eligible(&self) -> bool {
        self.active && self.avg_bytes < SMALL_TURN
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A window opened all the way by short waits.
    fn open() -> SpinWindow {
        let mut w = SpinWindow::default();
        w.after_turn(100);
        for _ in 0..8 {
            w.after_wait(MAX);
        }
        assert_eq!(w.limit(), MAX);
        w
    }

    #[test]
    fn nothing_spins_until_short_waits_open_the_window() {
        let mut w = SpinWindow::default();
        // Before any traffic, and after a turn that moved nothing.
        assert_eq!(w.budget(None), Duration::ZERO);
        w.after_turn(0);
        assert_eq!(w.budget(None), Duration::ZERO);
        w.after_turn(200);
        assert_eq!(w.budget(None), Duration::ZERO);
        w.after_wait(us(30));
        assert_eq!(w.limit(), START);
        w.after_wait(us(30));
        assert_eq!(w.limit(), START * 2);
        w.after_wait(us(30));
        assert_eq!(w.limit(), START * 4);
        // Caught inside the window: it stays.
        w.after_wait(us(30));
        assert_eq!(w.limit(), START * 4);
        assert_eq!(w.budget(None), START * 4);
        // Never past the deadline the loop has.
        assert_eq!(w.budget(Some(us(5))), us(5));
        for _ in 0..8 {
            w.after_wait(MAX);
        }
        assert_eq!(w.limit(), MAX);
    }

    #[test]
    fn one_late_answer_keeps_the_window_a_slow_peer_closes_it() {
        let mut w = open();
        w.after_wait(MAX * 20);
        assert!(w.limit() > MAX / 2, "{:?}", w.limit());
        for _ in 0..16 {
            w.after_wait(MAX * 20);
        }
        assert_eq!(w.limit(), Duration::ZERO);
        assert_eq!(w.budget(None), Duration::ZERO);
    }

    #[test]
    fn bulk_turns_never_spin_and_empty_turns_change_nothing() {
        let mut w = open();
        assert_eq!(w.budget(None), MAX);
        // A turn that moved nothing (a socket's write space, a timer).
        w.after_turn(0);
        assert_eq!(w.budget(None), MAX);
        // Bulk: a few large turns raise the average over the threshold.
        for _ in 0..3 {
            w.after_turn(64 * 1024);
        }
        assert_eq!(w.budget(None), Duration::ZERO);
        // Waits after bulk turns leave the window alone.
        w.after_wait(MAX * 50);
        assert_eq!(w.limit(), MAX);
        // Back to small turns: the average decays and spinning resumes.
        for _ in 0..8 {
            w.after_turn(100);
        }
        assert_eq!(w.budget(None), MAX);
    }
}
