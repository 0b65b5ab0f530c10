//! The `Calculator` trait, the context a calculator sees in `open` / `process` / `close`, and
//! the registry that lets YAML name calculators.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde::de::DeserializeOwned;

use crate::contract::{AnyPacket, Contract, Input, Output, SideInput, SideOutput};
use crate::error::{Error, Phase, Result};
use crate::packet::Packet;
use crate::port::PortSet;
use crate::timestamp::{Timestamp, TimestampDiff};
use crate::types::PacketType;

/// What `process` asks of the framework next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going (a source is called again).
    Continue,
    /// A source is finished and is closed; a non-source asks the graph to stop its sources.
    Stop,
}

/// A node's behaviour. One value is created per run from the node's options.
///
/// ```
/// use mediagraph_framework::prelude::*;
///
/// /// Adds one to every integer.
/// struct AddOne;
/// const IN: Input<i64> = Input::new("");
/// const OUT: Output<i64> = Output::new("");
///
/// impl Calculator for AddOne {
///     type Options = NoOptions;
///     fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
///         cc.declare(&[&IN, &OUT])
///     }
///     fn create(_: &NoOptions) -> Result<Self> {
///         Ok(AddOne)
///     }
///     fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
///         if let Some(v) = cx.input(&IN).get()? {
///             let ts = cx.input_timestamp();
///             cx.output(&OUT).send(v + 1, ts)?;
///         }
///         Ok(Flow::Continue)
///     }
/// }
/// mediagraph_framework::register_calculator!(AddOne, "AddOneCalculator");
/// ```
pub trait Calculator: Send + Sized + 'static {
    /// The node's `options`, deserialized from the config (unknown fields must be an error:
    /// use `#[serde(deny_unknown_fields)]`). Absent options give `Default::default()`.
    type Options: DeserializeOwned + Default + Send + Sync + 'static;

    /// Declares the node's ports and settings; called once when the graph is loaded.
    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()>;

    /// Creates the calculator for one run.
    fn create(options: &Self::Options) -> Result<Self>;

    /// Called once per run before any `process`, with input timestamp `Unstarted`.
    fn open(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        Ok(())
    }

    /// Called for each input timestamp (for a source: repeatedly until it returns `Stop`).
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow>;

    /// Called once after the last `process`, with input timestamp `Done`.
    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        Ok(())
    }
}

/// Options type for calculators that take none: any field given is an error.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// Object-safe form of [`Calculator`], used by the runtime.
pub(crate) trait DynCalculator: Send {
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()>;
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow>;
    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()>;
}

impl<C: Calculator> DynCalculator for C {
    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        Calculator::open(self, cx)
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        Calculator::process(self, cx)
    }
    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        Calculator::close(self, cx)
    }
}

/// Parsed options, shared between the contract and every run's calculator.
pub type SharedOptions = Arc<dyn Any + Send + Sync>;

/// How to build one registered calculator.
#[derive(Clone)]
pub struct CalculatorRegistration {
    /// The name YAML uses in `calculator:`.
    pub name: Cow<'static, str>,
    /// The Rust type name of the calculator.
    pub type_name: fn() -> &'static str,
    /// The Rust type name of its options.
    pub options_type: fn() -> &'static str,
    pub(crate) parse_options: fn(&serde_json::Value) -> Result<SharedOptions>,
    pub(crate) contract: fn(&mut Contract, &SharedOptions) -> Result<()>,
    pub(crate) create: fn(&SharedOptions) -> Result<Box<dyn DynCalculator>>,
}

fn parse_options_impl<C: Calculator>(value: &serde_json::Value) -> Result<SharedOptions> {
    if value.is_null() {
        return Ok(Arc::new(C::Options::default()));
    }
    let options: C::Options =
        serde_json::from_value(value.clone()).map_err(|e| Error::msg(format!("options: {e}")))?;
    Ok(Arc::new(options))
}

fn downcast_options<C: Calculator>(options: &SharedOptions) -> Result<&C::Options> {
    options
        .downcast_ref::<C::Options>()
        .ok_or_else(|| Error::msg("internal: options of the wrong type"))
}

