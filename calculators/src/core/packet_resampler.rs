//! `PacketResamplerCalculator`: resamples a stream to a fixed frame rate (MediaPipe's
//! `PacketResamplerCalculator`), with MediaPipe's exact choice of packets and timestamps.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::PortKind;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::VideoHeader;

const NAME: &str = "PacketResamplerCalculator";

/// Resamples the data stream to `frame_rate` packets per second.
///
/// * Input streams: `DATA` (any type; an untagged stream is accepted instead), and optionally
///   `VIDEO_HEADER` ([`VideoHeader`], a single packet at `PreStream`).
/// * Output streams: `DATA` (or untagged; the input's type), and optionally `VIDEO_HEADER`
///   ([`VideoHeader`]: the header with `frame_rate` replaced, sent once at `PreStream` when the
///   first data packet arrives; only without jitter, as in MediaPipe).
/// * Input side packets: `OPTIONS` (a JSON object of option fields, merged over the node's
///   options at open: fields it sets win) and `SEED` (string; required when `jitter` is not 0
///   or `reproducible_sampling` is set).
/// * Options ([`PacketResamplerCalculatorOptions`]): `frame_rate` (required, `0 < r <= 1e6`),
///   `output_header` (`NONE` / `PASS_HEADER` / `UPDATE_VIDEO_HEADER`), `flush_last_packet`
///   (default true), `jitter` (0, or in `(0, 1]`), `jitter_with_reflection`,
///   `reproducible_sampling`, `base_timestamp`, `start_time`, `end_time`, `round_limits`.
///
/// Without jitter the output timestamps are the grid `first + round(i * 1e6 / frame_rate)`
/// µs (`first` = the first input timestamp, or the grid point of `base_timestamp` nearest to
/// it); each grid point carries the input packet nearest to it (the later one on ties),
/// periods without input repeat the most recent packet, and at close the last packet is
/// flushed for its period if it has not been sent (`flush_last_packet`). Outputs outside
/// `[start_time, end_time)` (widened by half a period each side with `round_limits`) are
/// dropped.
///
/// With jitter (or `reproducible_sampling`) the output timestamps are drawn at random, using
/// [`SeededRng`] seeded from the `SEED` side packet, so the same seed gives the same output in
/// every run and every mediagraph version (MediaPipe's open-source build refuses to run
/// jitter).
///
/// ```yaml
/// - calculator: PacketResamplerCalculator
///   input_stream: ["DATA:frames", "VIDEO_HEADER:header"]
///   output_stream: ["DATA:frames_10fps", "VIDEO_HEADER:header_10fps"]
///   options: {frame_rate: 10}
/// ```
pub struct PacketResamplerCalculator {
    options: PacketResamplerCalculatorOptions,
    state: Option<State>,
}

/// Options of [`PacketResamplerCalculator`] (MediaPipe's `PacketResamplerCalculatorOptions`;
/// same field names, defaults and meaning). Timestamps are in microseconds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketResamplerCalculatorOptions {
    /// Output rate in packets per second; must be set, `0 < frame_rate <= 1e6`.
    pub frame_rate: f64,
    /// What header to put on the data output stream (when the input stream has one).
    pub output_header: OutputHeader,
    /// At close, emit the last packet for its period if that period was not emitted yet
    /// (ignored with jitter). Default true.
    pub flush_last_packet: bool,
    /// Random jitter, 0 (none) or in `(0, 1]`; needs the `SEED` side packet.
    pub jitter: f64,
    /// Use the (deprecated) reflection strategy for jitter.
    pub jitter_with_reflection: bool,
    /// Reproducible sampling: jittered periods anchored at timestamp 0 (implies reflection).
    pub reproducible_sampling: bool,
    /// Align the output grid to this timestamp instead of the first input timestamp.
    pub base_timestamp: Option<i64>,
    /// Drop outputs before this timestamp.
    pub start_time: Option<i64>,
    /// Drop outputs at or after this timestamp.
    pub end_time: Option<i64>,
    /// Widen `[start_time, end_time)` by half a period on each side.
    pub round_limits: bool,
}

impl Default for PacketResamplerCalculatorOptions {
    fn default() -> Self {
        PacketResamplerCalculatorOptions {
            frame_rate: -1.0,
            output_header: OutputHeader::None,
            flush_last_packet: true,
            jitter: 0.0,
            jitter_with_reflection: false,
            reproducible_sampling: false,
            base_timestamp: None,
            start_time: None,
            end_time: None,
            round_limits: false,
        }
    }
}

/// The header placed on the data output stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutputHeader {
    /// No header, even if the input stream has one.
    #[default]
    None,
    /// The input stream's header, unchanged.
    PassHeader,
    /// The input stream's header, which must be a [`VideoHeader`], with `frame_rate` replaced.
    UpdateVideoHeader,
}

const DATA_IN: Input<AnyPacket> = Input::any("DATA").optional();
const UNTAGGED_IN: Input<AnyPacket> = Input::any("").optional();
const HEADER_IN: Input<VideoHeader> = Input::new("VIDEO_HEADER").optional();
const DATA_OUT: Output<AnyPacket> = Output::any("DATA").optional();
const UNTAGGED_OUT: Output<AnyPacket> = Output::any("").optional();
const HEADER_OUT: Output<VideoHeader> = Output::new("VIDEO_HEADER").optional();
const OPTIONS_SIDE: SideInput<serde_json::Value> = SideInput::new("OPTIONS").optional();
const SEED_SIDE: SideInput<String> = SideInput::new("SEED").optional();

fn config_error(message: impl Into<String>) -> crate::Error {
    crate::Error::Config {
        calculator: NAME,
        message: message.into(),
    }
}

/// Checks the options; `has_seed` says whether the `SEED` side packet is connected.
fn validate(o: &PacketResamplerCalculatorOptions, has_seed: bool) -> Result<(), crate::Error> {
    if !(o.frame_rate.is_finite() && o.frame_rate > 0.0 && o.frame_rate <= 1e6) {
        return Err(config_error(format!(
            "option frame_rate must be set to a rate > 0 and <= 1000000 packets per second (got {})",
            o.frame_rate
        )));
    }
    if o.jitter != 0.0 && !(o.jitter > 0.0 && o.jitter <= 1.0) {
        return Err(config_error(format!(
            "option jitter must be 0 or in (0, 1] (got {})",
            o.jitter
        )));
    }
    if (o.jitter != 0.0 || o.reproducible_sampling) && !has_seed {
        let which = if o.jitter != 0.0 {
            "jitter"
        } else {
            "reproducible_sampling"
        };
        return Err(config_error(format!(
            "option {which} needs the SEED input side packet (a string) for its random generator"
        )));
    }
    for (name, value) in [
        ("base_timestamp", o.base_timestamp),
        ("start_time", o.start_time),
        ("end_time", o.end_time),
    ] {
        if let Some(v) = value {
            if Timestamp::try_new(v).is_err() {
                return Err(config_error(format!(
                    "option {name} must be a range timestamp (got {v}, a reserved value)"
                )));
            }
        }
    }
    let period = (1e6 / o.frame_rate) as i64;
    let jitter_us = (1e6 * o.jitter / o.frame_rate) as i64;
    if jitter_us > period {
        return Err(config_error(format!(
            "option jitter gives {jitter_us} µs of jitter, more than the period of {period} µs"
        )));
    }
    Ok(())
}

