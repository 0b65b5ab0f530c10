//! Clocks: the framework's notion of "now", injectable so that time-dependent behaviour can be
//! tested deterministically with a simulated clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// A source of time for calculators (`CalculatorContext::clock`) and the runtime.
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since the clock's epoch.
    fn now(&self) -> Duration;
    /// Blocks until `d` has elapsed on this clock.
    fn sleep(&self, d: Duration);
}

/// Wall-clock time since the clock was created.
#[derive(Debug)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A clock whose epoch is now.
    pub fn new() -> RealClock {
        RealClock {
            start: Instant::now(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that only moves when told to; `sleep` blocks until another thread advances it.
///
/// ```
/// use std::time::Duration;
/// use mediagraph_framework::clock::{Clock, SimulatedClock};
/// let clock = SimulatedClock::new();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now(), Duration::from_millis(5));
/// ```
#[derive(Debug, Default)]
pub struct SimulatedClock {
    now: Mutex<Duration>,
    moved: Condvar,
}

impl SimulatedClock {
    /// A simulated clock at zero.
    pub fn new() -> Arc<SimulatedClock> {
        Arc::new(SimulatedClock::default())
    }

    /// Moves the clock forward by `d`, waking sleepers whose time has come.
    pub fn advance(&self, d: Duration) {
        *self.now.lock() += d;
        self.moved.notify_all();
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Duration {
        *self.now.lock()
    }
    fn sleep(&self, d: Duration) {
        let mut now = self.now.lock();
        let until = *now + d;
        while *now < until {
            self.moved.wait(&mut now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_sleep_waits_for_advance() {
        let clock = SimulatedClock::new();
        let c2 = clock.clone();
        let sleeper = std::thread::spawn(move || {
            c2.sleep(Duration::from_secs(10));
            c2.now()
        });
        std::thread::sleep(Duration::from_millis(20));
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(4));
        clock.advance(Duration::from_secs(6));
        assert_eq!(sleeper.join().unwrap(), Duration::from_secs(10));
    }

    #[test]
    fn real_clock_moves() {
        let c = RealClock::new();
        let a = c.now();
        c.sleep(Duration::from_millis(2));
        assert!(c.now() >= a + Duration::from_millis(2));
    }
}