fn contract_impl<C: Calculator>(cc: &mut Contract, options: &SharedOptions) -> Result<()> {
    C::contract(cc, downcast_options::<C>(options)?)
}

fn create_impl<C: Calculator>(options: &SharedOptions) -> Result<Box<dyn DynCalculator>> {
    Ok(Box::new(C::create(downcast_options::<C>(options)?)?))
}

impl CalculatorRegistration {
    /// The registration of `C` under `name`.
    pub const fn of<C: Calculator>(name: &'static str) -> CalculatorRegistration {
        CalculatorRegistration {
            name: Cow::Borrowed(name),
            type_name: std::any::type_name::<C>,
            options_type: std::any::type_name::<C::Options>,
            parse_options: parse_options_impl::<C>,
            contract: contract_impl::<C>,
            create: create_impl::<C>,
        }
    }

    /// Parses a node's options (`null` for none) into the calculator's options type.
    pub fn parse_options(&self, value: &serde_json::Value) -> Result<SharedOptions> {
        (self.parse_options)(value)
    }

    /// What the calculator declares with default options: its typed ports, timestamp offset,
    /// preferred input stream handler. Ports a calculator only declares by inspecting the
    /// connected ones (rather than with typed port constants) do not show.
    pub fn describe(&self) -> Contract {
        let mut cc = Contract::describing(&self.name);
        if let Ok(options) = self.parse_options(&serde_json::Value::Null) {
            // Checks that need connected ports fail here (or even panic in a careless contract
            // function); what was declared before is kept.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (self.contract)(&mut cc, &options)
            }));
        }
        cc
    }

    /// Runs the calculator's contract function.
    pub fn fill_contract(&self, cc: &mut Contract, options: &SharedOptions) -> Result<()> {
        (self.contract)(cc, options)?;
        cc.check_complete()
    }
}

inventory::collect!(CalculatorRegistration);

/// Registers a calculator type under a name (default: the type's name) at compile time.
///
/// ```ignore
/// register_calculator!(PassThroughCalculator);
/// register_calculator!(PassThroughCalculator, "PassThrough"); // an alias
/// ```
#[macro_export]
macro_rules! register_calculator {
    ($ty:ty) => {
        $crate::register_calculator!($ty, stringify!($ty));
    };
    ($ty:ty, $name:expr) => {
        $crate::inventory::submit! {
            $crate::calculator::CalculatorRegistration::of::<$ty>($name)
        }
    };
}

/// The registry of calculators: everything registered with [`register_calculator!`] plus what
/// was added at run time with [`register`].
fn runtime_registry() -> &'static RwLock<HashMap<String, Arc<CalculatorRegistration>>> {
    static REG: OnceLock<RwLock<HashMap<String, Arc<CalculatorRegistration>>>> = OnceLock::new();
    REG.get_or_init(|| {
        let map = inventory::iter::<CalculatorRegistration>
            .into_iter()
            .map(|r| (r.name.to_string(), Arc::new(r.clone())))
            .collect();
        RwLock::new(map)
    })
}

/// Registers calculator `C` under `name` at run time (replacing any earlier one of that name).
pub fn register<C: Calculator>(name: &str) {
    let mut reg = CalculatorRegistration::of::<C>("");
    reg.name = Cow::Owned(name.to_string());
    runtime_registry()
        .write()
        .insert(name.to_string(), Arc::new(reg));
}

/// The calculator registered under `name`.
pub fn lookup(name: &str) -> Option<Arc<CalculatorRegistration>> {
    runtime_registry().read().get(name).cloned()
}

/// Every registered calculator, sorted by name.
pub fn registered() -> Vec<Arc<CalculatorRegistration>> {
    let mut all: Vec<_> = runtime_registry().read().values().cloned().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Thins out a warning that can repeat on every packet: [`RepeatedWarning::occurred`]
/// counts every occurrence and says which ones to log (the 1st, 10th, 100th, 1000th, ...),
/// so a condition that persists does not flood the log, and each logged line can carry the
/// count so far. Keep one per kind of warning in the calculator (per run).
///
/// ```
/// use mediagraph_framework::RepeatedWarning;
///
/// let mut too_old = RepeatedWarning::default();
/// let logged: Vec<u64> = (0..1000).filter_map(|_| too_old.occurred()).collect();
/// assert_eq!(logged, [1, 10, 100, 1000]);
/// assert_eq!(too_old.count(), 1000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RepeatedWarning {
    count: u64,
    next_logged: u64,
}

