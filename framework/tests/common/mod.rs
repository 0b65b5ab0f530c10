//! Test calculators and helpers shared by the framework's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use mediagraph_framework::prelude::*;
use mediagraph_framework::{calculator, Graph, HandlerConfig, PortKind};
use serde::Deserialize;

/// Emits `count` i64 packets `start, start+step, ...` at the same timestamps, then stops.
pub struct TSource {
    opts: SourceOptions,
    next: i64,
    emitted: i64,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    pub count: i64,
    #[serde(default)]
    pub start: i64,
    #[serde(default = "one")]
    pub step: i64,
    /// Emit forever (until cancelled or stopped).
    #[serde(default)]
    pub endless: bool,
}

fn one() -> i64 {
    1
}

const SRC_OUT: Output<i64> = Output::new("");

impl Calculator for TSource {
    type Options = SourceOptions;
    fn contract(cc: &mut Contract, _: &SourceOptions) -> Result<()> {
        cc.declare(&[&SRC_OUT])
    }
    fn create(o: &SourceOptions) -> Result<Self> {
        Ok(TSource {
            opts: o.clone(),
            next: o.start,
            emitted: 0,
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if !self.opts.endless && self.emitted >= self.opts.count {
            return Ok(Flow::Stop);
        }
        cx.output(&SRC_OUT)
            .send(self.next, Timestamp::new(self.next))?;
        self.next += self.opts.step;
        self.emitted += 1;
        let total = (!self.opts.endless).then_some(self.opts.count as u64);
        cx.report_progress(self.emitted as u64, total);
        Ok(Flow::Continue)
    }
}

/// Copies every input to the output of the same index (offset 0; independent calls).
pub struct TPass;
const ANY_IN: Input<AnyPacket> = Input::any("").multiple();
const ANY_OUT: Output<AnyPacket> = Output::any("").multiple();

impl Calculator for TPass {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&ANY_IN, &ANY_OUT])?;
        if cc.inputs().len() != cc.outputs().len() {
            return Err(cc.error("needs as many outputs as inputs"));
        }
        for i in 0..cc.outputs().len() {
            cc.set_type(
                PortKind::Output,
                i,
                mediagraph_framework::contract::TypeDecl::SameAs(PortKind::Input, i),
            );
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TPass)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        for i in 0..cx.inputs().len() {
            let p = cx.input_packet(i).clone();
            if !p.is_empty() {
                cx.output_at(i).add(p)?;
            }
        }
        Ok(Flow::Continue)
    }
}

/// Sums inputs A and B (missing counts as 0; independent calls).
pub struct TAdd;
const ADD_A: Input<i64> = Input::new("A");
const ADD_B: Input<i64> = Input::new("B");
const ADD_SUM: Output<i64> = Output::new("SUM");

impl Calculator for TAdd {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&ADD_A, &ADD_B, &ADD_SUM])?;
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TAdd)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let a = cx.input(&ADD_A).get()?.copied().unwrap_or(0);
        let b = cx.input(&ADD_B).get()?.copied().unwrap_or(0);
        let ts = cx.input_timestamp();
        cx.output(&ADD_SUM).send(a + b, ts)?;
        Ok(Flow::Continue)
    }
}

