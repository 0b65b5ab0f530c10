//! `CountingSourceCalculator`: a test source of counting integers.

use mediagraph_framework::prelude::*;
use serde::Deserialize;

/// A source that emits the integers `INITIAL_VALUE, +INCREMENT, ...` (default 0, 1, 2, ...),
/// each at the timestamp equal to its value, `batch_size` packets per `process` call, and can
/// fail on purpose. Meant for tests and examples.
///
/// * Output stream: one untagged stream of `i64`.
/// * Input side packets (all optional, each overriding the option of the same meaning):
///   `ERROR_ON_OPEN` (bool: fail in `open`), `MAX_COUNT` (i64: number of batches, as in
///   MediaPipe: `MAX_COUNT * BATCH_SIZE` packets), `ERROR_COUNT` (i64: fail after that many
///   batches), `BATCH_SIZE` (i64 > 0), `INITIAL_VALUE` (i64), `INCREMENT` (i64 > 0).
/// * Options ([`CountingSourceOptions`]): `count` (total packets; -1 = no limit),
///   `batch_size` (default 1), `error_count` (-1 = never; otherwise the call after that many
///   batches fails).
///
/// A call first fails if `error_count` batches were emitted, then stops (`Flow::Stop`) if the
/// limit was reached, else emits the next batch (the last batch may be short to honour
/// `count`). Something must end the run: `count`, `error_count`, `MAX_COUNT` or
/// `ERROR_COUNT`; a node without any is a contract error.
///
/// ```yaml
/// - calculator: CountingSourceCalculator
///   output_stream: [numbers]
///   options: {count: 100, batch_size: 10}
/// ```
pub struct CountingSourceCalculator {
    /// Packets still allowed (`None`: no packet limit).
    remaining: Option<i64>,
    /// Batches still allowed (`None`: no batch limit).
    max_batches: Option<i64>,
    error_count: i64,
    batch_size: i64,
    batches: i64,
    counter: i64,
    increment: i64,
}

/// Options of [`CountingSourceCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountingSourceOptions {
    /// How many packets to emit in total (-1: no limit; `MAX_COUNT` overrides).
    pub count: i64,
    /// Packets per `process` call (default 1; `BATCH_SIZE` overrides).
    pub batch_size: i64,
    /// Fail the `process` call that follows this many batches (-1: never; `ERROR_COUNT`
    /// overrides).
    pub error_count: i64,
}

impl Default for CountingSourceOptions {
    fn default() -> Self {
        CountingSourceOptions {
            count: -1,
            batch_size: 1,
            error_count: -1,
        }
    }
}

const OUT: Output<i64> = Output::new("");
const ERROR_ON_OPEN: SideInput<bool> = SideInput::new("ERROR_ON_OPEN").optional();
const MAX_COUNT: SideInput<i64> = SideInput::new("MAX_COUNT").optional();
const ERROR_COUNT: SideInput<i64> = SideInput::new("ERROR_COUNT").optional();
const BATCH_SIZE: SideInput<i64> = SideInput::new("BATCH_SIZE").optional();
const INITIAL_VALUE: SideInput<i64> = SideInput::new("INITIAL_VALUE").optional();
const INCREMENT: SideInput<i64> = SideInput::new("INCREMENT").optional();

fn config_error(cc: &Contract, message: impl Into<String>) -> Error {
    cc.error(crate::Error::Config {
        calculator: "CountingSourceCalculator",
        message: message.into(),
    })
}

fn side_error(tag: &'static str, message: impl Into<String>) -> Error {
    crate::Error::SidePacket {
        tag,
        message: message.into(),
    }
    .into()
}

impl Calculator for CountingSourceCalculator {
    type Options = CountingSourceOptions;