impl RepeatedWarning {
    /// Says in a logged line which occurrences are logged.
    pub const NOTE: &'static str = "logged at the 1st, 10th, 100th, ... occurrence";

    /// Counts one occurrence; returns the count so far when this one is to be logged.
    pub fn occurred(&mut self) -> Option<u64> {
        self.count += 1;
        (self.count >= self.next_logged).then(|| {
            self.next_logged = self.count.saturating_mul(10);
            self.count
        })
    }

    /// Occurrences so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The fixed facts about a node that every invocation's context can see.
pub struct NodeInfo {
    /// Canonical node name.
    pub name: String,
    /// Registered calculator name.
    pub calculator: String,
    /// The contract (ports, declared types, settings).
    pub contract: Contract,
    /// The resolved type of each output stream (checked on every added packet).
    pub output_types: Vec<PacketType>,
    /// The parsed options.
    pub options: SharedOptions,
}

/// One output stream's share of an invocation: the packets added, a requested bound, a close.
pub struct OutputShard {
    pub(crate) stream: Arc<str>,
    pub(crate) packet_type: PacketType,
    pub(crate) packets: Vec<Packet>,
    pub(crate) bound_request: Option<Timestamp>,
    pub(crate) close_request: bool,
    pub(crate) header: Option<Packet>,
    pub(crate) offset: Option<TimestampDiff>,
    /// The stream's bound when the invocation began.
    pub(crate) start_bound: Timestamp,
    /// The smallest timestamp the next packet may carry.
    pub(crate) next_allowed: Timestamp,
    pub(crate) closed: bool,
    pub(crate) emitted_any: bool,
    pub(crate) in_open: bool,
}

impl OutputShard {
    pub(crate) fn new(stream: Arc<str>, packet_type: PacketType) -> OutputShard {
        OutputShard {
            stream,
            packet_type,
            packets: Vec::new(),
            bound_request: None,
            close_request: false,
            header: None,
            offset: None,
            start_bound: Timestamp::PRE_STREAM,
            next_allowed: Timestamp::PRE_STREAM,
            closed: false,
            emitted_any: false,
            in_open: false,
        }
    }

