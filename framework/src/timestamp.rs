//! Timestamps: signed 64-bit microsecond counts with eight reserved values at the ends of the
//! range, laid out exactly as MediaPipe lays them out.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use crate::error::{Error, Result};

/// Microseconds per second.
pub const UNITS_PER_SECOND: i64 = 1_000_000;

/// A packet timestamp in microseconds.
///
/// Range values lie in `[Timestamp::MIN, Timestamp::MAX]`; the reserved values sit next to them
/// (`UNSET`, `UNSTARTED`, `PRE_STREAM` below, `POST_STREAM`, `ONE_OVER_POST_STREAM`, `DONE`
/// above). Arithmetic with a [`TimestampDiff`] clamps to the range values.
///
/// ```
/// use mediagraph_framework::{Timestamp, TimestampDiff};
/// let t = Timestamp::new(1_000);
/// assert_eq!(t + TimestampDiff::new(500), Timestamp::new(1_500));
/// assert_eq!(Timestamp::MAX + TimestampDiff::new(10), Timestamp::MAX);
/// assert_eq!(t.next_allowed_in_stream(), Timestamp::new(1_001));
/// assert_eq!(Timestamp::PRE_STREAM.next_allowed_in_stream(), Timestamp::ONE_OVER_POST_STREAM);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A signed difference between two timestamps, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampDiff(i64);

impl Timestamp {
    /// No timestamp: the timestamp of an empty packet; never valid in a stream.
    pub const UNSET: Timestamp = Timestamp(i64::MIN);
    /// Before everything: the input timestamp seen during `open`.
    pub const UNSTARTED: Timestamp = Timestamp(i64::MIN + 1);
    /// A header-like packet processed before all others; must be a stream's only packet.
    pub const PRE_STREAM: Timestamp = Timestamp(i64::MIN + 2);
    /// The smallest range value.
    pub const MIN: Timestamp = Timestamp(i64::MIN + 3);
    /// The largest range value.
    pub const MAX: Timestamp = Timestamp(i64::MAX - 3);
    /// A summary packet after all range values; must be a stream's only packet.
    pub const POST_STREAM: Timestamp = Timestamp(i64::MAX - 2);
    /// Nothing more can follow; legal only as a bound.
    pub const ONE_OVER_POST_STREAM: Timestamp = Timestamp(i64::MAX - 1);
    /// The stream is finished: the input timestamp seen during `close`.
    pub const DONE: Timestamp = Timestamp(i64::MAX);

    /// A range timestamp of `micros` microseconds.
    ///
    /// # Panics
    /// If `micros` is one of the reserved values; use the named constants for those, or
    /// [`Timestamp::try_new`] for values that come from outside the program.
    pub const fn new(micros: i64) -> Timestamp {
        assert!(
            micros >= Self::MIN.0 && micros <= Self::MAX.0,
            "Timestamp::new takes a range value; use the named constants for special values"
        );
        Timestamp(micros)
    }

    /// A range timestamp of `micros` microseconds, or an error naming the value if it is one of
    /// the reserved values.
    pub fn try_new(micros: i64) -> Result<Timestamp> {
        if (Self::MIN.0..=Self::MAX.0).contains(&micros) {
            Ok(Timestamp(micros))
        } else {
            Err(Error::InvalidTimestamp(format!(
                "{micros} is a reserved value, not a range timestamp"
            )))
        }
    }

    /// The raw value, including for the reserved values (e.g. `Timestamp::DONE.value() == i64::MAX`).
    pub const fn value(self) -> i64 {
        self.0
    }

    /// The raw value in microseconds (same as [`Timestamp::value`]).
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Rounds `seconds * 1e6` half away from zero; an error if the result is not a range value.
    pub fn from_seconds(seconds: f64) -> Result<Timestamp> {
        let micros = (seconds * UNITS_PER_SECOND as f64).round();
        if !micros.is_finite() || micros < Self::MIN.0 as f64 || micros > Self::MAX.0 as f64 {
            return Err(Error::InvalidTimestamp(format!(
                "{seconds} s is outside the timestamp range"
            )));
        }
        Timestamp::try_new(micros as i64)
    }

