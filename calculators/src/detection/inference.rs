//! `InferenceCalculator`: runs an ONNX model with ONNX Runtime (the `ort` crate, library
//! loaded at run time), plus the plain [`OnnxModel`] it is built on.
//!
//! ONNX Runtime is initialized once per process ([`init_onnx_runtime`]), from the library
//! that [`super::resources::ort_library_path`] finds; every session of every graph shares
//! that environment.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use mediagraph_framework::prelude::*;
use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use serde::Deserialize;

use super::resources::{ort_library_path, resolve_model_file};
use super::{DetectionError, Tensor};

/// The process's ONNX Runtime environment and the library it was loaded from.
static ORT_ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
/// Serializes initialization (a failed attempt leaves `ORT_ENV` unset, so it can be retried).
static ORT_INIT: Mutex<()> = Mutex::new(());

fn runtime_error(message: impl Into<String>) -> Error {
    DetectionError::Runtime(message.into()).into()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Loads the ONNX Runtime library from `library` (or, with `None`, from where
/// [`ort_library_path`] finds it) and creates the process-wide environment, once. Later calls
/// with no path or the same path return the existing environment; a different path is an
/// error, since a process can load only one ONNX Runtime.
pub fn init_onnx_runtime(library: Option<&Path>) -> Result<&'static Environment> {
    if let Some((loaded, env)) = ORT_ENV.get() {
        return match library {
            Some(p) if !same_file(p, loaded) => Err(runtime_error(format!(
                "ONNX Runtime is already loaded from {} in this process; cannot load {} as well",
                loaded.display(),
                p.display()
            ))),
            _ => Ok(env),
        };
    }
    let _guard = ORT_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if ORT_ENV.get().is_some() {
        return init_onnx_runtime(library);
    }
    let path = match library {
        Some(p) => p.to_path_buf(),
        None => ort_library_path()?,
    };
    let builder = ort::init_from(&path).map_err(|e| {
        runtime_error(format!(
            "cannot load the ONNX Runtime library {}: {e}. Run `scripts/setup onnxruntime` or set \
             ORT_DYLIB_PATH to a working libonnxruntime.so",
            path.display()
        ))
    })?;
    let env = builder
        .with_name("mediagraph")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(format!("cannot create the ONNX Runtime environment: {e}")))?;
    let _ = ORT_ENV.set((path, env));
    match ORT_ENV.get() {
        Some((_, env)) => Ok(env),
        None => Err(runtime_error(
            "internal: ONNX Runtime environment not stored",
        )),
    }
}

/// The library ONNX Runtime was loaded from, if it was.
pub fn onnx_runtime_library() -> Option<&'static Path> {
    ORT_ENV.get().map(|(p, _)| p.as_path())
}

/// A model input or output: its name and shape (`-1` for a dimension the model leaves open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name in the model.
    pub name: String,
    /// The dimensions; `-1` where any size is accepted.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// True if a tensor of `shape` fits.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&m, &s)| m < 0 || m as u64 == s as u64)
    }
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// An ONNX model loaded into an ONNX Runtime session, with float32 inputs and outputs.
///
/// ```no_run
/// use mediagraph_calculators::detection::{OnnxModel, Tensor};
/// let mut model = OnnxModel::load("object_detection_ssd_mobilenetv2_oidv4.onnx", 1)?;
/// let input = Tensor::new(vec![1, 3, 300, 300], vec![0.0; 270_000])?;
/// let outputs = model.run(&[input])?; // box encodings, class logits
/// # Ok::<(), mediagraph_framework::Error>(())
/// ```
pub struct OnnxModel {
    session: Session,
    path: PathBuf,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

fn model_error(path: &Path, message: impl Into<String>) -> Error {
    DetectionError::Model {
        path: path.display().to_string(),
        message: message.into(),
    }
    .into()
}

/// The float32 tensor spec of a model input or output, or an error naming it.
fn spec_of(path: &Path, kind: &str, name: &str, dtype: &ValueType) -> Result<TensorSpec> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
            Ok(TensorSpec {
                name: name.to_string(),
                shape: shape.to_vec(),
            })
        }
        other => Err(model_error(
            path,
            format!("{kind} \"{name}\" is {other:?}; only float32 tensors are supported"),
        )),
    }
}