    fn stream_error(&self, message: String) -> Error {
        Error::Stream {
            stream: self.stream.to_string(),
            message,
        }
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Adds a packet. Its timestamp must be allowed in a stream and not below the stream's
    /// bound; an empty packet only advances the bound past its timestamp.
    pub fn add(&mut self, packet: Packet) -> Result<()> {
        let ts = packet.timestamp();
        if self.closed || self.close_request {
            return Err(self.stream_error(format!("packet at {ts} sent to a closed stream")));
        }
        if !ts.is_allowed_in_stream() {
            return Err(self.stream_error(format!(
                "timestamp not specified or set to an illegal value ({ts:?})"
            )));
        }
        if ts < self.next_allowed {
            return Err(self.stream_error(format!(
                "packet timestamp mismatch: the minimum expected timestamp is {} but received {}; timestamps on a stream must strictly increase",
                self.next_allowed, ts
            )));
        }
        if ts == Timestamp::POST_STREAM && self.emitted_any {
            return Err(self
                .stream_error("a PostStream packet must be the only packet of its stream".into()));
        }
        if packet.is_empty() {
            let b = ts.next_allowed_in_stream();
            self.bound_request = Some(self.bound_request.map_or(b, |r| r.max(b)));
            return Ok(());
        }
        let type_id = packet.type_id().expect("non-empty packet");
        if !self.packet_type.accepts(type_id) {
            return Err(self.stream_error(format!(
                "packet of type {} added, but the stream carries {}",
                packet.short_type_name(),
                self.packet_type
            )));
        }
        self.next_allowed = ts.next_allowed_in_stream();
        self.emitted_any = true;
        self.packets.push(packet);
        Ok(())
    }

    /// Promises that no packet below `bound` will follow. Lowering an already announced bound
    /// is an error.
    pub fn set_next_timestamp_bound(&mut self, bound: Timestamp) -> Result<()> {
        if !(bound.is_allowed_in_stream() || bound == Timestamp::ONE_OVER_POST_STREAM) {
            return Err(self.stream_error(format!("illegal timestamp bound {bound:?}")));
        }
        if bound < self.start_bound {
            return Err(self.stream_error(format!(
                "set_next_timestamp_bound({bound}) would lower the announced bound {}",
                self.start_bound
            )));
        }
        self.bound_request = Some(self.bound_request.map_or(bound, |r| r.max(bound)));
        if bound > self.next_allowed {
            self.next_allowed = bound;
        }
        Ok(())
    }

    /// The bound the stream will have after this invocation, as far as known now.
    pub fn next_timestamp_bound(&self) -> Timestamp {
        self.next_allowed
    }

    /// Closes the stream: nothing more will be sent on it.
    pub fn close(&mut self) {
        self.close_request = true;
    }

    /// True if the stream is or will be closed.
    pub fn is_closed(&self) -> bool {
        self.closed || self.close_request
    }

    /// Sets the stream header (in `open` only).
    pub fn set_header(&mut self, header: Packet) -> Result<()> {
        if !self.in_open {
            return Err(self.stream_error("a stream header can only be set in open".into()));
        }
        self.header = Some(header.at(Timestamp::UNSET));
        Ok(())
    }

    /// Sets this stream's timestamp offset (in `open` only).
    pub fn set_offset(&mut self, offset: i64) -> Result<()> {
        if !self.in_open {
            return Err(self.stream_error("a timestamp offset can only be set in open".into()));
        }
        self.offset = Some(TimestampDiff::new(offset));
        Ok(())
    }
}

static EMPTY_PACKET: Packet = Packet::empty();

/// What a calculator sees during one call of `open`, `process` or `close`.
pub struct CalculatorContext<'a> {
    pub(crate) info: &'a NodeInfo,
    pub(crate) phase: Phase,
    pub(crate) input_timestamp: Timestamp,
    pub(crate) inputs: &'a [Packet],
    pub(crate) input_headers: &'a [Packet],
    pub(crate) outputs: &'a mut [OutputShard],
    pub(crate) side_inputs: &'a [Packet],
    pub(crate) side_outputs: &'a mut [Option<Packet>],
    pub(crate) clock: &'a dyn crate::clock::Clock,
    pub(crate) dropped: u64,
    pub(crate) progress: Option<(u64, Option<u64>)>,
}

impl<'a> CalculatorContext<'a> {
    /// The timestamp of this call (`Unstarted` in open, `Done` in close).
    pub fn input_timestamp(&self) -> Timestamp {
        self.input_timestamp
    }

    /// The graph's clock (real by default; simulated in tests via `Graph::set_clock`).
    pub fn clock(&self) -> &'a dyn crate::clock::Clock {
        self.clock
    }

    /// Reports `n` packets this calculator dropped on purpose (an explicit policy, such as a
    /// flow limiter's queue limit); they show in the node's statistics.
    pub fn record_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// Reports how far the calculator is (e.g. frames decoded) and, when known, how far it
    /// will go (e.g. the file's frame count); runners show it as a progress bar.
    pub fn report_progress(&mut self, done: u64, total: Option<u64>) {
        self.progress = Some((done, total));
    }

    /// The node's canonical name.
    pub fn node_name(&self) -> &str {
        &self.info.name
    }

    /// The method being called.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The input streams.
    pub fn inputs(&self) -> &PortSet {
        self.info.contract.inputs()
    }

    /// The output streams.
    pub fn outputs(&self) -> &PortSet {
        self.info.contract.outputs()
    }

    /// The input side packets.
    pub fn side_inputs(&self) -> &PortSet {
        self.info.contract.side_inputs()
    }

    /// The output side packets.
    pub fn side_outputs(&self) -> &PortSet {
        self.info.contract.side_outputs()
    }