/// Merges the `OPTIONS` side packet (a JSON object of option fields) over the node's options.
fn merge_options(
    base: &PacketResamplerCalculatorOptions,
    side: &serde_json::Value,
) -> Result<PacketResamplerCalculatorOptions, crate::Error> {
    let serde_json::Value::Object(fields) = side else {
        return Err(crate::Error::SidePacket {
            tag: "OPTIONS",
            message: format!("expected a JSON object of {NAME} options, got {side}"),
        });
    };
    let mut merged = serde_json::to_value(base).map_err(|e| crate::Error::SidePacket {
        tag: "OPTIONS",
        message: e.to_string(),
    })?;
    if let serde_json::Value::Object(m) = &mut merged {
        for (k, v) in fields {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(merged).map_err(|e| crate::Error::SidePacket {
        tag: "OPTIONS",
        message: format!("invalid {NAME} options: {e}"),
    })
}

/// The port id of `tag:0`, or else of untagged index 0.
fn data_port(ports: &mediagraph_framework::port::PortSet) -> Option<usize> {
    ports.id("DATA", 0).or_else(|| ports.id("", 0))
}

// ---------------------------------------------------------------------------------------------
// Random numbers.

/// The random generator behind jitter: reproducible for a given seed string, across runs,
/// platforms and mediagraph versions.
///
/// * Seeding: the 32-byte ChaCha key is the SHA-256 digest of the seed string's UTF-8 bytes
///   (`rand_chacha::ChaCha20Rng::from_seed`, stream 0, word position 0).
/// * `next_u64`: the next 64 bits of the ChaCha20 keystream, as `rand_chacha` defines them.
/// * `uniform(n)` (`n >= 1`): draws `x = next_u64()` until `x < 2^64 - (2^64 mod n)` and
///   returns `x mod n` (unbiased; always at least one draw, also for `n == 1`).
/// * `uniform_float()`: `(next_u64() >> 11) * 2^-53`, in `[0, 1)`.
pub struct SeededRng(ChaCha20Rng);

impl SeededRng {
    /// The generator for `seed`.
    pub fn new(seed: &str) -> SeededRng {
        let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        SeededRng(ChaCha20Rng::from_seed(key))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `[0, n)` (`0` when `n == 0`, without drawing).
    pub fn uniform(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // 2^64 mod n, computed without 128-bit arithmetic.
        let rem = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if rem == 0 || x < 0u64.wrapping_sub(rem) {
                return x % n;
            }
        }
    }

    /// A uniform float in `[0, 1)`.
    pub fn uniform_float(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// One-element reservoir sampling (each offered packet is kept with probability 1/count).
struct Reservoir {
    rng: SeededRng,
    enabled: bool,
    count: u64,
    sample: Packet,
}

impl Reservoir {
    fn new(seed: &str) -> Reservoir {
        Reservoir {
            rng: SeededRng::new(seed),
            enabled: true,
            count: 0,
            sample: Packet::empty(),
        }
    }

    fn add(&mut self, p: &Packet) {
        self.count += 1;
        if self.rng.uniform(self.count) == 0 {
            self.sample = p.clone();
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic shared by the strategies.

/// Rounds half away from zero to an integer (MediaPipe's `MathUtil::SafeRound<int64, double>`):
/// `(-0.5, 0.5)` gives 0, otherwise `trunc(x ± 0.5)`; saturates, NaN gives 0.
fn round_i64(x: f64) -> i64 {
    if x > -0.5 && x < 0.5 {
        0
    } else if x < 0.0 {
        (x - 0.5) as i64
    } else {
        (x + 0.5) as i64
    }
}

/// `t + d` clamped to the range timestamps `[MIN, MAX]`.
fn ts_add(t: i64, d: i64) -> i64 {
    t.saturating_add(d)
        .clamp(Timestamp::MIN.value(), Timestamp::MAX.value())
}

/// `a - b` without overflow.
fn diff(a: i64, b: i64) -> i128 {
    a as i128 - b as i128
}

/// `x` reflected into `[lo, hi)`.
fn reflect(x: i64, lo: i64, hi: i64) -> i64 {
    if x < lo {
        (2 * lo as i128 - x as i128 - 1) as i64
    } else if x >= hi {
        (2 * hi as i128 - x as i128 - 1) as i64
    } else {
        x
    }
}

/// What every strategy needs: the output port, the limits, the period.
struct Common {
    frame_rate: f64,
    period_us: i64,
    jitter: f64,
    jitter_us: i64,
    /// Outputs are kept iff `lo <= ts < hi`.
    lo: i64,
    hi: i64,
    data_out: usize,
    flush_last_packet: bool,
}

impl Common {
    /// Sends `packet` if its timestamp is within the limits.
    fn emit(&self, cx: &mut CalculatorContext, packet: Packet) -> Result<()> {
        let t = packet.timestamp().value();
        if t >= self.lo && t < self.hi {
            cx.output_at(self.data_out).add(packet)?;
        }
        Ok(())
    }

    /// Raises the data output's bound to `bound` (never lowers it).
    fn raise_bound(&self, cx: &mut CalculatorContext, bound: i64) -> Result<()> {
        let out = cx.output_at(self.data_out);
        let b = Timestamp::new(bound.clamp(Timestamp::MIN.value(), Timestamp::MAX.value()));
        if b > out.next_timestamp_bound() {
            out.set_next_timestamp_bound(b)?;
        }
        Ok(())
    }
}

/// `p` re-stamped at `t` (clamped to the range timestamps, so extreme inputs cannot make an
/// illegal timestamp).
fn at(p: &Packet, t: i64) -> Packet {
    p.at(Timestamp::new(
        t.clamp(Timestamp::MIN.value(), Timestamp::MAX.value()),
    ))
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// §11.3: deterministic resampling on the grid.
struct NoJitter {
    base: Option<i64>,
    first: Option<i64>,
    count: i64,
}

impl NoJitter {
    fn index(&self, c: &Common, first: i64, t: i64) -> i64 {
        round_i64((diff(t, first) as f64 / 1e6) * c.frame_rate)
    }

    fn grid(&self, c: &Common, first: i64, i: i64) -> i64 {
        ts_add(first, round_i64((i as f64 / c.frame_rate) * 1e6))
    }

    fn process(
        &mut self,
        c: &Common,
        cx: &mut CalculatorContext,
        cur: &Packet,
        last: &Packet,
        header: &VideoHeader,
    ) -> Result<()> {
        let t = cur.timestamp().value();
        let first = match self.first {
            Some(f) => f,
            None => {
                let f = match self.base {
                    None => t,
                    Some(b) => {
                        let k = round_i64((diff(t, b) as f64 / 1e6) * c.frame_rate);
                        ts_add(b, round_i64((k as f64 / c.frame_rate) * 1e6))
                    }
                };
                self.first = Some(f);
                cx.output(&HEADER_OUT)
                    .send(header.clone(), Timestamp::PRE_STREAM)?;
                f
            }
        };
        let idx = self.index(c, first, t);
        if idx < self.count {
            return Ok(());
        }
        while idx > self.count {
            c.emit(cx, at(last, self.grid(c, first, self.count)))?;
            self.count += 1;
        }
        let target = self.grid(c, first, self.count);
        if t >= target {
            let have_last = last.timestamp() != Timestamp::UNSET;
            let send_current =
                !have_last || diff(t, target) <= diff(target, last.timestamp().value());
            let chosen = if send_current { cur } else { last };
            c.emit(cx, at(chosen, target))?;
            self.count += 1;
        }
        c.raise_bound(cx, self.grid(c, first, self.count))
    }

    fn close(&mut self, c: &Common, cx: &mut CalculatorContext, last: &Packet) -> Result<()> {
        let Some(first) = self.first else {
            return Ok(());
        };
        if c.flush_last_packet
            && last.timestamp().is_range()
            && self.index(c, first, last.timestamp().value()) == self.count
        {
            c.emit(cx, at(last, self.grid(c, first, self.count)))?;
        }
        Ok(())
    }
}

/// §11.4 reproducible sampling: jittered periods anchored at timestamp 0, with reflection.
struct Reproducible {
    rng: SeededRng,
    lo: Option<i64>,
    next: i64,
    emitted_this_period: bool,
}

impl Reproducible {
    fn advance(&mut self, c: &Common, t: i64) {
        let Some(lo) = self.lo else { return };
        if self.emitted_this_period && diff(t, lo) >= c.period_us as i128 {
            let lo = ts_add(lo, c.period_us);
            self.lo = Some(lo);
            let step = c
                .period_us
                .saturating_add(self.rng.uniform((2 * c.jitter_us + 1) as u64) as i64)
                .saturating_sub(c.jitter_us);
            self.next = reflect(
                self.next.saturating_add(step),
                lo,
                lo.saturating_add(c.period_us),
            );
            self.emitted_this_period = false;
        }
    }

    fn process(
        &mut self,
        c: &Common,
        cx: &mut CalculatorContext,
        cur: &Packet,
        last: &Packet,
    ) -> Result<()> {
        let t = cur.timestamp().value();
        if last.is_empty() {
            if self.lo.is_none() {
                self.lo = Some(0);
                self.next = self.rng.uniform(c.period_us as u64) as i64;
                while self.lo.is_some_and(|lo| diff(t, lo) >= c.period_us as i128) {
                    self.emitted_this_period = true;
                    self.advance(c, t);
                }
            }
            if self.next < t {
                c.emit(cx, at(cur, self.next))?;
                self.emitted_this_period = true;
            }
            return Ok(());
        }
        self.advance(c, t);
        let last_t = last.timestamp().value();
        while !self.emitted_this_period && self.next <= t {
            let chosen = if diff(t, self.next) < diff(self.next, last_t) {
                cur
            } else {
                last
            };
            c.emit(cx, at(chosen, self.next))?;
            self.emitted_this_period = true;
            self.advance(c, t);
        }
        c.raise_bound(cx, self.next)
    }

    fn close(&mut self, c: &Common, cx: &mut CalculatorContext, last: &Packet) -> Result<()> {
        if !last.is_empty() && !self.emitted_this_period {
            c.emit(cx, at(last, self.next))?;
        }
        Ok(())
    }
}

/// §11.4 jitter, either with the legacy reflection or without reflection.
struct Jitter {
    reflection: bool,
    rng: SeededRng,
    reservoir: Reservoir,
    first: Option<i64>,
    lo: i64,
    next: i64,
}

impl Jitter {
    fn update(&mut self, c: &Common) {
        self.reservoir.count = 0;
        if self.reflection {
            self.lo = ts_add(self.lo, c.period_us);
            let hi = self.lo.saturating_add(c.period_us);
            let step = c
                .period_us
                .saturating_add(self.rng.uniform((2 * c.jitter_us + 1) as u64) as i64)
                .saturating_sub(c.jitter_us);
            self.next = reflect(self.next.saturating_add(step), self.lo, hi);
        } else {
            self.reservoir.enabled = false;
            let u = self.rng.uniform_float();
            let step = (c.period_us as f64 * ((1.0 - c.jitter) + 2.0 * c.jitter * u)) as i64;
            self.next = self.next.saturating_add(step);
        }
    }

    fn process(
        &mut self,
        c: &Common,
        cx: &mut CalculatorContext,
        cur: &Packet,
        last: &Packet,
    ) -> Result<()> {
        let t = cur.timestamp().value();
        if self.reservoir.enabled && (self.first.is_none() || t >= self.lo) {
            self.reservoir.add(cur);
        }
        if self.first.is_none() {
            self.first = Some(t);
            self.lo = t;
            self.next = if self.reflection {
                ts_add(t, self.rng.uniform(c.period_us as u64) as i64)
            } else {
                ts_add(t, (c.period_us as f64 * self.rng.uniform_float()) as i64)
            };
            if self.next == t {
                c.emit(cx, at(cur, self.next))?;
                self.update(c);
            }
            return Ok(());
        }
        let last_t = last.timestamp().value();
        loop {
            let last_diff = diff(self.next, last_t);
            if last_diff <= 0 {
                return Err(config_error(format!(
                    "internal: the next jittered output timestamp {} is not after the previous input {last_t}",
                    self.next
                ))
                .into());
            }
            let curr_diff = diff(self.next, t);
            if curr_diff > 0 {
                break;
            }
            let chosen = if curr_diff.abs() > last_diff {
                last
            } else {
                cur
            };
            c.emit(cx, at(chosen, self.next))?;
            self.update(c);
            c.raise_bound(cx, if self.reflection { self.lo } else { self.next })?;
        }
        Ok(())
    }

    fn close(&mut self, c: &Common, cx: &mut CalculatorContext) -> Result<()> {
        if !self.reservoir.is_empty() && !self.reservoir.sample.is_empty() {
            let sample = self.reservoir.sample.clone();
            c.emit(cx, sample)?;
        }
        Ok(())
    }
}

enum Strategy {
    NoJitter(NoJitter),
    Reproducible(Box<Reproducible>),
    Jitter(Box<Jitter>),
}

struct State {
    common: Common,
    data_in: usize,
    video_header: VideoHeader,
    last: Packet,
    strategy: Strategy,
}

impl Calculator for PacketResamplerCalculator {
    type Options = PacketResamplerCalculatorOptions;

    fn contract(cc: &mut Contract, options: &PacketResamplerCalculatorOptions) -> Result<()> {
        cc.declare(&[
            &DATA_IN,
            &UNTAGGED_IN,
            &HEADER_IN,
            &DATA_OUT,
            &UNTAGGED_OUT,
            &HEADER_OUT,
            &OPTIONS_SIDE,
            &SEED_SIDE,
        ])?;
        for (kind, what) in [(PortKind::Input, "input"), (PortKind::Output, "output")] {
            let ports = cc.ports(kind);
            if ports.has_tag("DATA") && ports.has_tag("") {
                return Err(cc.error(config_error(format!(
                    "give the data {what} stream either as DATA or untagged, not both"
                ))));
            }
        }
        let (Some(data_in), Some(data_out)) = (data_port(cc.inputs()), data_port(cc.outputs()))
        else {
            return Err(cc.error(config_error(
                "needs a DATA (or untagged) input stream and a DATA (or untagged) output stream",
            )));
        };
        cc.set_type(
            PortKind::Output,
            data_out,
            TypeDecl::SameAs(PortKind::Input, data_in),
        );
        // Options given as a side packet may override any field, so they are checked in open.
        if !cc.side_inputs().has_tag("OPTIONS") {
            validate(options, cc.side_inputs().has_tag("SEED")).map_err(|e| cc.error(e))?;
        }
        Ok(())
    }

    fn create(options: &PacketResamplerCalculatorOptions) -> Result<Self> {
        Ok(PacketResamplerCalculator {
            options: options.clone(),
            state: None,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let o = match cx.side_input_opt(&OPTIONS_SIDE)? {
            Some(side) => merge_options(&self.options, side)?,
            None => self.options.clone(),
        };
        let seed = cx.side_input_opt(&SEED_SIDE)?.cloned();
        validate(&o, seed.is_some())?;
        let (Some(data_in), Some(data_out)) = (data_port(cx.inputs()), data_port(cx.outputs()))
        else {
            return Err(config_error("data input or output stream missing").into());
        };
        let period_us = (1e6 / o.frame_rate) as i64;
        let jitter_us = (1e6 * o.jitter / o.frame_rate) as i64;
        let margin = if o.round_limits { period_us / 2 } else { 0 };
        let start = o.start_time.unwrap_or(Timestamp::MIN.value());
        let end = o.end_time.unwrap_or(Timestamp::MAX.value());
        let common = Common {
            frame_rate: o.frame_rate,
            period_us,
            jitter: o.jitter,
            jitter_us,
            lo: ts_add(start, -margin),
            hi: ts_add(end, margin),
            data_out,
            flush_last_packet: o.flush_last_packet && o.jitter == 0.0,
        };

        let mut video_header = VideoHeader {
            frame_rate: o.frame_rate,
            ..VideoHeader::default()
        };
        let input_header = cx.input_header(data_in).clone();
        if !input_header.is_empty() {
            match o.output_header {
                OutputHeader::None => {}
                OutputHeader::PassHeader => cx.output_at(data_out).set_header(input_header)?,
                OutputHeader::UpdateVideoHeader => {
                    let h = input_header.get::<VideoHeader>().map_err(|e| {
                        config_error(format!(
                            "option output_header UPDATE_VIDEO_HEADER needs a VideoHeader header on the data input stream: {e}"
                        ))
                    })?;
                    video_header = VideoHeader {
                        frame_rate: o.frame_rate,
                        ..h.clone()
                    };
                    cx.output_at(data_out)
                        .set_header(Packet::new(video_header.clone()))?;
                }
            }
        }

        let seed = seed.unwrap_or_default();
        let strategy = if o.reproducible_sampling {
            Strategy::Reproducible(Box::new(Reproducible {
                rng: SeededRng::new(&seed),
                lo: None,
                next: 0,
                emitted_this_period: false,
            }))
        } else if o.jitter == 0.0 {
            Strategy::NoJitter(NoJitter {
                base: o.base_timestamp,
                first: None,
                count: 0,
            })
        } else {
            Strategy::Jitter(Box::new(Jitter {
                reflection: o.jitter_with_reflection,
                rng: SeededRng::new(&seed),
                reservoir: Reservoir::new(&seed),
                first: None,
                lo: 0,
                next: 0,
            }))
        };
        if o.jitter != 0.0 && o.flush_last_packet {
            tracing::debug!("{NAME}: flush_last_packet is ignored with jitter");
        }
        self.state = Some(State {
            common,
            data_in,
            video_header,
            last: Packet::empty(),
            strategy,
        });
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(st) = self.state.as_mut() else {
            return Err(config_error("internal: process before open").into());
        };
        let ts = cx.input_timestamp();
        let cur = cx.input_packet(st.data_in).clone();
        if ts == Timestamp::PRE_STREAM {
            if let Some(h) = cx.input(&HEADER_IN).get()? {
                st.video_header = VideoHeader {
                    frame_rate: st.common.frame_rate,
                    ..h.clone()
                };
                if cur.is_empty() {
                    return Ok(Flow::Continue);
                }
            }
        }
        if ts <= Timestamp::PRE_STREAM {
            return Err(config_error(format!(
                "data packets must have range timestamps (got one at {ts:?})"
            ))
            .into());
        }
        let cur = if cur.is_empty() { cur.at(ts) } else { cur };
        let c = &st.common;
        match &mut st.strategy {
            Strategy::NoJitter(s) => s.process(c, cx, &cur, &st.last, &st.video_header)?,
            Strategy::Reproducible(s) => s.process(c, cx, &cur, &st.last)?,
            Strategy::Jitter(s) => s.process(c, cx, &cur, &st.last)?,
        }
        st.last = cur;
        Ok(Flow::Continue)
    }

    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let Some(st) = self.state.as_mut() else {
            return Ok(());
        };
        let c = &st.common;
        match &mut st.strategy {
            Strategy::NoJitter(s) => s.close(c, cx, &st.last),
            Strategy::Reproducible(s) => s.close(c, cx, &st.last),
            Strategy::Jitter(s) => s.close(c, cx),
        }
    }
}

mediagraph_framework::register_calculator!(PacketResamplerCalculator, "PacketResamplerCalculator");

#[cfg(test)]
mod tests {
    use super::SeededRng;
    use crate::test_util::*;
    use crate::VideoHeader;
    use mediagraph_framework::prelude::*;
    use mediagraph_framework::Graph;

    const P: i64 = 100_000; // the period at frame_rate 10

    /// Runs a one-node resampler over input packets whose value is their own timestamp, and
    /// returns `(output timestamp, carried input timestamp)` pairs, or the error text.
    fn try_run(
        options: &str,
        inputs: &[i64],
        seed: Option<&str>,
    ) -> Result<Vec<(i64, i64)>, String> {
        let side = if seed.is_some() {
            "input_side_packet: [seed]\n"
        } else {
            ""
        };
        let node_side = if seed.is_some() {
            "    input_side_packet: [\"SEED:seed\"]\n"
        } else {
            ""
        };
        let yaml = format!(
            "input_stream: [in]\n{side}node:\n  - calculator: PacketResamplerCalculator\n    input_stream: [\"DATA:in\"]\n    output_stream: [\"DATA:out\"]\n{node_side}    options: {options}\n"
        );
        let mut g = Graph::from_yaml_str(&yaml).map_err(|e| e.to_string())?;
        let out = record(&mut g, "out");
        let mut sides = std::collections::HashMap::new();
        if let Some(s) = seed {
            sides.insert("seed".to_string(), Packet::new(s.to_string()));
        }
        g.start_run(sides).map_err(|e| e.to_string())?;
        for &t in inputs {
            if let Err(e) = g.add_packet("in", at(t, t)) {
                let _ = g.finish();
                return Err(e.to_string());
            }
        }
        g.finish().map_err(|e| e.to_string())?;
        Ok(out
            .values::<i64>()
            .into_iter()
            .map(|(t, v)| (t.value(), v))
            .collect())
    }

    fn run(options: &str, inputs: &[i64]) -> Vec<(i64, i64)> {
        try_run(options, inputs, None).unwrap()
    }

    fn steps(start: i64, step: i64, n: i64) -> Vec<i64> {
        (0..n).map(|i| start + i * step).collect()
    }

    // ---- NoJitter, hand-computed cases (§11.3) ----

    #[test]
    fn dividing_rate_keeps_every_other_packet_and_flushes_the_last() {
        // 20 fps in, 10 fps out. Inputs at odd multiples of 50 ms round to the next period
        // (0.5 rounds away from zero) and lose to the packet exactly on the grid.
        let inputs = steps(0, 50_000, 10);
        let expected = vec![
            (0, 0),
            (100_000, 100_000),
            (200_000, 200_000),
            (300_000, 300_000),
            (400_000, 400_000),
            // flush: 450000 belongs to period 5 (round(4.5) = 5), which was never emitted
            (500_000, 450_000),
        ];
        assert_eq!(run("{frame_rate: 10}", &inputs), expected);
        assert_eq!(
            run("{frame_rate: 10, flush_last_packet: false}", &inputs),
            expected[..5].to_vec()
        );
    }

    #[test]
    fn non_dividing_rate_emits_the_nearest_packet_on_the_grid() {
        // 30.0003 fps in (33333 µs apart), 10 fps out.
        let inputs = steps(0, 33_333, 10);
        // 99999 is 1 µs before the grid point 100000, 133332 is 33332 after: 99999 wins, and
        // is only emitted once 133332 shows it is the nearest.
        let expected = vec![
            (0, 0),
            (100_000, 99_999),
            (200_000, 199_998),
            (300_000, 299_997), // flushed at close
        ];
        assert_eq!(run("{frame_rate: 10}", &inputs), expected);
        assert_eq!(
            run("{frame_rate: 10, flush_last_packet: false}", &inputs),
            expected[..3].to_vec()
        );
    }

    #[test]
    fn non_integer_output_rate_rounds_the_grid() {
        // frame_rate 3: grid at round(i * 333333.33) = 0, 333333, 666667, 1000000.
        let inputs = steps(0, 100_000, 11);
        assert_eq!(
            run("{frame_rate: 3}", &inputs),
            vec![
                (0, 0),
                (333_333, 300_000), // |300000-333333| = 33333 < |400000-333333| = 66667
                (666_667, 700_000), // 33333 <= 66667: the later one
                (1_000_000, 1_000_000),
            ]
        );
    }

    #[test]
    fn ties_go_to_the_newer_packet() {
        assert_eq!(
            run(
                "{frame_rate: 10, flush_last_packet: false}",
                &[0, 80_000, 120_000]
            ),
            vec![(0, 0), (100_000, 120_000)]
        );
        assert_eq!(
            run(
                "{frame_rate: 10, flush_last_packet: false}",
                &[0, 80_001, 120_000]
            ),
            vec![(0, 0), (100_000, 80_001)]
        );
        assert_eq!(
            run(
                "{frame_rate: 10, flush_last_packet: false}",
                &[0, 79_999, 120_000]
            ),
            vec![(0, 0), (100_000, 120_000)]
        );
    }

    #[test]
    fn gaps_are_filled_with_the_most_recent_packet() {
        assert_eq!(
            run("{frame_rate: 10}", &[0, 100_000, 450_000, 500_000]),
            vec![
                (0, 0),
                (100_000, 100_000),
                (200_000, 100_000),
                (300_000, 100_000),
                (400_000, 100_000),
                (500_000, 500_000),
            ]
        );
    }

    #[test]
    fn upsampling_repeats_the_most_recent_packet_not_the_nearest() {
        // 250000 is nearer to 200000 than 0 is, but period 2 is filled before 250000 is
        // considered, with the most recent packet (0).
        assert_eq!(
            run("{frame_rate: 10}", &[0, 250_000, 500_000]),
            vec![
                (0, 0),
                (100_000, 0),
                (200_000, 0),
                (300_000, 250_000),
                (400_000, 250_000),
                (500_000, 500_000),
            ]
        );
    }

    #[test]
    fn packets_of_an_already_emitted_period_are_ignored() {
        // 30000 rounds to period 0, already emitted with packet 0.
        assert_eq!(
            run("{frame_rate: 10}", &[0, 30_000, 100_000]),
            vec![(0, 0), (100_000, 100_000)]
        );
    }

    #[test]
    fn first_packet_sets_the_grid_origin() {
        assert_eq!(
            run("{frame_rate: 10}", &[1_234_567, 1_334_567, 1_434_567]),
            vec![
                (1_234_567, 1_234_567),
                (1_334_567, 1_334_567),
                (1_434_567, 1_434_567)
            ]
        );
        // Negative timestamps work the same way.
        assert_eq!(
            run("{frame_rate: 10}", &[-250_000, -150_000, -40_000]),
            vec![
                (-250_000, -250_000),
                (-150_000, -150_000),
                (-50_000, -40_000)
            ]
        );
    }

    #[test]
    fn base_timestamp_aligns_the_grid() {
        let inputs = steps(0, 50_000, 6);
        // Grid 30000 + k * 100000; the first input (0) is nearest to 30000 but earlier, so
        // period 0 is decided by 50000.
        let expected = vec![(30_000, 50_000), (130_000, 150_000), (230_000, 250_000)];
        assert_eq!(
            run("{frame_rate: 10, base_timestamp: 30000}", &inputs),
            expected
        );
        // Any base on the same grid gives the same output.
        assert_eq!(
            run("{frame_rate: 10, base_timestamp: -70000}", &inputs),
            expected
        );
        assert_eq!(
            run("{frame_rate: 10, base_timestamp: 10030000}", &inputs),
            expected
        );
        // A base on the input grid changes nothing.
        assert_eq!(
            run("{frame_rate: 10, base_timestamp: 500000}", &inputs),
            run("{frame_rate: 10}", &inputs)
        );
    }

    #[test]
    fn start_and_end_time_drop_outputs_outside_the_limits() {
        let inputs = steps(0, P, 10);
        assert_eq!(
            run(
                "{frame_rate: 10, start_time: 250000, end_time: 650000}",
                &inputs
            ),
            vec![
                (300_000, 300_000),
                (400_000, 400_000),
                (500_000, 500_000),
                (600_000, 600_000)
            ]
        );
        // end_time is exclusive, start_time inclusive.
        assert_eq!(
            run(
                "{frame_rate: 10, start_time: 300000, end_time: 600000}",
                &inputs
            ),
            vec![(300_000, 300_000), (400_000, 400_000), (500_000, 500_000)]
        );
    }

    #[test]
    fn round_limits_widens_the_limits_by_half_a_period() {
        let inputs = steps(0, P, 10);
        assert_eq!(
            run(
                "{frame_rate: 10, start_time: 250000, end_time: 650000, round_limits: true}",
                &inputs
            ),
            vec![
                (200_000, 200_000),
                (300_000, 300_000),
                (400_000, 400_000),
                (500_000, 500_000),
                (600_000, 600_000)
            ]
        );
        // [start - 50000, end + 50000): 700000 is still out, 199999 would be out.
        assert_eq!(
            run(
                "{frame_rate: 10, start_time: 250001, end_time: 649999, round_limits: true}",
                &inputs
            ),
            vec![
                (300_000, 300_000),
                (400_000, 400_000),
                (500_000, 500_000),
                (600_000, 600_000)
            ]
        );
    }

    #[test]
    fn limits_apply_to_the_flushed_packet() {
        let inputs = steps(0, 50_000, 10);
        let got = run("{frame_rate: 10, end_time: 500000}", &inputs);
        assert_eq!(got.last(), Some(&(400_000, 400_000)));
        let got = run(
            "{frame_rate: 10, end_time: 500000, round_limits: true}",
            &inputs,
        );
        assert_eq!(got.last(), Some(&(500_000, 450_000)));
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert_eq!(run("{frame_rate: 10}", &[]), vec![]);
    }

    /// An independent reading of §11.3, written from the rules (not from the calculator).
    fn reference(frame_rate: f64, flush: bool, inputs: &[i64]) -> Vec<(i64, i64)> {
        let r = |x: f64| -> i64 {
            if x.abs() < 0.5 {
                0
            } else {
                (x + 0.5 * x.signum()).trunc() as i64
            }
        };
        let mut out = Vec::new();
        let Some(&first) = inputs.first() else {
            return out;
        };
        let grid = |i: i64| first + r(i as f64 / frame_rate * 1e6);
        let period_of = |t: i64| r((t - first) as f64 / 1e6 * frame_rate);
        let mut emitted = 0i64;
        let mut prev: Option<i64> = None;
        for &t in inputs {
            let k = period_of(t);
            if k >= emitted {
                for j in emitted..k {
                    out.push((grid(j), prev.expect("a gap needs an earlier packet")));
                }
                emitted = k;
                let g = grid(k);
                if t >= g {
                    let pick = match prev {
                        Some(p) if g - p < t - g => p,
                        _ => t,
                    };
                    out.push((g, pick));
                    emitted += 1;
                }
            }
            prev = Some(t);
        }
        if let Some(p) = prev {
            if flush && period_of(p) == emitted {
                out.push((grid(emitted), p));
            }
        }
        out
    }

    #[test]
    fn matches_an_independent_reference_on_random_streams() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let rates = [1.0, 7.5, 10.0, 24.0, 29.97, 30.0, 60.0, 1000.0 / 3.0];
        for case in 0..60 {
            let rate = rates[case % rates.len()];
            let flush = case % 3 != 0;
            let mut t = next(2_000_000) as i64 - 1_000_000;
            let mut inputs = Vec::new();
            for _ in 0..(5 + next(60)) {
                inputs.push(t);
                let span = if next(10) == 0 { 400_000 } else { 60_000 };
                t += 1 + next(span) as i64;
            }
            let opts = format!("{{frame_rate: {rate}, flush_last_packet: {flush}}}");
            assert_eq!(
                run(&opts, &inputs),
                reference(rate, flush, &inputs),
                "rate {rate}, flush {flush}, inputs {inputs:?}"
            );
        }
    }

    // ---- Jitter (§11.4), with a fixed seed ----

    /// Dense input: one packet every 10 ms for 3 s.
    fn dense() -> Vec<i64> {
        steps(0, 10_000, 301)
    }

    /// Checks that each output carries one of the two inputs around it: the last input before
    /// the output timestamp (`before`) or the first at or after it (`after`), the nearer one,
    /// with ties going to `after` (`later_wins_ties`) or `before`.
    fn check_nearest(inputs: &[i64], outputs: &[(i64, i64)], later_wins_ties: bool) {
        for &(t, v) in outputs {
            let after = inputs.iter().copied().find(|&x| x >= t);
            let before = inputs.iter().copied().rev().find(|&x| x < t);
            let expected = match (before, after) {
                (Some(b), Some(a)) => {
                    if a - t < t - b || (a - t == t - b && later_wins_ties) {
                        a
                    } else {
                        b
                    }
                }
                (None, Some(a)) => a,
                (Some(b), None) => b,
                (None, None) => unreachable!(),
            };
            assert_eq!(v, expected, "output at {t}");
        }
    }

    #[test]
    fn legacy_jitter_with_reflection_is_reproducible_and_bounded() {
        let opts = "{frame_rate: 10, jitter: 0.5, jitter_with_reflection: true}";
        let a = try_run(opts, &dense(), Some("seed-a")).unwrap();
        let b = try_run(opts, &dense(), Some("seed-a")).unwrap();
        let c = try_run(opts, &dense(), Some("seed-b")).unwrap();
        assert_eq!(a, b, "same seed, same output");
        assert_ne!(a, c, "another seed, another output");
        // One output per period [k P, (k+1) P) (the grid starts at the first input, 0): 30
        // from process, and at close the reservoir's sample of period 30 (only 3000000).
        assert_eq!(a.len(), 31, "{a:?}");
        assert_eq!(a[30], (3_000_000, 3_000_000));
        for (k, &(t, _)) in a.iter().enumerate() {
            let lo = k as i64 * P;
            assert!(lo <= t && t < lo + P, "output {k} at {t}");
        }
        check_nearest(&dense(), &a, true);
    }

    #[test]
    fn jitter_without_reflection_is_reproducible_and_bounded() {
        let opts = "{frame_rate: 10, jitter: 0.25}";
        let a = try_run(opts, &dense(), Some("seed-a")).unwrap();
        assert_eq!(a, try_run(opts, &dense(), Some("seed-a")).unwrap());
        assert_ne!(a, try_run(opts, &dense(), Some("seed-b")).unwrap());
        assert!(a[0].0 >= 0 && a[0].0 < P, "{a:?}");
        for w in a.windows(2) {
            let d = w[1].0 - w[0].0;
            assert!((75_000..=125_000).contains(&d), "step {d} in {a:?}");
        }
        check_nearest(&dense(), &a, true);
    }

    #[test]
    fn reproducible_sampling_is_anchored_at_zero() {
        let opts = "{frame_rate: 10, jitter: 0.3, reproducible_sampling: true}";
        let a = try_run(opts, &dense(), Some("s")).unwrap();
        assert_eq!(a, try_run(opts, &dense(), Some("s")).unwrap());
        assert_ne!(a, try_run(opts, &dense(), Some("t")).unwrap());
        // Exactly one output in each period [k P, (k+1) P) of absolute time; the last one
        // (period 30) comes from close, carrying the last packet.
        assert_eq!(a.len(), 31, "{a:?}");
        assert_eq!(a[30].1, 3_000_000);
        for (k, &(t, _)) in a.iter().enumerate() {
            let lo = k as i64 * P;
            assert!(lo <= t && t < lo + P, "output {k} at {t}");
        }
        // Ties go to the earlier packet in this strategy.
        check_nearest(&dense(), &a, false);
        // Starting the stream later keeps the same sampling times for the later periods
        // (that is what "reproducible" means): the grid does not depend on the first packet.
        let late: Vec<i64> = dense().into_iter().filter(|&t| t >= 1_000_000).collect();
        let b = try_run(opts, &late, Some("s")).unwrap();
        let a_late: Vec<i64> = a.iter().map(|p| p.0).filter(|&t| t >= 1_000_000).collect();
        let b_ts: Vec<i64> = b.iter().map(|p| p.0).collect();
        assert!(b_ts.len() >= 19, "{b_ts:?}");
        // Every period >= 1 s has exactly one output in both runs.
        for k in 11..30 {
            let in_a = a_late.iter().filter(|&&t| t / P == k).count();
            let in_b = b_ts.iter().filter(|&&t| t / P == k).count();
            assert_eq!((in_a, in_b), (1, 1), "period {k}");
        }
    }

    #[test]
    fn jitter_with_zero_reproducible_is_a_random_phase_on_the_grid() {
        // jitter 0 with reproducible_sampling: a random phase, then exactly every period.
        let opts = "{frame_rate: 10, reproducible_sampling: true}";
        let a = try_run(opts, &dense(), Some("phase")).unwrap();
        let phase = a[0].0;
        assert!((0..P).contains(&phase));
        for (k, &(t, _)) in a.iter().enumerate() {
            assert_eq!(t, phase + k as i64 * P);
        }
    }

    #[test]
    fn a_single_packet_is_emitted_once_by_every_jitter_strategy() {
        for opts in [
            "{frame_rate: 10, jitter: 0.5}",
            "{frame_rate: 10, jitter: 0.5, jitter_with_reflection: true}",
        ] {
            // Emitted from process (if the first slot is the packet itself) or from the
            // reservoir at close, at the packet's own timestamp.
            assert_eq!(
                try_run(opts, &[5], Some("x")).unwrap(),
                vec![(5, 5)],
                "{opts}"
            );
        }
        let r = try_run(
            "{frame_rate: 10, jitter: 0.5, reproducible_sampling: true}",
            &[5],
            Some("x"),
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, 5);
    }

    #[test]
    fn seeded_rng_is_pinned() {
        // These values define the generator (SHA-256 of the seed -> ChaCha20); a change here
        // changes every jittered output of every graph, which must not happen silently.
        let mut r = SeededRng::new("mediagraph");
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, PINNED_U64);
        let mut r = SeededRng::new("mediagraph");
        let u: Vec<u64> = (0..5).map(|_| r.uniform(1000)).collect();
        assert_eq!(u, PINNED_UNIFORM_1000);
        let mut r = SeededRng::new("");
        for _ in 0..1000 {
            let f = r.uniform_float();
            assert!((0.0..1.0).contains(&f));
            assert!(r.uniform(7) < 7);
            assert_eq!(r.uniform(1), 0);
        }
        assert_eq!(
            try_run(
                "{frame_rate: 10, jitter: 0.5, jitter_with_reflection: true}",
                &dense()[..60],
                Some("mediagraph")
            )
            .unwrap(),
            PINNED_LEGACY
        );
    }

    const PINNED_U64: [u64; 3] = [
        12_929_826_408_138_202_122,
        11_402_621_201_281_201_736,
        15_343_082_234_773_018_085,
    ];
    const PINNED_UNIFORM_1000: [u64; 5] = [122, 736, 85, 84, 315];
    const PINNED_LEGACY: &[(i64, i64)] = &[
        (2_122, 0),
        (108_235, 110_000),
        (221_471, 220_000),
        (345_235, 350_000),
        (422_544, 420_000),
        (528_482, 530_000),
    ];

    // ---- Headers ----

    /// Test source of a stream header: copies its input and sets a VideoHeader header.
    struct HeaderSource;
    const HS_IN: Input<i64> = Input::new("");
    const HS_OUT: Output<i64> = Output::new("");
    impl Calculator for HeaderSource {
        type Options = NoOptions;
        fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
            cc.declare(&[&HS_IN, &HS_OUT])
        }
        fn create(_: &NoOptions) -> Result<Self> {
            Ok(HeaderSource)
        }
        fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
            let h = VideoHeader {
                width: 640,
                height: 480,
                frame_rate: 30.0,
                duration: 2.0,
                frame_count: Some(60),
            };
            cx.output(&HS_OUT).set_header(Packet::new(h))
        }
        fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
            let p = cx.input(&HS_IN).packet().clone();
            cx.output(&HS_OUT).send_packet(p)?;
            Ok(Flow::Continue)
        }
    }
    mediagraph_framework::register_calculator!(HeaderSource, "ResamplerTestHeaderSource");

    /// Test sink: emits its input stream's header (if a VideoHeader) at PreStream.
    struct HeaderProbe;
    const HP_IN: Input<i64> = Input::new("");
    const HP_OUT: Output<VideoHeader> = Output::new("");
    impl Calculator for HeaderProbe {
        type Options = NoOptions;
        fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
            cc.declare(&[&HP_IN, &HP_OUT])
        }
        fn create(_: &NoOptions) -> Result<Self> {
            Ok(HeaderProbe)
        }
        fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
            if let Ok(h) = cx.input_header(0).get::<VideoHeader>() {
                let h = h.clone();
                cx.output(&HP_OUT).send(h, Timestamp::PRE_STREAM)?;
            }
            Ok(())
        }
        fn process(&mut self, _: &mut CalculatorContext) -> Result<Flow> {
            Ok(Flow::Continue)
        }
    }
    mediagraph_framework::register_calculator!(HeaderProbe, "ResamplerTestHeaderProbe");

    type HeaderRun = (Vec<VideoHeader>, Vec<(Timestamp, VideoHeader)>);

    /// Runs source (stream header 640x480 @ 30) -> resampler (10 fps) -> probe; returns the
    /// resampler's output stream header(s) and its `VIDEO_HEADER` output packets. With
    /// `header_input`, a 1920x1080 @ 25 `VIDEO_HEADER` packet is sent at PreStream.
    fn header_run(output_header: &str, header_input: bool) -> HeaderRun {
        let (data, got) = header_run_once(output_header, header_input);
        assert_eq!(data, vec![(ts(0), 0), (ts(100_000), 100_000)]);
        got
    }

    fn header_run_once(
        output_header: &str,
        header_input: bool,
    ) -> (Vec<(Timestamp, i64)>, HeaderRun) {
        let (graph_inputs, header_port) = if header_input {
            ("[in, header_in]", ", \"VIDEO_HEADER:header_in\"")
        } else {
            ("[in]", "")
        };
        let mut g = graph(&format!(
            r#"
input_stream: {graph_inputs}
node:
  - calculator: ResamplerTestHeaderSource
    input_stream: [in]
    output_stream: [with_header]
  - calculator: PacketResamplerCalculator
    input_stream: ["DATA:with_header"{header_port}]
    output_stream: ["DATA:out", "VIDEO_HEADER:header_out"]
    options: {{frame_rate: 10, output_header: {output_header}}}
  - calculator: ResamplerTestHeaderProbe
    input_stream: [out]
    output_stream: [probe]
"#
        ));
        let probe = record(&mut g, "probe");
        let header_out = record(&mut g, "header_out");
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        if header_input {
            let h = VideoHeader {
                width: 1920,
                height: 1080,
                frame_rate: 25.0,
                duration: 0.0,
                frame_count: None,
            };
            g.add_packet("header_in", Packet::new(h).at(Timestamp::PRE_STREAM))
                .unwrap();
            g.close_input_stream("header_in").unwrap();
        }
        for t in [0i64, 50_000, 100_000] {
            g.add_packet("in", at(t, t)).unwrap();
        }
        g.finish().unwrap();
        (
            out.values::<i64>(),
            (
                probe
                    .values::<VideoHeader>()
                    .into_iter()
                    .map(|p| p.1)
                    .collect(),
                header_out.values::<VideoHeader>(),
            ),
        )
    }

    fn source_header_at(frame_rate: f64) -> VideoHeader {
        VideoHeader {
            width: 640,
            height: 480,
            frame_rate,
            duration: 2.0,
            frame_count: Some(60),
        }
    }

    #[test]
    fn video_header_input_replaces_the_header_sent_on_the_video_header_output() {
        let (stream_headers, header_out) = header_run("NONE", true);
        assert!(stream_headers.is_empty(), "NONE sets no stream header");
        let expected = VideoHeader {
            width: 1920,
            height: 1080,
            frame_rate: 10.0,
            duration: 0.0,
            frame_count: None,
        };
        assert_eq!(header_out, vec![(Timestamp::PRE_STREAM, expected)]);
    }

    #[test]
    fn output_header_none_sets_no_stream_header() {
        let (stream_headers, header_out) = header_run("NONE", false);
        assert!(stream_headers.is_empty());
        // The VIDEO_HEADER output is still sent: a default header with the new frame rate.
        assert_eq!(
            header_out,
            vec![(
                Timestamp::PRE_STREAM,
                VideoHeader {
                    frame_rate: 10.0,
                    ..VideoHeader::default()
                }
            )]
        );
    }

    #[test]
    fn pass_header_copies_the_stream_header() {
        let (stream_headers, header_out) = header_run("PASS_HEADER", false);
        assert_eq!(stream_headers, vec![source_header_at(30.0)]);
        assert_eq!(
            header_out[0].1.width, 0,
            "PASS_HEADER does not touch the VIDEO_HEADER output"
        );
    }

    #[test]
    fn update_video_header_replaces_the_frame_rate() {
        let (stream_headers, header_out) = header_run("UPDATE_VIDEO_HEADER", false);
        assert_eq!(stream_headers, vec![source_header_at(10.0)]);
        // ... and it is also what the VIDEO_HEADER output carries.
        assert_eq!(
            header_out,
            vec![(Timestamp::PRE_STREAM, source_header_at(10.0))]
        );
    }

    #[test]
    fn video_header_output_without_input_header_is_a_default_with_the_frame_rate() {
        let mut g = graph(
            r#"
input_stream: [in]
node:
  - calculator: PacketResamplerCalculator
    input_stream: [in]
    output_stream: [out, "VIDEO_HEADER:h"]
    options: {frame_rate: 7.5}
"#,
        );
        let h = record(&mut g, "h");
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(1i64, 0)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            h.values::<VideoHeader>(),
            vec![(
                Timestamp::PRE_STREAM,
                VideoHeader {
                    frame_rate: 7.5,
                    ..VideoHeader::default()
                }
            )]
        );
        assert_eq!(out.values::<i64>(), vec![(ts(0), 1)]);
    }

    // ---- Options ----

    #[test]
    fn options_side_packet_is_merged_over_the_node_options() {
        let mut g = graph(
            r#"
input_stream: [in]
input_side_packet: [opts]
node:
  - calculator: PacketResamplerCalculator
    input_stream: ["DATA:in"]
    output_stream: ["DATA:out"]
    input_side_packet: ["OPTIONS:opts"]
    options: {frame_rate: 1, flush_last_packet: false}
"#,
        );
        let out = record(&mut g, "out");
        let side = [(
            "opts".to_string(),
            Packet::new(serde_json::json!({"frame_rate": 10.0})),
        )]
        .into_iter()
        .collect();
        g.start_run(side).unwrap();
        for t in steps(0, 50_000, 10) {
            g.add_packet("in", at(t, t)).unwrap();
        }
        g.finish().unwrap();
        // frame_rate from the side packet, flush_last_packet: false from the node.
        assert_eq!(out.timestamps().len(), 5);

        let mut g = graph(
            r#"
input_stream: [in]
input_side_packet: [opts]
node:
  - calculator: PacketResamplerCalculator
    input_stream: ["DATA:in"]
    output_stream: ["DATA:out"]
    input_side_packet: ["OPTIONS:opts"]
"#,
        );
        let side = [(
            "opts".to_string(),
            Packet::new(serde_json::json!({"frame_rate": 0})),
        )]
        .into_iter()
        .collect();
        let err = g
            .start_run(side)
            .and_then(|_| g.finish())
            .unwrap_err()
            .to_string();
        assert!(err.contains("frame_rate"), "{err}");
    }

    #[test]
    fn invalid_options_are_errors_naming_the_option() {
        for (opts, seed, needle) in [
            ("{}", None, "frame_rate"),
            ("{frame_rate: 0}", None, "frame_rate"),
            ("{frame_rate: -5}", None, "frame_rate"),
            ("{frame_rate: 2000000}", None, "frame_rate"),
            ("{frame_rate: 10, jitter: 1.5}", Some("s"), "jitter"),
            ("{frame_rate: 10, jitter: -0.1}", Some("s"), "jitter"),
            ("{frame_rate: 10, jitter: 0.5}", None, "SEED"),
            (
                "{frame_rate: 10, reproducible_sampling: true}",
                None,
                "SEED",
            ),
            (
                "{frame_rate: 10, base_timestamp: 9223372036854775807}",
                None,
                "base_timestamp",
            ),
            (
                "{frame_rate: 10, start_time: -9223372036854775808}",
                None,
                "start_time",
            ),
            (
                "{frame_rate: 10, end_time: 9223372036854775806}",
                None,
                "end_time",
            ),
            (
                "{frame_rate: 10, output_header: VIDEO}",
                None,
                "unknown variant `VIDEO`",
            ),
            ("{frame_rate: 10, frame_rte: 3}", None, "frame_rte"),
        ] {
            let err = try_run(opts, &[0], seed).unwrap_err();
            assert!(err.contains(needle), "{opts}: {err}");
        }
    }

    #[test]
    fn data_ports_may_be_untagged_but_not_both() {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - calculator: PacketResamplerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {frame_rate: 10}\n",
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("in", at(String::from("a"), 0)).unwrap();
        g.add_packet("in", at(String::from("b"), 100_000)).unwrap();
        g.finish().unwrap();
        assert_eq!(
            out.values::<String>(),
            vec![(ts(0), "a".to_string()), (ts(100_000), "b".to_string())]
        );
        let err = config_error(
            "input_stream: [a, b]\nnode:\n  - calculator: PacketResamplerCalculator\n    input_stream: [\"DATA:a\", b]\n    output_stream: [out]\n    options: {frame_rate: 10}\n",
        );
        assert!(err.contains("either as DATA or untagged"), "{err}");
        let err = config_error(
            "input_stream: [a]\nnode:\n  - calculator: PacketResamplerCalculator\n    input_stream: [\"DATA:a\"]\n    options: {frame_rate: 10}\n",
        );
        assert!(err.contains("output stream"), "{err}");
    }

    #[test]
    fn output_shares_the_input_payload() {
        let mut g = graph(
            "input_stream: [in]\nnode:\n  - calculator: PacketResamplerCalculator\n    input_stream: [in]\n    output_stream: [out]\n    options: {frame_rate: 10}\n",
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        let p = at(vec![1u8; 100], 0);
        g.add_packet("in", p.clone()).unwrap();
        g.finish().unwrap();
        assert!(out.packets()[0].shares_payload_with(&p));
    }
}
