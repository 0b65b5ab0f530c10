//! `Tensor`: a dense f32 array with a shape, the payload of `TENSORS` streams (MediaPipe's
//! `Tensor`, float32 only). A `TENSORS` stream carries `Vec<Tensor>` packets: a model's inputs
//! or outputs, in the model's order.
//!
//! The values sit in an `Arc`, so cloning a tensor (or the vector of a packet) never copies
//! them. In `--dump` output a tensor is `{"shape": [1, 4], "data": [..], "name": ".."}`.

use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Result;

/// A dense, row-major f32 array with a shape, optionally named (a model's input or output
/// name). The number of values always equals the product of the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<[f32]>,
    name: Option<String>,
}

fn tensor_error(message: String) -> mediagraph_framework::Error {
    super::DetectionError::Tensor(message).into()
}

impl Tensor {
    /// A tensor of `shape` holding `data` (row major); an error if the lengths disagree.
    pub fn new(shape: Vec<usize>, data: impl Into<Arc<[f32]>>) -> Result<Tensor> {
        let data = data.into();
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| tensor_error(format!("shape {shape:?} is too large")))?;
        if expected != data.len() {
            return Err(tensor_error(format!(
                "shape {shape:?} needs {expected} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            data,
            name: None,
        })
    }

    /// The same tensor with a name.
    pub fn with_name(mut self, name: impl Into<String>) -> Tensor {
        self.name = Some(name.into());
        self
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The model input or output name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// True if both tensors share their values (no copy was made).
    pub fn shares_data_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }
}

impl Serialize for Tensor {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let fields = if self.name.is_some() { 3 } else { 2 };
        let mut s = serializer.serialize_struct("Tensor", fields)?;
        s.serialize_field("shape", &self.shape)?;
        s.serialize_field("data", &*self.data)?;
        if let Some(name) = &self.name {
            s.serialize_field("name", name)?;
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Tensor, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            shape: Vec<usize>,
            data: Vec<f32>,
            #[serde(default)]
            name: Option<String>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let t = Tensor::new(raw.shape, raw.data).map_err(serde::de::Error::custom)?;
        Ok(Tensor {
            name: raw.name,
            ..t
        })
    }
}

mediagraph_framework::register_packet_type!(Tensor, "Tensor");
mediagraph_framework::register_packet_type!(Vec<Tensor>, "Vec<Tensor>");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_must_match_data() {
        let t = Tensor::new(vec![2, 3], vec![0.0; 6]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.len(), 6);
        let c = t.clone();
        assert!(c.shares_data_with(&t));
        let err = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert!(err.to_string().contains("needs 6 values, got 5"), "{err}");
        let err = Tensor::new(vec![usize::MAX, 3], vec![]).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn json_round_trip_checks_the_shape() {
        let t = Tensor::new(vec![1, 2], vec![1.5, -2.0])
            .unwrap()
            .with_name("x");
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"shape": [1, 2], "data": [1.5, -2.0], "name": "x"})
        );
        let back: Tensor = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        let err =
            serde_json::from_value::<Tensor>(serde_json::json!({"shape": [3], "data": [1.0]}))
                .unwrap_err();
        assert!(err.to_string().contains("needs 3 values"), "{err}");
    }
}