    /// The packet on input `id` at this call's timestamp (empty if none).
    pub fn input_packet(&self, id: usize) -> &'a Packet {
        self.inputs.get(id).unwrap_or(&EMPTY_PACKET)
    }

    /// The header of input `id` (empty if none).
    pub fn input_header(&self, id: usize) -> &'a Packet {
        self.input_headers.get(id).unwrap_or(&EMPTY_PACKET)
    }

    /// Output stream `id`.
    pub fn output_at(&mut self, id: usize) -> &mut OutputShard {
        &mut self.outputs[id]
    }

    /// The input side packet `id` (empty if the optional port is unconnected).
    pub fn side_input_packet(&self, id: usize) -> &'a Packet {
        self.side_inputs.get(id).unwrap_or(&EMPTY_PACKET)
    }

    /// Sets output side packet `id` (once per run).
    pub fn set_side_output_packet(&mut self, id: usize, packet: Packet) -> Result<()> {
        let name = &self.info.contract.side_outputs().entry(id).name;
        let slot = &mut self.side_outputs[id];
        if slot.is_some() {
            return Err(Error::msg(format!(
                "output side packet \"{name}\" was already set in this run"
            )));
        }
        if packet.is_empty() {
            return Err(Error::msg(format!(
                "output side packet \"{name}\" cannot be empty"
            )));
        }
        *slot = Some(packet.at(Timestamp::UNSET));
        Ok(())
    }

    /// The typed input at index 0 of `port`'s tag.
    pub fn input<T>(&self, port: &Input<T>) -> InputRef<'a, T> {
        self.input_index(port, 0)
    }

    /// The typed input at `index` of `port`'s tag.
    pub fn input_index<T>(&self, port: &Input<T>, index: usize) -> InputRef<'a, T> {
        let packet = self
            .inputs()
            .id(port.tag(), index)
            .map_or(&EMPTY_PACKET, |id| self.input_packet(id));
        InputRef {
            packet,
            _type: PhantomData,
        }
    }

    /// How many indexes of `port`'s tag are connected.
    pub fn input_count<T>(&self, port: &Input<T>) -> usize {
        self.inputs().count(port.tag())
    }

    /// True if `port` is connected.
    pub fn has_input<T>(&self, port: &Input<T>) -> bool {
        self.inputs().has_tag(port.tag())
    }

    /// The typed output at index 0 of `port`'s tag (a no-op sink if the optional port is
    /// unconnected).
    pub fn output<T>(&mut self, port: &Output<T>) -> OutputRef<'_, T> {
        self.output_index(port, 0)
    }

    /// The typed output at `index` of `port`'s tag.
    pub fn output_index<T>(&mut self, port: &Output<T>, index: usize) -> OutputRef<'_, T> {
        let id = self.info.contract.outputs().id(port.tag(), index);
        OutputRef {
            shard: id.map(|id| &mut self.outputs[id]),
            _type: PhantomData,
        }
    }

    /// How many indexes of `port`'s tag are connected.
    pub fn output_count<T>(&self, port: &Output<T>) -> usize {
        self.outputs().count(port.tag())
    }

    /// The typed side packet of `port`; an error if it is not connected.
    pub fn side_input<T: 'static>(&self, port: &SideInput<T>) -> Result<&'a T> {
        self.side_input_opt(port)?
            .ok_or_else(|| Error::msg(format!("input side packet {} is not connected", port.tag())))
    }

    /// The typed side packet of `port`, or `None` if the optional port is not connected or the
    /// run was not given the side packet.
    pub fn side_input_opt<T: 'static>(&self, port: &SideInput<T>) -> Result<Option<&'a T>> {
        match self.side_inputs().id(port.tag(), 0) {
            None => Ok(None),
            Some(id) => {
                let packet = self.side_input_packet(id);
                if packet.is_empty() {
                    // An optional side packet the run was not given.
                    Ok(None)
                } else {
                    packet.get::<T>().map(Some)
                }
            }
        }
    }

    /// Sets the typed output side packet of `port` (a no-op if it is not connected).
    pub fn set_side_output<T: Send + Sync + 'static>(
        &mut self,
        port: &SideOutput<T>,
        value: T,
    ) -> Result<()> {
        match self.side_outputs().id(port.tag(), 0) {
            None => Ok(()),
            Some(id) => self.set_side_output_packet(id, Packet::new(value)),
        }
    }

    /// Sets the timestamp offset of every output (in `open` only).
    pub fn set_offset(&mut self, offset: i64) -> Result<()> {
        for o in self.outputs.iter_mut() {
            o.set_offset(offset)?;
        }
        Ok(())
    }

    /// The node's parsed options.
    pub fn options<T: 'static>(&self) -> Result<&T> {
        self.info
            .options
            .downcast_ref::<T>()
            .ok_or_else(|| Error::msg("options are of another type"))
    }
}