/// Passes packets through but misbehaves at `at`: error, panic, stop, or emits out of order
/// (independent calls).
pub struct TFault {
    opts: FaultOptions,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FaultOptions {
    pub at: i64,
    pub mode: String,
}

const F_IN: Input<i64> = Input::new("");
const F_OUT: Output<i64> = Output::new("").optional();

impl Calculator for TFault {
    type Options = FaultOptions;
    fn contract(cc: &mut Contract, _: &FaultOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])?;
        cc.set_independent_calls(true);
        Ok(())
    }
    fn create(o: &FaultOptions) -> Result<Self> {
        if o.mode == "create_error" {
            bail!("cannot create");
        }
        Ok(TFault { opts: o.clone() })
    }
    fn open(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        if self.opts.mode == "open_error" {
            bail!("open refused");
        }
        Ok(())
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        let v = *cx.input(&F_IN).value()?;
        if ts.value() == self.opts.at {
            match self.opts.mode.as_str() {
                "error" => bail!("refusing packet {v}"),
                "panic" => panic!("boom at {v}"),
                "stop" => return Ok(Flow::Stop),
                "backwards" => {
                    cx.output(&F_OUT).send(v, Timestamp::new(ts.value() - 5))?;
                    return Ok(Flow::Continue);
                }
                "sleep" => std::thread::sleep(Duration::from_millis(50)),
                _ => {}
            }
        }
        cx.output(&F_OUT).send(v, ts)?;
        Ok(Flow::Continue)
    }
    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        if self.opts.mode == "close_error" {
            bail!("close refused");
        }
        Ok(())
    }
}

/// Emits only even values (odd timestamps produce nothing; bounds flow by the offset).
pub struct TEvens;
impl Calculator for TEvens {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TEvens)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let v = *cx.input(&F_IN).value()?;
        if v % 2 == 0 {
            let ts = cx.input_timestamp();
            cx.output(&F_OUT).send(v, ts)?;
        }
        Ok(Flow::Continue)
    }
}

/// Like TEvens but without an offset: emits an explicit bound for odd values instead.
pub struct TEvensBound;
impl Calculator for TEvensBound {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TEvensBound)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let v = *cx.input(&F_IN).value()?;
        let ts = cx.input_timestamp();
        if v % 2 == 0 {
            cx.output(&F_OUT).send(v, ts)?;
        } else {
            cx.output(&F_OUT)
                .set_next_timestamp_bound(ts.next_allowed_in_stream())?;
        }
        Ok(Flow::Continue)
    }
}

/// Reads side packet `VALUE` (i64) in open, emits it added to every input; sets `OUT_SIDE`.
pub struct TSide {
    value: i64,
}
const SIDE_VALUE: SideInput<i64> = SideInput::new("VALUE");
const SIDE_OUT: SideOutput<i64> = SideOutput::new("OUT_SIDE").optional();

impl Calculator for TSide {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT, &SIDE_VALUE, &SIDE_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TSide { value: 0 })
    }
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        self.value = *cx.side_input(&SIDE_VALUE)?;
        cx.set_side_output(&SIDE_OUT, self.value * 10)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let v = *cx.input(&F_IN).value()?;
        let ts = cx.input_timestamp();
        cx.output(&F_OUT).send(v + self.value, ts)?;
        Ok(Flow::Continue)
    }
}

/// Records the inputs of every call (timestamps and emptiness), Immediate handler.
pub struct TRecorder {
    log: Arc<Mutex<Vec<String>>>,
}

/// Call logs of `TRecorder` nodes, by their `key` option.
pub type RecorderLogs = Mutex<HashMap<String, Arc<Mutex<Vec<String>>>>>;

pub fn recorder_log() -> &'static RecorderLogs {
    static LOG: std::sync::OnceLock<RecorderLogs> = std::sync::OnceLock::new();
    LOG.get_or_init(Default::default)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecorderOptions {
    pub key: String,
    #[serde(default)]
    pub immediate: bool,
    #[serde(default)]
    pub bounds: bool,
}

const REC_IN: Input<AnyPacket> = Input::any("").multiple();

