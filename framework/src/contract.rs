//! What a calculator declares about a node: the type of every port, optional ports, a timestamp
//! offset, the input stream handler it prefers and whether it wants bound-only `process` calls.
//!
//! Ports are declared with typed constants in the style of MediaPipe's api2:
//!
//! ```
//! use mediagraph_framework::contract::{Contract, Input, Output};
//! const IN: Input<i64> = Input::new("IN");
//! const SCALE: Input<f64> = Input::new("SCALE").optional();
//! const OUT: Output<i64> = Output::new("OUT");
//! fn contract(cc: &mut Contract) -> mediagraph_framework::Result<()> {
//!     cc.declare(&[&IN, &SCALE, &OUT])
//! }
//! ```

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::port::PortSet;
use crate::timestamp::TimestampDiff;
use crate::types::PacketType;

/// The four kinds of ports a node has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// `input_stream`.
    Input,
    /// `output_stream`.
    Output,
    /// `input_side_packet`.
    SideInput,
    /// `output_side_packet`.
    SideOutput,
}

impl PortKind {
    /// The config field name of this kind.
    pub fn field(self) -> &'static str {
        match self {
            PortKind::Input => "input_stream",
            PortKind::Output => "output_stream",
            PortKind::SideInput => "input_side_packet",
            PortKind::SideOutput => "output_side_packet",
        }
    }
}

/// The declared type of one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeDecl {
    /// A type (possibly `Any` or `OneOf`).
    Type(PacketType),
    /// The same type as another port of this node.
    SameAs(PortKind, usize),
}

/// Marker type for ports that carry any payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyPacket;

/// The input stream handler of a node, as named in the config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfig {
    /// One of [`crate::HANDLER_NAMES`] (`DefaultInputStreamHandler`,
    /// `ImmediateInputStreamHandler`, `SyncSetInputStreamHandler`, `FixedSizeInputStreamHandler`,
    /// `MuxInputStreamHandler`, `EarlyCloseInputStreamHandler`,
    /// `TimestampAlignInputStreamHandler`, `BarrierInputStreamHandler`), or its short name.
    pub input_stream_handler: String,
    /// The handler's options.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub options: serde_json::Value,
}

impl HandlerConfig {
    /// A handler by name with no options.
    pub fn named(name: &str) -> HandlerConfig {
        HandlerConfig {
            input_stream_handler: name.to_string(),
            options: serde_json::Value::Null,
        }
    }
}

/// One port's declaration state inside a contract.
#[derive(Clone, Debug, Default)]
pub(crate) struct PortDecls {
    pub(crate) types: Vec<Option<TypeDecl>>,
    /// Whether each port was declared optional (may be left without a value at run time).
    pub(crate) optional: Vec<bool>,
}

/// A node's contract: the ports the config connected, and what the calculator declares.
#[derive(Clone, Debug)]
pub struct Contract {
    pub(crate) node_name: String,
    pub(crate) sets: [PortSet; 4],
    pub(crate) decls: [PortDecls; 4],
    pub(crate) timestamp_offset: Option<TimestampDiff>,
    pub(crate) handler: Option<HandlerConfig>,
    pub(crate) process_timestamp_bounds: bool,
    pub(crate) independent_calls: bool,
    /// In describe mode (listing calculators), the typed ports declared so far.
    pub(crate) described: Option<Vec<PortDescription>>,
}

/// A typed port as a calculator declares it (for listings and documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct PortDescription {
    /// Which kind of port.
    pub kind: PortKind,
    /// Its tag (`""` for untagged).
    pub tag: &'static str,
    /// The type it carries.
    pub packet_type: PacketType,
    /// May be left unconnected.
    pub optional: bool,
    /// May be connected at several indexes.
    pub multiple: bool,
}

fn kind_index(kind: PortKind) -> usize {
    match kind {
        PortKind::Input => 0,
        PortKind::Output => 1,
        PortKind::SideInput => 2,
        PortKind::SideOutput => 3,
    }
}