impl OnnxModel {
    /// Loads the model at `path` (resolved as described in [`super::resources`]) with
    /// `intra_threads` threads for one operator (1: run on the calling thread). Errors say
    /// whether the file is missing, not a valid ONNX model, or uses non-float32 tensors.
    pub fn load(path: &str, intra_threads: usize) -> Result<OnnxModel> {
        let path = resolve_model_file(path, "model")?;
        let env = init_onnx_runtime(None)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| model_error(&path, format!("cannot read the model file: {e}")))?;
        let builder_error = |e: &dyn std::fmt::Display| {
            runtime_error(format!("cannot configure an ONNX Runtime session: {e}"))
        };
        let mut builder = Session::builder(env)
            .map_err(|e| builder_error(&e))?
            .with_intra_threads(intra_threads.max(1))
            .map_err(|e| builder_error(&e))?
            .with_inter_threads(1)
            .map_err(|e| builder_error(&e))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            model_error(
                &path,
                format!(
                    "not a valid ONNX model ({} bytes; ONNX Runtime says: {e}). Run \
                     `scripts/setup model` to fetch it again, or give another model_path",
                    bytes.len()
                ),
            )
        })?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec_of(&path, "input", o.name(), o.dtype()))
            .collect::<Result<Vec<_>>>()?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec_of(&path, "output", o.name(), o.dtype()))
            .collect::<Result<Vec<_>>>()?;
        Ok(OnnxModel {
            session,
            path,
            inputs,
            outputs,
        })
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// The model's outputs, in order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Checks that `tensors` fit the model's inputs (count and shapes); the error names the
    /// input and both shapes.
    pub fn check_inputs(&self, tensors: &[Tensor]) -> Result<()> {
        if tensors.len() != self.inputs.len() {
            let names: Vec<&str> = self.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(model_error(
                &self.path,
                format!(
                    "the model takes {} input tensor(s) ({}), got {}",
                    self.inputs.len(),
                    names.join(", "),
                    tensors.len()
                ),
            ));
        }
        for (i, (spec, t)) in self.inputs.iter().zip(tensors).enumerate() {
            if !spec.accepts(t.shape()) {
                let got: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                return Err(model_error(
                    &self.path,
                    format!(
                        "shape mismatch on input {i} (\"{}\"): the model expects {}, the tensor is {} \
                         (check the size and layout of the tensor conversion, e.g. \
                         ImageToTensorCalculator's output_tensor_width/height and tensor_layout)",
                        spec.name,
                        shape_text(&spec.shape),
                        shape_text(&got)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs the model: `inputs` in the model's input order, outputs in its output order, each
    /// named after the model's output.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.check_inputs(inputs)?;
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (spec, t) in self.inputs.iter().zip(inputs) {
            let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            let view = TensorRef::from_array_view((shape, t.data()))
                .map_err(|e| runtime_error(format!("input \"{}\": {e}", spec.name)))?;
            values.push((Cow::Borrowed(spec.name.as_str()), view.into()));
        }
        let outputs = self.session.run(values).map_err(|e| {
            runtime_error(format!("{}: inference failed: {e}", self.path.display()))
        })?;
        let mut result = Vec::with_capacity(self.outputs.len());
        for spec in &self.outputs {
            let value = outputs.get(&spec.name).ok_or_else(|| {
                runtime_error(format!("the model produced no output \"{}\"", spec.name))
            })?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| runtime_error(format!("output \"{}\": {e}", spec.name)))?;
            let dims = shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<std::result::Result<Vec<usize>, _>>()
                .map_err(|_| {
                    runtime_error(format!(
                        "output \"{}\" has a negative dimension: {}",
                        spec.name,
                        shape_text(shape)
                    ))
                })?;
            result.push(Tensor::new(dims, data.to_vec())?.with_name(spec.name.clone()));
        }
        Ok(result)
    }
}

/// Runs an ONNX model on every `TENSORS` packet (MediaPipe's `InferenceCalculator`, CPU, with
/// ONNX Runtime instead of TFLite).
///
/// * Input streams: `TENSORS` (`Vec<`[`Tensor`]`>`, the model's inputs in order; shapes are
///   checked against the model, dimensions the model leaves open accept any size).
/// * Output streams: `TENSORS` (`Vec<`[`Tensor`]`>`, the model's outputs in order, named).
/// * Input side packets: `MODEL_PATH` (optional, String): overrides `model_path`.
/// * Options ([`InferenceCalculatorOptions`]): `model_path`, `intra_op_threads`.
///
/// The model is loaded in `open`; a missing file, a file that is not an ONNX model, or a
/// missing ONNX Runtime library fails the run there with a message saying what to do. A
/// relative path is looked up in the current directory, then the models directory
/// ([`super::resources`]).
///
/// ```yaml
/// - calculator: InferenceCalculator
///   input_stream: ["TENSORS:input_tensors"]
///   output_stream: ["TENSORS:output_tensors"]
///   options: {model_path: object_detection_ssd_mobilenetv2_oidv4.onnx, intra_op_threads: 1}
/// ```
pub struct InferenceCalculator {
    options: InferenceCalculatorOptions,
    model: Option<OnnxModel>,
}

/// Options of [`InferenceCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceCalculatorOptions {
    /// The `.onnx` file (see [`super::resources`] for relative paths). Required unless the
    /// `MODEL_PATH` side packet is given.
    pub model_path: String,
    /// Threads ONNX Runtime may use inside one operator (default 1: the calling thread only,
    /// which leaves the graph's other threads free).
    pub intra_op_threads: usize,
}

impl Default for InferenceCalculatorOptions {
    fn default() -> Self {
        InferenceCalculatorOptions {
            model_path: String::new(),
            intra_op_threads: 1,
        }
    }
}

const TENSORS_IN: Input<Vec<Tensor>> = Input::new("TENSORS");
const TENSORS_OUT: Output<Vec<Tensor>> = Output::new("TENSORS");
const MODEL_PATH: SideInput<String> = SideInput::new("MODEL_PATH").optional();

/// The most intra-op threads accepted.
const MAX_THREADS: usize = 256;

impl Calculator for InferenceCalculator {
    type Options = InferenceCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if options.intra_op_threads > MAX_THREADS {
            return Err(cc.error(crate::Error::Config {
                calculator: "InferenceCalculator",
                message: format!(
                    "intra_op_threads must be at most {MAX_THREADS}, got {}",
                    options.intra_op_threads
                ),
            }));
        }
        cc.declare(&[&TENSORS_IN, &TENSORS_OUT, &MODEL_PATH])?;
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(InferenceCalculator {
            options: options.clone(),
            model: None,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let path = match cx.side_input_opt(&MODEL_PATH)? {
            Some(p) => p.clone(),
            None if !self.options.model_path.is_empty() => self.options.model_path.clone(),
            None => {
                return Err(crate::Error::Config {
                    calculator: "InferenceCalculator",
                    message: "no model: set the model_path option or the MODEL_PATH side packet"
                        .into(),
                }
                .into())
            }
        };
        self.model = Some(OnnxModel::load(&path, self.options.intra_op_threads)?);
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(tensors) = cx.input(&TENSORS_IN).get()? else {
            return Ok(Flow::Continue);
        };
        let model = self
            .model
            .as_mut()
            .ok_or_else(|| Error::msg("InferenceCalculator: process before open"))?;
        let outputs = model.run(tensors)?;
        let ts = cx.input_timestamp();
        cx.output(&TENSORS_OUT).send(outputs, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(InferenceCalculator, "InferenceCalculator");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_accept_open_dimensions() {
        let spec = TensorSpec {
            name: "x".into(),
            shape: vec![-1, 3, 300, 300],
        };
        assert!(spec.accepts(&[1, 3, 300, 300]));
        assert!(spec.accepts(&[4, 3, 300, 300]));
        assert!(!spec.accepts(&[1, 300, 300, 3]));
        assert!(!spec.accepts(&[3, 300, 300]));
        assert_eq!(shape_text(&spec.shape), "[?, 3, 300, 300]");
    }
}