impl Calculator for TRecorder {
    type Options = RecorderOptions;
    fn contract(cc: &mut Contract, o: &RecorderOptions) -> Result<()> {
        cc.declare(&[&REC_IN])?;
        if o.immediate {
            cc.set_input_stream_handler(HandlerConfig::named("ImmediateInputStreamHandler"));
        }
        cc.set_process_timestamp_bounds(o.bounds);
        Ok(())
    }
    fn create(o: &RecorderOptions) -> Result<Self> {
        let log = recorder_log()
            .lock()
            .unwrap()
            .entry(o.key.clone())
            .or_default()
            .clone();
        Ok(TRecorder { log })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let mut parts = vec![format!("@{}", cx.input_timestamp())];
        for i in 0..cx.inputs().len() {
            let p = cx.input_packet(i);
            parts.push(if p.is_empty() {
                format!("_{}", p.timestamp())
            } else {
                format!("{}", p.timestamp())
            });
        }
        self.log.lock().unwrap().push(parts.join(" "));
        Ok(Flow::Continue)
    }
    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        self.log.lock().unwrap().push("close".into());
        Ok(())
    }
}

pub fn take_log(key: &str) -> Vec<String> {
    recorder_log()
        .lock()
        .unwrap()
        .get(key)
        .map(|l| std::mem::take(&mut *l.lock().unwrap()))
        .unwrap_or_default()
}

/// Passes packets through after sleeping `sleep_us`, and logs (under `key`) how many entries
/// the log `<key>-seen` had when each call began: the test's observer of the output appends
/// there, so the log shows which outputs were delivered before each call.
pub struct TProbe {
    log: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<String>>>,
    sleep: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProbeOptions {
    pub key: String,
    pub sleep_us: u64,
}

impl Calculator for TProbe {
    type Options = ProbeOptions;
    fn contract(cc: &mut Contract, _: &ProbeOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])
    }
    fn create(o: &ProbeOptions) -> Result<Self> {
        let logs = recorder_log();
        let mut logs = logs.lock().unwrap();
        Ok(TProbe {
            log: logs.entry(o.key.clone()).or_default().clone(),
            seen: logs.entry(format!("{}-seen", o.key)).or_default().clone(),
            sleep: Duration::from_micros(o.sleep_us),
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let seen = self.seen.lock().unwrap().len();
        self.log.lock().unwrap().push(seen.to_string());
        std::thread::sleep(self.sleep);
        let v = *cx.input(&F_IN).value()?;
        let ts = cx.input_timestamp();
        cx.output(&F_OUT).send(v, ts)?;
        Ok(Flow::Continue)
    }
}

/// Emits the graph clock's reading (µs) for every input packet.
pub struct TClock;
impl Calculator for TClock {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TClock)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let now = cx.clock().now().as_micros() as i64;
        let ts = cx.input_timestamp();
        cx.output(&F_OUT).send(now, ts)?;
        Ok(Flow::Continue)
    }
}

/// Emits its input's header (an i64 read in `open`) with every packet; passes headers on.
pub struct THeader {
    header: i64,
}
impl Calculator for THeader {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &F_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(THeader { header: -1 })
    }
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let h = cx.input_header(0).clone();
        if let Ok(v) = h.get::<i64>() {
            self.header = *v;
            cx.output(&F_OUT).set_header(h)?;
        }
        Ok(())
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let ts = cx.input_timestamp();
        cx.output(&F_OUT).send(self.header, ts)?;
        Ok(Flow::Continue)
    }
}

/// Sets output side packet `COUNT` (i64) from the first input packet's value, in `process`.
pub struct TSideLater {
    sent: bool,
}
const LATER_OUT: SideOutput<i64> = SideOutput::new("COUNT");
impl Calculator for TSideLater {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&F_IN, &LATER_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TSideLater { sent: false })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let v = *cx.input(&F_IN).value()?;
        if !self.sent {
            self.sent = true;
            cx.set_side_output(&LATER_OUT, v)?;
        }
        Ok(Flow::Continue)
    }
}