impl Contract {
    /// A contract for a node with the given port sets (inputs, outputs, side inputs, side
    /// outputs), nothing declared yet.
    pub fn new(node_name: &str, sets: [PortSet; 4]) -> Contract {
        let decls = [0, 1, 2, 3].map(|k| PortDecls {
            types: vec![None; sets[k].len()],
            optional: vec![false; sets[k].len()],
        });
        Contract {
            node_name: node_name.to_string(),
            sets,
            decls,
            timestamp_offset: None,
            handler: None,
            process_timestamp_bounds: false,
            independent_calls: false,
            described: None,
        }
    }

    /// A contract with no connected ports that records the typed ports a calculator declares
    /// instead of checking them (used to list calculators and their ports).
    pub fn describing(calculator: &str) -> Contract {
        let mut cc = Contract::new(calculator, Default::default());
        cc.described = Some(Vec::new());
        cc
    }

    /// The typed ports recorded in describe mode.
    pub fn described_ports(&self) -> &[PortDescription] {
        self.described.as_deref().unwrap_or(&[])
    }

    /// The node's name (for messages).
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The ports of `kind` that the config connected.
    pub fn ports(&self, kind: PortKind) -> &PortSet {
        &self.sets[kind_index(kind)]
    }

    /// The input streams.
    pub fn inputs(&self) -> &PortSet {
        self.ports(PortKind::Input)
    }

    /// The output streams.
    pub fn outputs(&self) -> &PortSet {
        self.ports(PortKind::Output)
    }

    /// The input side packets.
    pub fn side_inputs(&self) -> &PortSet {
        self.ports(PortKind::SideInput)
    }

    /// The output side packets.
    pub fn side_outputs(&self) -> &PortSet {
        self.ports(PortKind::SideOutput)
    }

    /// The declared type of a port, if any.
    pub fn declared(&self, kind: PortKind, id: usize) -> Option<&TypeDecl> {
        self.decls[kind_index(kind)].types[id].as_ref()
    }

    /// Declares the type of port `id` of `kind`.
    /// An id the node does not have is ignored (the completeness check then names the ports
    /// that were left without a type).
    pub fn set_type(&mut self, kind: PortKind, id: usize, decl: TypeDecl) {
        if let Some(slot) = self.decls[kind_index(kind)].types.get_mut(id) {
            *slot = Some(decl);
        }
    }

    /// Marks port `id` of `kind` as optional (a side packet it reads may be missing).
    pub fn set_optional(&mut self, kind: PortKind, id: usize, optional: bool) {
        if let Some(slot) = self.decls[kind_index(kind)].optional.get_mut(id) {
            *slot = optional;
        }
    }

    /// True if port `id` of `kind` was declared optional.
    pub fn is_optional(&self, kind: PortKind, id: usize) -> bool {
        self.decls[kind_index(kind)]
            .optional
            .get(id)
            .copied()
            .unwrap_or(false)
    }

    /// Declares every port of `kind` with `tag` as `ty`.
    pub fn set_tag_type(&mut self, kind: PortKind, tag: &str, ty: PacketType) {
        for id in self.ports(kind).ids(tag) {
            self.set_type(kind, id, TypeDecl::Type(ty.clone()));
        }
    }

    /// Declares typed ports (see the module example).
    pub fn declare(&mut self, ports: &[&dyn DeclarePort]) -> Result<()> {
        for p in ports {
            p.declare(self)?;
        }
        Ok(())
    }

    /// Promises that every output at input timestamp `T` has a timestamp `>= T + offset`,
    /// which lets the framework propagate bounds through the node automatically.
    pub fn set_timestamp_offset(&mut self, offset: i64) {
        self.timestamp_offset = Some(TimestampDiff::new(offset));
    }

    /// The declared timestamp offset.
    pub fn timestamp_offset(&self) -> Option<TimestampDiff> {
        self.timestamp_offset
    }

    /// Chooses the node's input stream handler (a config setting on the node overrides it).
    pub fn set_input_stream_handler(&mut self, handler: HandlerConfig) {
        self.handler = Some(handler);
    }

