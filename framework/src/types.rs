//! Port types, and the registry of payload types that can be read from and written to JSON
//! (for `--feed`, `--dump`, side packets given on the command line, and traces).

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::packet::{Packet, TypeInfo};

/// The type a port carries, as declared in a calculator's contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketType {
    /// Any payload type; adopts the type of what it is connected to.
    Any,
    /// Exactly this type.
    Exact(TypeInfo),
    /// One of these types.
    OneOf(Vec<TypeInfo>),
}

impl PacketType {
    /// Exactly `T`.
    pub fn of<T: 'static>() -> PacketType {
        PacketType::Exact(TypeInfo::of::<T>())
    }

    /// True if a payload of type `id` may travel on this port.
    pub fn accepts(&self, id: TypeId) -> bool {
        match self {
            PacketType::Any => true,
            PacketType::Exact(t) => t.id() == id,
            PacketType::OneOf(ts) => ts.iter().any(|t| t.id() == id),
        }
    }

    /// The types both sides accept, or `None` if they have none in common.
    pub fn intersect(&self, other: &PacketType) -> Option<PacketType> {
        match (self, other) {
            (PacketType::Any, t) | (t, PacketType::Any) => Some(t.clone()),
            (PacketType::Exact(a), b) | (b, PacketType::Exact(a)) => {
                b.accepts(a.id()).then_some(PacketType::Exact(*a))
            }
            (PacketType::OneOf(a), PacketType::OneOf(b)) => {
                let common: Vec<TypeInfo> = a.iter().filter(|t| b.contains(t)).copied().collect();
                match common.len() {
                    0 => None,
                    1 => Some(PacketType::Exact(common[0])),
                    _ => Some(PacketType::OneOf(common)),
                }
            }
        }
    }

    /// The single concrete type, if there is one.
    pub fn exact(&self) -> Option<TypeInfo> {
        match self {
            PacketType::Exact(t) => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketType::Any => f.write_str("Any"),
            PacketType::Exact(t) => write!(f, "{t}"),
            PacketType::OneOf(ts) => {
                let names: Vec<String> = ts.iter().map(|t| t.short_name()).collect();
                write!(f, "OneOf<{}>", names.join(", "))
            }
        }
    }
}

/// A payload type that converts to and from JSON, registered with [`register_packet_type!`](crate::register_packet_type).
pub struct PacketTypeRegistration {
    /// The short name used in messages, listings and schemas.
    pub name: &'static str,
    /// The type's identity.
    pub info: fn() -> TypeInfo,
    /// Serializes a packet's payload (which must be of this type).
    pub to_json: fn(&Packet) -> Result<serde_json::Value>,
    /// Serializes a packet's payload straight to JSON text (keeps `f32` values short: 0.1, not
    /// 0.10000000149011612).
    pub to_json_text: fn(&Packet) -> Result<String>,
    /// Builds a packet (timestamp `Unset`) from a JSON value.
    pub from_json: fn(serde_json::Value) -> Result<Packet>,
}

impl PacketTypeRegistration {
    /// The registration of `T` under `name`.
    pub const fn new<T>(name: &'static str) -> PacketTypeRegistration
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        PacketTypeRegistration {
            name,
            info: TypeInfo::of::<T>,
            to_json: to_json_impl::<T>,
            to_json_text: to_json_text_impl::<T>,
            from_json: from_json_impl::<T>,
        }
    }
}

fn to_json_impl<T: Serialize + 'static>(packet: &Packet) -> Result<serde_json::Value> {
    serde_json::to_value(packet.get::<T>()?).map_err(Error::other)
}

fn to_json_text_impl<T: Serialize + 'static>(packet: &Packet) -> Result<String> {
    serde_json::to_string(packet.get::<T>()?).map_err(Error::other)
}

fn from_json_impl<T: DeserializeOwned + Send + Sync + 'static>(
    value: serde_json::Value,
) -> Result<Packet> {
    let v: T = serde_json::from_value(value).map_err(|e| {
        Error::msg(format!(
            "cannot read a {} from JSON: {e}",
            crate::packet::shorten_type_name(std::any::type_name::<T>())
        ))
    })?;
    Ok(Packet::new(v))
}

inventory::collect!(PacketTypeRegistration);

/// Registers a payload type as JSON-convertible, under a short name.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Point { x: f32, y: f32 }
/// mediagraph_framework::register_packet_type!(Point, "Point");
/// ```
#[macro_export]
macro_rules! register_packet_type {
    ($ty:ty, $name:expr) => {
        $crate::inventory::submit! {
            $crate::types::PacketTypeRegistration::new::<$ty>($name)
        }
    };
}