    /// The value in seconds.
    pub fn seconds(self) -> f64 {
        self.0 as f64 / UNITS_PER_SECOND as f64
    }

    /// True for the reserved values and for `MIN` and `MAX`.
    pub const fn is_special(self) -> bool {
        self.0 <= Self::MIN.0 || self.0 >= Self::MAX.0
    }

    /// True for `MIN..=MAX`.
    pub const fn is_range(self) -> bool {
        self.0 >= Self::MIN.0 && self.0 <= Self::MAX.0
    }

    /// True for range values plus `PRE_STREAM` and `POST_STREAM`.
    pub const fn is_allowed_in_stream(self) -> bool {
        self.0 >= Self::PRE_STREAM.0 && self.0 <= Self::POST_STREAM.0
    }

    /// The smallest timestamp a packet may carry after a packet at `self`.
    pub const fn next_allowed_in_stream(self) -> Timestamp {
        if self.0 >= Self::MAX.0 || self.0 == Self::PRE_STREAM.0 {
            Self::ONE_OVER_POST_STREAM
        } else if self.0 < Self::MIN.0 {
            Self::MIN
        } else {
            Timestamp(self.0 + 1)
        }
    }

    /// False iff nothing may follow a packet at `self` (`self >= MAX` or `PRE_STREAM`).
    pub const fn has_next_allowed_in_stream(self) -> bool {
        !(self.0 >= Self::MAX.0 || self.0 == Self::PRE_STREAM.0)
    }

    /// The largest timestamp a packet before `self` may carry.
    pub const fn previous_allowed_in_stream(self) -> Timestamp {
        if self.0 <= Self::MIN.0 || self.0 == Self::POST_STREAM.0 {
            Self::UNSTARTED
        } else if self.0 > Self::MAX.0 {
            Self::MAX
        } else {
            Timestamp(self.0 - 1)
        }
    }

    /// The difference `self - other`; an error unless both are range values and the
    /// difference fits in an i64.
    pub fn checked_diff(self, other: Timestamp) -> Result<TimestampDiff> {
        if !self.is_range() || !other.is_range() {
            return Err(Error::InvalidTimestamp(format!(
                "cannot subtract {other:?} from {self:?}: both must be range values"
            )));
        }
        self.0
            .checked_sub(other.0)
            .map(TimestampDiff)
            .ok_or_else(|| {
                Error::InvalidTimestamp(format!(
                    "{self:?} - {other:?} does not fit in a timestamp difference"
                ))
            })
    }

    /// `self + diff` clamped to `[MIN, MAX]`; an error unless `self` is a range value.
    pub fn checked_add(self, diff: TimestampDiff) -> Result<Timestamp> {
        if !self.is_range() {
            return Err(Error::InvalidTimestamp(format!(
                "cannot add {} µs to {self:?}: not a range value",
                diff.0
            )));
        }
        Ok(Timestamp(
            self.0
                .saturating_add(diff.0)
                .clamp(Self::MIN.0, Self::MAX.0),
        ))
    }

    /// The name of a reserved value, or `None` for an ordinary range value.
    pub const fn special_name(self) -> Option<&'static str> {
        match self.0 {
            i64::MIN => Some("Unset"),
            v if v == Self::UNSTARTED.0 => Some("Unstarted"),
            v if v == Self::PRE_STREAM.0 => Some("PreStream"),
            v if v == Self::MIN.0 => Some("Min"),
            v if v == Self::MAX.0 => Some("Max"),
            v if v == Self::POST_STREAM.0 => Some("PostStream"),
            v if v == Self::ONE_OVER_POST_STREAM.0 => Some("OneOverPostStream"),
            i64::MAX => Some("Done"),
            _ => None,
        }
    }

    /// Parses a reserved value's name (as printed by [`Timestamp::special_name`]).
    pub fn from_special_name(name: &str) -> Option<Timestamp> {
        [
            Self::UNSET,
            Self::UNSTARTED,
            Self::PRE_STREAM,
            Self::MIN,
            Self::MAX,
            Self::POST_STREAM,
            Self::ONE_OVER_POST_STREAM,
            Self::DONE,
        ]
        .into_iter()
        .find(|t| t.special_name() == Some(name))
    }
}