/// A source that emits side packet `COUNT` packets (so it opens only once that is known).
pub struct TCountSource {
    left: i64,
    next: i64,
}
const COUNT_IN: SideInput<i64> = SideInput::new("COUNT");
impl Calculator for TCountSource {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&COUNT_IN, &SRC_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TCountSource { left: 0, next: 0 })
    }
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        self.left = *cx.side_input(&COUNT_IN)?;
        Ok(())
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if self.left == 0 {
            return Ok(Flow::Stop);
        }
        cx.output(&SRC_OUT)
            .send(self.next, Timestamp::new(self.next))?;
        self.next += 1;
        self.left -= 1;
        Ok(Flow::Continue)
    }
}

/// Holds every input packet and sends them all in `close` (like a node with lookahead).
pub struct THold {
    held: Vec<Packet>,
}
const HOLD_IN: Input<AnyPacket> = Input::any("");
const HOLD_OUT: Output<AnyPacket> = Output::any("");

impl Calculator for THold {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&HOLD_IN, &HOLD_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(THold { held: Vec::new() })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        self.held.push(cx.input_packet(0).clone());
        Ok(Flow::Continue)
    }
    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        for p in self.held.drain(..) {
            cx.output_at(0).add(p)?;
        }
        Ok(())
    }
}

/// Registers the test calculators once per test binary.
/// Outputs the name of the thread each call ran on.
pub struct TThreadName;
const NAME_IN: Input<AnyPacket> = Input::any("");
const NAME_OUT: Output<String> = Output::new("");

impl Calculator for TThreadName {
    type Options = NoOptions;
    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&NAME_IN, &NAME_OUT])
    }
    fn create(_: &NoOptions) -> Result<Self> {
        Ok(TThreadName)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let name = std::thread::current().name().unwrap_or("").to_string();
        let ts = cx.input_timestamp();
        cx.output(&NAME_OUT).send(name, ts)?;
        Ok(Flow::Continue)
    }
}

/// Property-test cases: `default`, or `MEDIAGRAPH_STRESS_CASES` when set (for long stress runs,
/// e.g. `MEDIAGRAPH_STRESS_CASES=2000 cargo test --release -p mediagraph-framework`).
pub fn stress_cases(default: u32) -> u32 {
    std::env::var("MEDIAGRAPH_STRESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        calculator::register::<TSource>("TSource");
        calculator::register::<TPass>("TPass");
        calculator::register::<TAdd>("TAdd");
        calculator::register::<TFault>("TFault");
        calculator::register::<TEvens>("TEvens");
        calculator::register::<TEvensBound>("TEvensBound");
        calculator::register::<TSide>("TSide");
        calculator::register::<TRecorder>("TRecorder");
        calculator::register::<TClock>("TClock");
        calculator::register::<THeader>("THeader");
        calculator::register::<TSideLater>("TSideLater");
        calculator::register::<TCountSource>("TCountSource");
        calculator::register::<TProbe>("TProbe");
        calculator::register::<THold>("THold");
        calculator::register::<TThreadName>("TThreadName");
    });
}

pub fn graph(yaml: &str) -> Graph {
    setup();
    match Graph::from_yaml_str(yaml) {
        Ok(g) => g,
        Err(e) => panic!("config error: {e}"),
    }
}

/// Graph inputs `a` and `b` summed by one TAdd node (output `sum`) with input stream handler
/// `handler` (YAML).
pub fn sum_graph(handler: &str) -> Graph {
    graph(&format!(
        "input_stream: [a, b]\nnode:\n  - calculator: TAdd\n    input_stream: [\"A:a\", \"B:b\"]\n    output_stream: [\"SUM:sum\"]\n    input_stream_handler: {handler}\n"
    ))
}

/// Runs `f` on another thread and fails the test if it does not finish within `secs`.
pub fn with_timeout<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            let _ = worker.join();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {secs} s (hang)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("test thread ended without a result"),
        },
    }
}

pub fn ints(poller: &mediagraph_framework::OutputStreamPoller) -> Vec<(i64, i64)> {
    std::iter::from_fn(|| poller.next())
        .map(|p| (p.timestamp().value(), *p.get::<i64>().unwrap()))
        .collect()
}