register_packet_type!(i64, "i64");
register_packet_type!(i32, "i32");
register_packet_type!(u64, "u64");
register_packet_type!(u32, "u32");
register_packet_type!(f64, "f64");
register_packet_type!(f32, "f32");
register_packet_type!(bool, "bool");
register_packet_type!(String, "String");
register_packet_type!(serde_json::Value, "Json");
register_packet_type!(Vec<i64>, "Vec<i64>");
register_packet_type!(Vec<f64>, "Vec<f64>");
register_packet_type!(Vec<String>, "Vec<String>");

fn registry() -> &'static HashMap<TypeId, &'static PacketTypeRegistration> {
    static MAP: OnceLock<HashMap<TypeId, &'static PacketTypeRegistration>> = OnceLock::new();
    MAP.get_or_init(|| {
        inventory::iter::<PacketTypeRegistration>
            .into_iter()
            .map(|r| ((r.info)().id(), r))
            .collect()
    })
}

/// The registration of a payload type, if it has one.
pub fn lookup(id: TypeId) -> Option<&'static PacketTypeRegistration> {
    registry().get(&id).copied()
}

/// Every registered payload type.
pub fn registered_types() -> impl Iterator<Item = &'static PacketTypeRegistration> {
    registry().values().copied()
}

/// The packet's payload as JSON, if its type is registered; empty packets give `null`.
pub fn packet_to_json(packet: &Packet) -> Result<serde_json::Value> {
    let Some(id) = packet.type_id() else {
        return Ok(serde_json::Value::Null);
    };
    match lookup(id) {
        Some(reg) => (reg.to_json)(packet),
        None => Err(Error::msg(format!(
            "packets of type {} cannot be written as JSON (the type is not registered with register_packet_type!)",
            packet.short_type_name()
        ))),
    }
}

/// The packet's payload as JSON text, if its type is registered; empty packets give `null`.
/// Unlike [`packet_to_json`], floats keep their shortest form (`0.1f32` prints as `0.1`).
pub fn packet_to_json_text(packet: &Packet) -> Result<String> {
    let Some(id) = packet.type_id() else {
        return Ok("null".to_string());
    };
    match lookup(id) {
        Some(reg) => (reg.to_json_text)(packet),
        None => Err(Error::msg(format!(
            "packets of type {} cannot be written as JSON (the type is not registered with register_packet_type!)",
            packet.short_type_name()
        ))),
    }
}

/// A packet built from JSON: of the port's type when that is a single registered type,
/// otherwise holding the `serde_json::Value` itself.
pub fn packet_from_json(value: serde_json::Value, port_type: &PacketType) -> Result<Packet> {
    match port_type.exact() {
        Some(info) if info.id() == TypeId::of::<serde_json::Value>() => Ok(Packet::new(value)),
        Some(info) => match lookup(info.id()) {
            Some(reg) => (reg.from_json)(value),
            None => Err(Error::msg(format!(
                "packets of type {info} cannot be read from JSON (the type is not registered with register_packet_type!)"
            ))),
        },
        None => Ok(Packet::new(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_of_port_types() {
        let i = PacketType::of::<i64>();
        let s = PacketType::of::<String>();
        assert_eq!(PacketType::Any.intersect(&i), Some(i.clone()));
        assert_eq!(i.intersect(&s), None);
        let one_of = PacketType::OneOf(vec![TypeInfo::of::<i64>(), TypeInfo::of::<f64>()]);
        assert_eq!(one_of.intersect(&i), Some(i.clone()));
        assert_eq!(one_of.intersect(&s), None);
        assert_eq!(one_of.to_string(), "OneOf<i64, f64>");
    }

    #[test]
    fn json_round_trip_through_registered_types() {
        let p = packet_from_json(serde_json::json!(7), &PacketType::of::<i64>()).unwrap();
        assert_eq!(*p.get::<i64>().unwrap(), 7);
        assert_eq!(packet_to_json(&p).unwrap(), serde_json::json!(7));
        assert_eq!(packet_to_json_text(&Packet::new(0.1f32)).unwrap(), "0.1");
        assert_eq!(packet_to_json_text(&Packet::empty()).unwrap(), "null");
        let any = packet_from_json(serde_json::json!({"a": 1}), &PacketType::Any).unwrap();
        assert!(any.holds::<serde_json::Value>());
        let err = packet_from_json(serde_json::json!("x"), &PacketType::of::<i64>()).unwrap_err();
        assert!(err.to_string().contains("cannot read a i64"), "{err}");
        struct Opaque;
        let err = packet_to_json(&Packet::new(Opaque)).unwrap_err();
        assert!(err.to_string().contains("Opaque"), "{err}");
    }
}