    fn contract(cc: &mut Contract, o: &CountingSourceOptions) -> Result<()> {
        cc.declare(&[
            &OUT,
            &ERROR_ON_OPEN,
            &MAX_COUNT,
            &ERROR_COUNT,
            &BATCH_SIZE,
            &INITIAL_VALUE,
            &INCREMENT,
        ])?;
        if o.count < -1 || o.error_count < -1 {
            return Err(config_error(
                cc,
                "count and error_count must be -1 (unset) or >= 0",
            ));
        }
        if o.batch_size < 1 {
            return Err(config_error(
                cc,
                format!("batch_size must be > 0, got {}", o.batch_size),
            ));
        }
        let side = cc.side_inputs();
        if o.count < 0
            && o.error_count < 0
            && !side.has_tag("MAX_COUNT")
            && !side.has_tag("ERROR_COUNT")
        {
            return Err(config_error(
                cc,
                "nothing would end the stream: set the count or error_count option, or connect MAX_COUNT or ERROR_COUNT",
            ));
        }
        Ok(())
    }

    fn create(o: &CountingSourceOptions) -> Result<Self> {
        Ok(CountingSourceCalculator {
            remaining: (o.count >= 0).then_some(o.count),
            max_batches: None,
            error_count: o.error_count,
            batch_size: o.batch_size,
            batches: 0,
            counter: 0,
            increment: 1,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if cx.side_input_opt(&ERROR_ON_OPEN)?.copied().unwrap_or(false) {
            return Err(crate::Error::Injected("ERROR_ON_OPEN is true".into()).into());
        }
        if let Some(&n) = cx.side_input_opt(&ERROR_COUNT)? {
            if n < 0 {
                return Err(side_error("ERROR_COUNT", format!("must be >= 0, got {n}")));
            }
            self.error_count = n;
        }
        if let Some(&n) = cx.side_input_opt(&MAX_COUNT)? {
            if n < 0 {
                return Err(side_error("MAX_COUNT", format!("must be >= 0, got {n}")));
            }
            self.max_batches = Some(n);
            self.remaining = None;
        }
        if let Some(&n) = cx.side_input_opt(&BATCH_SIZE)? {
            if n <= 0 {
                return Err(side_error("BATCH_SIZE", format!("must be > 0, got {n}")));
            }
            self.batch_size = n;
        }
        if let Some(&n) = cx.side_input_opt(&INITIAL_VALUE)? {
            self.counter = n;
        }
        if let Some(&n) = cx.side_input_opt(&INCREMENT)? {
            if n <= 0 {
                return Err(side_error("INCREMENT", format!("must be > 0, got {n}")));
            }
            self.increment = n;
        }
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if self.error_count >= 0 && self.batches >= self.error_count {
            return Err(crate::Error::Injected(format!(
                "error_count reached after {} batch(es)",
                self.batches
            ))
            .into());
        }
        let exhausted = match (self.max_batches, self.remaining) {
            (Some(max), _) => self.batches >= max,
            (None, Some(left)) => left <= 0,
            (None, None) => false,
        };
        if exhausted {
            return Ok(Flow::Stop);
        }
        let n = self
            .remaining
            .map_or(self.batch_size, |left| left.min(self.batch_size));
        for _ in 0..n {
            let ts = Timestamp::try_new(self.counter)?;
            cx.output(&OUT).send(self.counter, ts)?;
            self.counter = self
                .counter
                .checked_add(self.increment)
                .ok_or_else(|| Error::msg("CountingSourceCalculator: counter overflow"))?;
        }
        if let Some(left) = &mut self.remaining {
            *left -= n;
        }
        self.batches += 1;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(CountingSourceCalculator, "CountingSourceCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use mediagraph_framework::{Packet, SidePackets, Timestamp};

    fn run(options: &str, sides: &[(&str, Packet)]) -> (Result<(), String>, Vec<(Timestamp, i64)>) {
        let names: Vec<String> = sides
            .iter()
            .map(|(tag, _)| format!("\"{tag}:{}\"", tag.to_lowercase()))
            .collect();
        let side_list = if names.is_empty() {
            String::new()
        } else {
            format!("    input_side_packet: [{}]\n", names.join(", "))
        };
        let graph_sides: Vec<String> = sides.iter().map(|(t, _)| t.to_lowercase()).collect();
        let mut g = graph(&format!(
            r#"
input_side_packet: [{}]
node:
  - calculator: CountingSourceCalculator
    name: counter
    output_stream: [out]
{side_list}    options: {options}
"#,
            graph_sides.join(", ")
        ));
        let out = record(&mut g, "out");
        let side: SidePackets = sides
            .iter()
            .map(|(t, p)| (t.to_lowercase(), p.clone()))
            .collect();
        let result = g.run(side).map_err(|e| e.to_string());
        (result, out.values::<i64>())
    }

    fn counting(range: std::ops::Range<i64>) -> Vec<(Timestamp, i64)> {
        range.map(|i| (ts(i), i)).collect()
    }

    #[test]
    fn counts_from_zero() {
        let (r, out) = run("{count: 5}", &[]);
        r.unwrap();
        assert_eq!(out, counting(0..5));
        let (r, out) = run("{count: 0}", &[]);
        r.unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn batches_honour_the_total_count() {
        let (r, out) = run("{count: 5, batch_size: 2}", &[]);
        r.unwrap();
        assert_eq!(out, counting(0..5));
    }

    #[test]
    fn max_count_counts_batches_like_mediapipe() {
        let (r, out) = run(
            "{}",
            &[
                ("MAX_COUNT", Packet::new(2i64)),
                ("BATCH_SIZE", Packet::new(3i64)),
            ],
        );
        r.unwrap();
        assert_eq!(out, counting(0..6));
    }

    #[test]
    fn initial_value_and_increment() {
        let (r, out) = run(
            "{count: 3}",
            &[
                ("INITIAL_VALUE", Packet::new(10i64)),
                ("INCREMENT", Packet::new(5i64)),
            ],
        );
        r.unwrap();
        assert_eq!(out, vec![(ts(10), 10), (ts(15), 15), (ts(20), 20)]);
    }

    #[test]
    fn error_count_fails_the_run_and_names_the_node() {
        let (r, out) = run("{count: 10, error_count: 2}", &[]);
        let err = r.unwrap_err();
        assert!(err.contains("node \"counter\""), "{err}");
        assert!(err.contains("process"), "{err}");
        assert!(err.contains("expected error"), "{err}");
        assert_eq!(out, counting(0..2));

        let (r, out) = run("{}", &[("ERROR_COUNT", Packet::new(0i64))]);
        let err = r.unwrap_err();
        assert!(
            err.contains("node \"counter\"") && err.contains("expected error"),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn error_on_open() {
        let (r, out) = run("{count: 3}", &[("ERROR_ON_OPEN", Packet::new(true))]);
        let err = r.unwrap_err();
        assert!(err.contains("open of node \"counter\""), "{err}");
        assert!(err.contains("ERROR_ON_OPEN"), "{err}");
        assert!(out.is_empty());

        let (r, out) = run("{count: 3}", &[("ERROR_ON_OPEN", Packet::new(false))]);
        r.unwrap();
        assert_eq!(out, counting(0..3));
    }

    #[test]
    fn bad_side_packet_values_are_errors() {
        let (r, _) = run("{}", &[("MAX_COUNT", Packet::new(-3i64))]);
        let err = r.unwrap_err();
        assert!(
            err.contains("MAX_COUNT") && err.contains("node \"counter\""),
            "{err}"
        );
        let (r, _) = run("{count: 1}", &[("BATCH_SIZE", Packet::new(0i64))]);
        assert!(r.unwrap_err().contains("BATCH_SIZE"));
    }

    #[test]
    fn contract_requires_an_end() {
        let err = config_error(
            r#"
node:
  - calculator: CountingSourceCalculator
    output_stream: [out]
"#,
        );
        assert!(err.contains("nothing would end the stream"), "{err}");
        let err = config_error(
            r#"
node:
  - calculator: CountingSourceCalculator
    output_stream: [out]
    options: {count: 3, batch_size: 0}
"#,
        );
        assert!(err.contains("batch_size"), "{err}");
    }
}
