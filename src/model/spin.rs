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

/// The longest the loop polls before sleeping: long enough to catch the
/// late answers that make a round trip's tail (p99).
pub const MAX: Duration = Duration::from_micros(MAX_US);
const MAX_US: u64 = 100;
/// Polling pays while the polls that catch their event are short, about
/// what a wake-up of a halted vCPU costs (~25 µs on a small VM, more under
/// load). Past this average, the window stays shut but for one probe in
/// [`PROBE_EVERY`] waits: a steady stream with gaps of 50–100 µs
/// (10,000–20,000 datagrams/s) would otherwise keep a CPU polling between
/// events that nobody waits on.
const AVG_CAP_US: u64 = 50;
const PROBE_EVERY: u32 = 8;

/// Where a window that was closed starts when it grows.
const START: Duration = Duration::from_micros(10);
/// Turns moving less than this on average (bytes) are request/response.
const SMALL_TURN: u64 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinWindow {
    limit: Duration,
    /// Moving average of the bytes a turn moved (weight 1/4 to the newest).
    avg_bytes: u64,
    /// Some turn has moved data: before any traffic, nothing polls.
    active: bool,
    /// Moving average of the polls that caught their event, in µs (weight
    /// 1/8 to the newest).
    avg_caught_us: u64,
    /// Waits in a row with that average past [`AVG_CAP_US`].
    shut_waits: u32,
}

impl Default for SpinWindow {
    fn default() -> Self {
        SpinWindow {
            limit: Duration::ZERO,
            avg_bytes: 0,
            active: false,
            avg_caught_us: 0,
            shut_waits: 0,
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
    /// deadline). Zero before any traffic, after bulk turns, and while the
    /// window is shut (but for its probes).
    pub fn budget(&self, timeout: Option<Duration>) -> Duration {
        if !self.eligible() || (self.shut() && !self.shut_waits.is_multiple_of(PROBE_EVERY)) {
            return Duration::ZERO;
        }
        timeout.map_or(self.limit, |t| t.min(self.limit))
    }

    /// The wait that followed an eligible turn, allowed `timeout`, lasted
    /// `idle` (polling and sleeping), and polling `caught` its event or
    /// not: grow the window if a slightly longer one would have caught it,
    /// shrink it if the wait was longer than the cap. A poll that could not
    /// wait (a zero timeout: work was left over) says nothing about the
    /// peer, and is no wait for the probe count either.
    pub fn after_wait(&mut self, timeout: Option<Duration>, idle: Duration, caught: bool) {
        if !self.eligible() || timeout == Some(Duration::ZERO) {
            return;
        }
        if caught {
            let us = u64::try_from(idle.as_micros()).unwrap_or(u64::MAX);
            self.avg_caught_us = (self.avg_caught_us * 7 + us.min(MAX_US)) / 8;
        }
        self.shut_waits = if self.shut() {
            self.shut_waits.wrapping_add(1)
        } else {
            0
        };
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

    fn shut(&self) -> bool {
        self.avg_caught_us > AVG_CAP_US
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

    /// One wait of `idle`, as the engine reports it: caught if it ended
    /// within the budget polled for.
    fn wait(w: &mut SpinWindow, idle: Duration) {
        let budget = w.budget(None);
        w.after_wait(None, idle, !budget.is_zero() && idle <= budget);
    }

    /// A window opened all the way by round trips.
    fn open() -> SpinWindow {
        let mut w = SpinWindow::default();
        w.after_turn(100);
        for _ in 0..8 {
            wait(&mut w, MAX);
        }
        assert_eq!(w.limit(), MAX);
        for _ in 0..32 {
            wait(&mut w, us(20));
        }
        assert_eq!(w.budget(None), MAX);
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
        wait(&mut w, us(30));
        assert_eq!(w.limit(), START);
        wait(&mut w, us(30));
        assert_eq!(w.limit(), START * 2);
        wait(&mut w, us(30));
        assert_eq!(w.limit(), START * 4);
        // Caught inside the window: it stays.
        wait(&mut w, us(30));
        assert_eq!(w.limit(), START * 4);
        assert_eq!(w.budget(None), START * 4);
        // Never past the deadline the loop has.
        assert_eq!(w.budget(Some(us(5))), us(5));
        // Waits just past it open it further, up to the cap.
        wait(&mut w, us(45));
        assert_eq!(w.limit(), START * 8);
        wait(&mut w, us(90));
        assert_eq!(w.limit(), MAX);
    }

    #[test]
    fn a_steady_stream_with_long_gaps_is_polled_for_only_to_probe() {
        // Events every ~90 µs: each is caught by a 100 µs window, but nobody
        // waits on them; once the average says so, one wait in eight polls.
        let mut w = open();
        let mut polled = 0;
        for _ in 0..160 {
            if !w.budget(None).is_zero() {
                polled += 1;
            }
            wait(&mut w, us(90));
        }
        assert!(polled <= 160 / PROBE_EVERY + 16, "polled {polled} of 160");
        // Request/response again: the probes see it and the window reopens.
        let mut reopened = None;
        for i in 0..200 {
            wait(&mut w, us(15));
            if reopened.is_none() && w.budget(None) == MAX && !w.shut() {
                reopened = Some(i);
            }
        }
        assert!(reopened.is_some(), "still shut after 200 round trips");
    }

    #[test]
    fn occasional_late_answers_keep_the_window() {
        let mut w = open();
        for i in 0..400 {
            wait(&mut w, if i % 10 == 0 { us(150) } else { us(20) });
            if i % 10 != 9 {
                continue;
            }
            assert!(!w.shut(), "shut at wait {i}");
        }
    }

    #[test]
    fn a_slow_peer_closes_the_window() {
        let mut w = open();
        wait(&mut w, MAX * 20);
        assert!(w.limit() > MAX / 2, "{:?}", w.limit());
        for _ in 0..16 {
            wait(&mut w, MAX * 20);
        }
        assert_eq!(w.limit(), Duration::ZERO);
        assert_eq!(w.budget(None), Duration::ZERO);
    }

    #[test]
    fn polls_that_could_not_wait_change_nothing() {
        // A closed window after round-trip turns: a poll with a zero
        // timeout (a backlog) returns at once, which is not a peer's answer
        // just past the window.
        let mut w = SpinWindow::default();
        w.after_turn(200);
        let before = w;
        for _ in 0..4 {
            w.after_wait(Some(Duration::ZERO), us(1), false);
        }
        assert_eq!(w, before);
        // Nor does it move the probe count of a shut window.
        let mut w = open();
        for _ in 0..40 {
            wait(&mut w, us(90));
        }
        assert!(w.shut());
        let before = w;
        w.after_wait(Some(Duration::ZERO), us(1), false);
        assert_eq!(w, before);
    }

    #[test]
    fn bulk_turns_never_spin_and_empty_turns_change_nothing() {
        let mut w = open();
        // A turn that moved nothing (a socket's write space, a timer).
        w.after_turn(0);
        assert_eq!(w.budget(None), MAX);
        // Bulk: a few large turns raise the average over the threshold.
        for _ in 0..3 {
            w.after_turn(64 * 1024);
        }
        assert_eq!(w.budget(None), Duration::ZERO);
        // Waits after bulk turns leave the window alone.
        wait(&mut w, MAX * 50);
        assert_eq!(w.limit(), MAX);
        // Back to small turns: the average decays and spinning resumes.
        for _ in 0..8 {
            w.after_turn(100);
        }
        assert_eq!(w.budget(None), MAX);
    }
}