    /// The handler chosen by the calculator, if any.
    pub fn input_stream_handler(&self) -> Option<&HandlerConfig> {
        self.handler.as_ref()
    }

    /// Asks for `process` calls on pure timestamp-bound advances too.
    pub fn set_process_timestamp_bounds(&mut self, on: bool) {
        self.process_timestamp_bounds = on;
    }

    /// Whether `process` is called on bound advances.
    pub fn process_timestamp_bounds(&self) -> bool {
        self.process_timestamp_bounds
    }

    /// Declares that each `process` call depends only on its own inputs, side packets and
    /// options, never on earlier calls: a node may then set `max_in_flight` above 1, and the
    /// framework runs that many copies of the calculator (each opened and closed on its own)
    /// on parallel calls, delivering their outputs in timestamp order.
    pub fn set_independent_calls(&mut self, on: bool) {
        self.independent_calls = on;
    }

    /// Whether `process` calls are independent (see [`Contract::set_independent_calls`]).
    pub fn independent_calls(&self) -> bool {
        self.independent_calls
    }

    /// An error about this node's contract.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::msg(format!("node \"{}\": {message}", self.node_name))
    }

    /// Checks that every connected port got a type.
    pub(crate) fn check_complete(&self) -> Result<()> {
        for kind in [
            PortKind::Input,
            PortKind::Output,
            PortKind::SideInput,
            PortKind::SideOutput,
        ] {
            for (id, e) in self.ports(kind).entries().iter().enumerate() {
                if self.declared(kind, id).is_none() {
                    return Err(self.error(format!(
                        "{} {} (\"{}\") is not a port of this calculator",
                        kind.field(),
                        e.tag_index(),
                        e.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A typed port constant that can declare itself in a [`Contract`].
pub trait DeclarePort {
    /// Declares this port's type for every connected index of its tag; errors if a required
    /// port is missing or a single port is connected more than once.
    fn declare(&self, cc: &mut Contract) -> Result<()>;
}

macro_rules! typed_port {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $what:literal) => {
        $(#[$doc])*
        pub struct $name<T> {
            tag: &'static str,
            optional: bool,
            multiple: bool,
            packet_type: fn() -> PacketType,
            _type: PhantomData<fn() -> T>,
        }

        impl<T: 'static> $name<T> {
            /// A required, single port with this tag (`""` for untagged) carrying `T`.
            pub const fn new(tag: &'static str) -> Self {
                $name {
                    tag,
                    optional: false,
                    multiple: false,
                    packet_type: PacketType::of::<T>,
                    _type: PhantomData,
                }
            }
        }

        impl $name<AnyPacket> {
            /// A required, single port with this tag that carries any type.
            pub const fn any(tag: &'static str) -> Self {
                $name {
                    tag,
                    optional: false,
                    multiple: false,
                    packet_type: || PacketType::Any,
                    _type: PhantomData,
                }
            }
        }

        impl<T> $name<T> {
            /// The port may be left unconnected.
            pub const fn optional(mut self) -> Self {
                self.optional = true;
                self
            }

            /// The tag may be connected at several indexes (`TAG:0`, `TAG:1`, ...); implies
            /// optional (zero indexes).
            pub const fn multiple(mut self) -> Self {
                self.multiple = true;
                self.optional = true;
                self
            }

            /// The port's tag.
            pub const fn tag(&self) -> &'static str {
                self.tag
            }

            /// Whether the port may be missing.
            pub const fn is_optional(&self) -> bool {
                self.optional
            }
        }

        impl<T> DeclarePort for $name<T> {
            fn declare(&self, cc: &mut Contract) -> Result<()> {
                if let Some(described) = cc.described.as_mut() {
                    described.push(PortDescription {
                        kind: $kind,
                        tag: self.tag,
                        packet_type: (self.packet_type)(),
                        optional: self.optional,
                        multiple: self.multiple,
                    });
                    return Ok(());
                }
                let count = cc.ports($kind).count(self.tag);
                if count == 0 && !self.optional {
                    return Err(cc.error(format!(
                        "{} {} is required by this calculator but not connected",
                        $what,
                        if self.tag.is_empty() { "(untagged)" } else { self.tag }
                    )));
                }
                if count > 1 && !self.multiple {
                    return Err(cc.error(format!(
                        "{} {} is connected {} times but the calculator takes one",
                        $what, self.tag, count
                    )));
                }
                cc.set_tag_type($kind, self.tag, (self.packet_type)());
                for id in cc.ports($kind).ids(self.tag) {
                    cc.set_optional($kind, id, self.optional);
                }
                Ok(())
            }
        }
    };
}

typed_port!(
    /// An input stream port carrying `T` (use [`AnyPacket`] for any type).
    Input,
    PortKind::Input,
    "input stream"
);
typed_port!(
    /// An output stream port carrying `T`.
    Output,
    PortKind::Output,
    "output stream"
);
typed_port!(
    /// An input side packet port carrying `T`.
    SideInput,
    PortKind::SideInput,
    "input side packet"
);
typed_port!(
    /// An output side packet port carrying `T`.
    SideOutput,
    PortKind::SideOutput,
    "output side packet"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{parse_port, PortRef};

    fn set(list: &[&str]) -> PortSet {
        let refs: Vec<PortRef> = list.iter().map(|s| parse_port(s).unwrap()).collect();
        PortSet::from_refs(&refs).unwrap()
    }

    const IN: Input<i64> = Input::new("IN");
    const OPT: Input<f64> = Input::new("OPT").optional();
    const OUT: Output<AnyPacket> = Output::any("OUT");

    #[test]
    fn declares_and_checks_ports() {
        let mut cc = Contract::new("n", [set(&["IN:a"]), set(&["OUT:b"]), set(&[]), set(&[])]);
        cc.declare(&[&IN, &OPT, &OUT]).unwrap();
        cc.check_complete().unwrap();
        assert_eq!(
            cc.declared(PortKind::Input, 0),
            Some(&TypeDecl::Type(PacketType::of::<i64>()))
        );
        assert_eq!(
            cc.declared(PortKind::Output, 0),
            Some(&TypeDecl::Type(PacketType::Any))
        );
    }

    #[test]
    fn missing_required_and_unexpected_ports_are_errors() {
        let mut cc = Contract::new("n", [set(&[]), set(&["OUT:b"]), set(&[]), set(&[])]);
        let err = cc.declare(&[&IN]).unwrap_err().to_string();
        assert!(err.contains("input stream IN is required"), "{err}");

        let mut cc = Contract::new(
            "n",
            [
                set(&["IN:a", "EXTRA:c"]),
                set(&["OUT:b"]),
                set(&[]),
                set(&[]),
            ],
        );
        cc.declare(&[&IN, &OUT]).unwrap();
        let err = cc.check_complete().unwrap_err().to_string();
        assert!(
            err.contains("input_stream EXTRA (\"c\") is not a port"),
            "{err}"
        );

        let mut cc = Contract::new(
            "n",
            [set(&["IN:0:a", "IN:1:c"]), set(&[]), set(&[]), set(&[])],
        );
        let err = cc.declare(&[&IN]).unwrap_err().to_string();
        assert!(err.contains("connected 2 times"), "{err}");
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn describe_mode_records_typed_ports_without_checking() {
        const IN: Input<i64> = Input::new("IN");
        const OPT: SideInput<String> = SideInput::new("NAME").optional();
        const OUTS: Output<AnyPacket> = Output::any("").multiple();
        let mut cc = Contract::describing("X");
        cc.declare(&[&IN, &OPT, &OUTS]).unwrap();
        let ports = cc.described_ports();
        assert_eq!(ports.len(), 3);
        assert_eq!(
            (ports[0].kind, ports[0].tag, ports[0].optional),
            (PortKind::Input, "IN", false)
        );
        assert_eq!(ports[0].packet_type, PacketType::of::<i64>());
        assert!(ports[1].optional && ports[1].kind == PortKind::SideInput);
        assert!(ports[2].multiple && ports[2].packet_type == PacketType::Any);
    }
}