/// A typed view of one input of the current call.
pub struct InputRef<'a, T> {
    packet: &'a Packet,
    _type: PhantomData<fn() -> T>,
}

impl<'a, T> InputRef<'a, T> {
    /// The packet (empty if there is none at this timestamp).
    pub fn packet(&self) -> &'a Packet {
        self.packet
    }

    /// True if there is no packet at this timestamp.
    pub fn is_empty(&self) -> bool {
        self.packet.is_empty()
    }

    /// The packet's timestamp (for an empty input: the last settled timestamp).
    pub fn timestamp(&self) -> Timestamp {
        self.packet.timestamp()
    }
}

impl<'a, T: 'static> InputRef<'a, T> {
    /// The payload, or `None` if there is no packet at this timestamp.
    pub fn get(&self) -> Result<Option<&'a T>> {
        if self.packet.is_empty() {
            Ok(None)
        } else {
            self.packet.get::<T>().map(Some)
        }
    }

    /// The payload; an error if there is no packet at this timestamp.
    pub fn value(&self) -> Result<&'a T> {
        self.packet.get::<T>()
    }
}

/// A typed view of one output stream of the current call.
pub struct OutputRef<'a, T> {
    shard: Option<&'a mut OutputShard>,
    _type: PhantomData<fn(T)>,
}

impl<T> OutputRef<'_, T> {
    /// True if the port is connected.
    pub fn is_connected(&self) -> bool {
        self.shard.is_some()
    }

    /// Adds a packet (its own timestamp is used).
    pub fn send_packet(&mut self, packet: Packet) -> Result<()> {
        match &mut self.shard {
            Some(s) => s.add(packet),
            None => Ok(()),
        }
    }

    /// See [`OutputShard::set_next_timestamp_bound`].
    pub fn set_next_timestamp_bound(&mut self, bound: Timestamp) -> Result<()> {
        match &mut self.shard {
            Some(s) => s.set_next_timestamp_bound(bound),
            None => Ok(()),
        }
    }

    /// The stream's bound after what this call added so far.
    pub fn next_timestamp_bound(&self) -> Timestamp {
        self.shard
            .as_ref()
            .map_or(Timestamp::DONE, |s| s.next_timestamp_bound())
    }

    /// Closes the stream.
    pub fn close(&mut self) {
        if let Some(s) = &mut self.shard {
            s.close();
        }
    }

    /// Sets the stream header (open only).
    pub fn set_header(&mut self, header: Packet) -> Result<()> {
        match &mut self.shard {
            Some(s) => s.set_header(header),
            None => Ok(()),
        }
    }
}

impl<T: Send + Sync + 'static> OutputRef<'_, T> {
    /// Adds `value` at `timestamp`.
    pub fn send(&mut self, value: T, timestamp: Timestamp) -> Result<()> {
        if self.shard.is_none() {
            return Ok(());
        }
        self.send_packet(Packet::new(value).into_at(timestamp))
    }
}

impl OutputRef<'_, AnyPacket> {
    /// Adds any payload at `timestamp` (for `Any`-typed ports).
    pub fn send_any<V: Send + Sync + 'static>(
        &mut self,
        value: V,
        timestamp: Timestamp,
    ) -> Result<()> {
        self.send_packet(Packet::new(value).into_at(timestamp))
    }
}
