//! Packets: an immutable, shared, type-erased payload plus a timestamp.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::timestamp::Timestamp;

/// The identity of a payload type: its `TypeId` and its Rust name (for error messages).
#[derive(Clone, Copy)]
pub struct TypeInfo {
    id: TypeId,
    name: &'static str,
}

impl TypeInfo {
    /// The type info of `T`.
    pub fn of<T: ?Sized + 'static>() -> TypeInfo {
        TypeInfo {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }

    /// The `TypeId`.
    pub fn id(&self) -> TypeId {
        self.id
    }

    /// The full Rust type name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A short name for messages: the registered name if the type is registered, else the Rust
    /// name without module paths.
    pub fn short_name(&self) -> String {
        if let Some(reg) = crate::types::lookup(self.id) {
            return reg.name.to_string();
        }
        shorten_type_name(self.name)
    }
}

/// Strips module paths from a Rust type name: `alloc::vec::Vec<my::Box>` -> `Vec<Box>`.
pub fn shorten_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

impl PartialEq for TypeInfo {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for TypeInfo {}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_name())
    }
}

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_name())
    }
}

/// An immutable, reference-counted payload with a timestamp. Cloning is cheap (an `Arc` bump),
/// so one packet can go to many consumers without copying the payload.
///
/// ```
/// use mediagraph_framework::{Packet, Timestamp};
/// let p = Packet::new(42i64).at(Timestamp::new(10));
/// assert_eq!(*p.get::<i64>().unwrap(), 42);
/// assert_eq!(p.timestamp(), Timestamp::new(10));
/// let err = p.get::<String>().unwrap_err();
/// assert!(err.to_string().contains("expected String"));
/// assert!(Packet::empty().is_empty());
/// ```
#[derive(Clone)]
pub struct Packet {
    payload: Option<Arc<dyn Any + Send + Sync>>,
    type_name: &'static str,
    timestamp: Timestamp,
}

impl Packet {
    /// A packet holding `value`, with timestamp `Unset`.
    pub fn new<T: Send + Sync + 'static>(value: T) -> Packet {
        Packet {
            payload: Some(Arc::new(value)),
            type_name: std::any::type_name::<T>(),
            timestamp: Timestamp::UNSET,
        }
    }

    /// A packet sharing an existing `Arc` payload (no copy).
    pub fn from_arc<T: Send + Sync + 'static>(value: Arc<T>) -> Packet {
        Packet {
            payload: Some(value),
            type_name: std::any::type_name::<T>(),
            timestamp: Timestamp::UNSET,
        }
    }

    /// An empty packet (no payload) with timestamp `Unset`.
    pub const fn empty() -> Packet {
        Packet {
            payload: None,
            type_name: "<empty>",
            timestamp: Timestamp::UNSET,
        }
    }

    /// An empty packet at `timestamp`: "nothing at this timestamp".
    pub const fn empty_at(timestamp: Timestamp) -> Packet {
        Packet {
            payload: None,
            type_name: "<empty>",
            timestamp,
        }
    }

    /// The same payload at another timestamp (shares the payload).
    pub fn at(&self, timestamp: Timestamp) -> Packet {
        Packet {
            payload: self.payload.clone(),
            type_name: self.type_name,
            timestamp,
        }
    }

    /// Consumes `self`, returning it at another timestamp.
    pub fn into_at(mut self, timestamp: Timestamp) -> Packet {
        self.timestamp = timestamp;
        self
    }

    /// The packet's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// True if the packet has no payload.
    pub fn is_empty(&self) -> bool {
        self.payload.is_none()
    }

    /// The payload's `TypeId`, or `None` when empty.
    pub fn type_id(&self) -> Option<TypeId> {
        self.payload.as_deref().map(|p| p.type_id())
    }

    /// The payload's Rust type name (`"<empty>"` for an empty packet).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// A short name of the payload type, for messages.
    pub fn short_type_name(&self) -> String {
        match self.type_id() {
            Some(id) => TypeInfo {
                id,
                name: self.type_name,
            }
            .short_name(),
            None => self.type_name.to_string(),
        }
    }

    /// True if the payload is a `T`.
    pub fn holds<T: 'static>(&self) -> bool {
        self.type_id() == Some(TypeId::of::<T>())
    }

    /// The payload as a `T`, or an error naming the expected and the actual type.
    pub fn get<T: 'static>(&self) -> Result<&T> {
        match &self.payload {
            None => Err(Error::EmptyPacket {
                expected: TypeInfo::of::<T>().short_name(),
                timestamp: self.timestamp,
            }),
            Some(p) => p.downcast_ref::<T>().ok_or_else(|| Error::TypeMismatch {
                expected: TypeInfo::of::<T>().short_name(),
                actual: self.short_type_name(),
            }),
        }
    }

    /// The payload as a shared `Arc<T>` (no copy).
    pub fn get_arc<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.get::<T>()?;
        let payload = self.payload.clone().expect("checked non-empty above");
        Ok(payload.downcast::<T>().expect("type checked above"))
    }

    /// Checks that the payload is a `T` without borrowing it.
    pub fn validate_as<T: 'static>(&self) -> Result<()> {
        self.get::<T>().map(|_| ())
    }

    /// The payload as `&dyn Any`, for type-generic code.
    pub fn payload(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.payload.as_deref()
    }

    /// True if both packets share the same payload allocation.
    pub fn shares_payload_with(&self, other: &Packet) -> bool {
        match (&self.payload, &other.payload) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Default for Packet {
    fn default() -> Self {
        Packet::empty()
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "Packet(empty @ {:?})", self.timestamp)
        } else {
            write!(
                f,
                "Packet({} @ {:?})",
                self.short_type_name(),
                self.timestamp
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_copies_share_payload() {
        let p = Packet::new(vec![1u8; 1024]).at(Timestamp::new(1));
        let q = p.at(Timestamp::new(2));
        assert!(p.shares_payload_with(&q));
        assert_eq!(p.timestamp(), Timestamp::new(1));
        assert_eq!(q.timestamp(), Timestamp::new(2));
        let arc = q.get_arc::<Vec<u8>>().unwrap();
        assert_eq!(arc.len(), 1024);
    }

    #[test]
    fn typed_access_names_both_types() {
        let p = Packet::new(String::from("hi"));
        let err = p.get::<i64>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "packet type mismatch: expected i64, but the packet holds String"
        );
        assert!(p.holds::<String>());
        assert!(p.validate_as::<String>().is_ok());
    }

    #[test]
    fn empty_packets() {
        let e = Packet::default();
        assert!(e.is_empty());
        assert_eq!(e.timestamp(), Timestamp::UNSET);
        let err = Packet::empty_at(Timestamp::new(3))
            .get::<i64>()
            .unwrap_err();
        assert!(
            matches!(err, Error::EmptyPacket { timestamp, .. } if timestamp == Timestamp::new(3))
        );
    }

    #[test]
    fn shortens_type_names() {
        assert_eq!(
            shorten_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(shorten_type_name("(i64, f64)"), "(i64, f64)");
    }
}