impl Default for Timestamp {
    /// `Timestamp::UNSET`, as for an empty packet.
    fn default() -> Self {
        Self::UNSET
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.special_name() {
            Some(name) => write!(f, "Timestamp::{name}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.special_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl TimestampDiff {
    /// A difference of `micros` microseconds.
    pub const fn new(micros: i64) -> TimestampDiff {
        TimestampDiff(micros)
    }

    /// The difference in microseconds.
    pub const fn value(self) -> i64 {
        self.0
    }

    /// The difference in seconds.
    pub fn seconds(self) -> f64 {
        self.0 as f64 / UNITS_PER_SECOND as f64
    }
}

impl Add<TimestampDiff> for Timestamp {
    type Output = Timestamp;
    /// Clamped addition; see [`Timestamp::checked_add`].
    ///
    /// # Panics
    /// If `self` is not a range value (a programming error, as in MediaPipe).
    fn add(self, rhs: TimestampDiff) -> Timestamp {
        match self.checked_add(rhs) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Sub<TimestampDiff> for Timestamp {
    type Output = Timestamp;
    /// Clamped subtraction, like addition of the negated difference.
    ///
    /// # Panics
    /// If `self` is not a range value.
    fn sub(self, rhs: TimestampDiff) -> Timestamp {
        let negated = TimestampDiff(rhs.0.checked_neg().unwrap_or(i64::MAX));
        match self.checked_add(negated) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

impl AddAssign<TimestampDiff> for Timestamp {
    fn add_assign(&mut self, rhs: TimestampDiff) {
        *self = *self + rhs;
    }
}

impl SubAssign<TimestampDiff> for Timestamp {
    fn sub_assign(&mut self, rhs: TimestampDiff) {
        *self = *self - rhs;
    }
}

impl Sub for Timestamp {
    type Output = TimestampDiff;
    /// # Panics
    /// If either side is not a range value.
    fn sub(self, rhs: Timestamp) -> TimestampDiff {
        match self.checked_diff(rhs) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Add for TimestampDiff {
    type Output = TimestampDiff;
    /// # Panics
    /// On i64 overflow.
    fn add(self, rhs: TimestampDiff) -> TimestampDiff {
        TimestampDiff(self.0.checked_add(rhs.0).expect("TimestampDiff overflow"))
    }
}

impl Sub for TimestampDiff {
    type Output = TimestampDiff;
    fn sub(self, rhs: TimestampDiff) -> TimestampDiff {
        TimestampDiff(self.0.checked_sub(rhs.0).expect("TimestampDiff overflow"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_sit_at_mediapipes_positions() {
        assert_eq!(Timestamp::UNSET.value(), i64::MIN);
        assert_eq!(Timestamp::UNSTARTED.value(), i64::MIN + 1);
        assert_eq!(Timestamp::PRE_STREAM.value(), i64::MIN + 2);
        assert_eq!(Timestamp::MIN.value(), i64::MIN + 3);
        assert_eq!(Timestamp::MAX.value(), i64::MAX - 3);
        assert_eq!(Timestamp::POST_STREAM.value(), i64::MAX - 2);
        assert_eq!(Timestamp::ONE_OVER_POST_STREAM.value(), i64::MAX - 1);
        assert_eq!(Timestamp::DONE.value(), i64::MAX);
        assert_eq!(Timestamp::default(), Timestamp::UNSET);
    }

    #[test]
    fn predicates() {
        for t in [
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::UNSET,
            Timestamp::DONE,
        ] {
            assert!(t.is_special(), "{t:?}");
        }
        assert!(!Timestamp::new(0).is_special());
        assert!(Timestamp::MIN.is_range() && Timestamp::MAX.is_range());
        assert!(!Timestamp::PRE_STREAM.is_range() && !Timestamp::POST_STREAM.is_range());
        assert!(Timestamp::PRE_STREAM.is_allowed_in_stream());
        assert!(Timestamp::POST_STREAM.is_allowed_in_stream());
        assert!(!Timestamp::UNSTARTED.is_allowed_in_stream());
        assert!(!Timestamp::ONE_OVER_POST_STREAM.is_allowed_in_stream());
        assert!(!Timestamp::UNSET.is_allowed_in_stream());
    }

    #[test]
    fn next_and_previous_allowed() {
        use Timestamp as T;
        assert_eq!(T::new(5).next_allowed_in_stream(), T::new(6));
        assert_eq!(T::MAX.next_allowed_in_stream(), T::ONE_OVER_POST_STREAM);
        assert_eq!(
            T::POST_STREAM.next_allowed_in_stream(),
            T::ONE_OVER_POST_STREAM
        );
        assert_eq!(
            T::PRE_STREAM.next_allowed_in_stream(),
            T::ONE_OVER_POST_STREAM
        );
        assert_eq!(T::UNSTARTED.next_allowed_in_stream(), T::MIN);
        assert_eq!(T::UNSET.next_allowed_in_stream(), T::MIN);
        assert!(!T::MAX.has_next_allowed_in_stream());
        assert!(!T::PRE_STREAM.has_next_allowed_in_stream());
        assert!(T::MIN.has_next_allowed_in_stream());

        assert_eq!(T::new(5).previous_allowed_in_stream(), T::new(4));
        assert_eq!(T::MIN.previous_allowed_in_stream(), T::UNSTARTED);
        assert_eq!(T::PRE_STREAM.previous_allowed_in_stream(), T::UNSTARTED);
        assert_eq!(T::POST_STREAM.previous_allowed_in_stream(), T::UNSTARTED);
        assert_eq!(T::DONE.previous_allowed_in_stream(), T::MAX);
        assert_eq!(T::ONE_OVER_POST_STREAM.previous_allowed_in_stream(), T::MAX);
    }

    #[test]
    fn arithmetic_clamps_to_range() {
        let d = TimestampDiff::new;
        let max = Timestamp::MAX;
        let near_max = Timestamp::new(max.value() - 100);
        assert_eq!(near_max + d(100), max);
        assert_eq!(near_max + d(200), max);
        assert_eq!(near_max + d(99), Timestamp::new(max.value() - 1));
        let near_min = Timestamp::new(Timestamp::MIN.value() + 100);
        assert_eq!(near_min - d(100), Timestamp::MIN);
        assert_eq!(near_min - d(200), Timestamp::MIN);
        assert_eq!(near_min - d(99), Timestamp::new(Timestamp::MIN.value() + 1));
        assert_eq!(Timestamp::new(10) - Timestamp::new(3), d(7));
        assert!(Timestamp::DONE.checked_add(d(1)).is_err());
        assert!(Timestamp::POST_STREAM
            .checked_diff(Timestamp::new(0))
            .is_err());
        assert_eq!(Timestamp::new(5) + d(i64::MAX), max);
        assert_eq!(Timestamp::new(5) - d(i64::MIN), max);
    }

    #[test]
    fn seconds_round_half_away_from_zero() {
        assert_eq!(
            Timestamp::from_seconds(1.5).unwrap(),
            Timestamp::new(1_500_000)
        );
        assert_eq!(
            Timestamp::from_seconds(0.0000005).unwrap(),
            Timestamp::new(1)
        );
        assert_eq!(
            Timestamp::from_seconds(-0.0000005).unwrap(),
            Timestamp::new(-1)
        );
        assert!(Timestamp::from_seconds(1e300).is_err());
        assert!(Timestamp::from_seconds(f64::NAN).is_err());
        assert_eq!(Timestamp::new(2_500_000).seconds(), 2.5);
    }

    #[test]
    fn reserved_values_are_refused_from_raw_integers() {
        assert!(Timestamp::try_new(i64::MAX).is_err());
        assert!(Timestamp::try_new(i64::MIN + 2).is_err());
        assert_eq!(Timestamp::try_new(i64::MIN + 3).unwrap(), Timestamp::MIN);
    }

    #[test]
    fn debug_and_names() {
        assert_eq!(
            format!("{:?}", Timestamp::PRE_STREAM),
            "Timestamp::PreStream"
        );
        assert_eq!(format!("{}", Timestamp::new(42)), "42");
        assert_eq!(
            Timestamp::from_special_name("PostStream"),
            Some(Timestamp::POST_STREAM)
        );
        assert_eq!(Timestamp::from_special_name("Later"), None);
    }
}
