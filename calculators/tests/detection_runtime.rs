//! Loading ONNX Runtime: a wrong `ORT_DYLIB_PATH` or a file that is not the library gives an
//! error saying what to do (and no panic), a later good path still works, and a second,
//! different library in the same process is refused.
//!
//! One test in its own binary: it changes the process environment and the process-wide ONNX
//! Runtime state, which no other test may share.

use std::path::{Path, PathBuf};

use mediagraph_calculators::detection::inference::onnx_runtime_library;
use mediagraph_calculators::detection::resources::{models_dir, ORT_DYLIB_ENV, ORT_LIBRARY_NAME};
use mediagraph_calculators::detection::{init_onnx_runtime, OnnxModel, DEFAULT_MODEL};

#[test]
fn runtime_loading_errors_then_one_library_per_process() {
    let models = models_dir().expect("no models directory: run `scripts/setup` (CI does)");
    let good: PathBuf = match std::env::var_os(ORT_DYLIB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => models.join("onnxruntime").join(ORT_LIBRARY_NAME),
    };
    assert!(
        good.is_file(),
        "{} is missing: run `scripts/setup onnxruntime` (CI does)",
        good.display()
    );

    // A wrong ORT_DYLIB_PATH: a clear error, not a panic.
    // SAFETY (edition 2021 `set_var`): this binary runs this one test only.
    std::env::set_var(ORT_DYLIB_ENV, "/nonexistent/libonnxruntime.so");
    let text = OnnxModel::load(DEFAULT_MODEL, 1).unwrap_err().to_string();
    assert!(
        text.contains("ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so"),
        "{text}"
    );
    assert!(text.contains("scripts/setup onnxruntime"), "{text}");
    assert!(onnx_runtime_library().is_none());

    // A file that is not the library.
    let not_a_library = models.join(DEFAULT_MODEL);
    let text = init_onnx_runtime(Some(&not_a_library))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("cannot load the ONNX Runtime library"),
        "{text}"
    );
    assert!(onnx_runtime_library().is_none());

    // The right one still loads; the same path again is fine, another is refused.
    std::env::set_var(ORT_DYLIB_ENV, &good);
    init_onnx_runtime(None).expect("load ONNX Runtime");
    assert_eq!(onnx_runtime_library(), Some(good.as_path()));
    init_onnx_runtime(Some(&good)).expect("same library again");
    let text = init_onnx_runtime(Some(Path::new("/usr/lib/other/libonnxruntime.so")))
        .unwrap_err()
        .to_string();
    assert!(text.contains("already loaded"), "{text}");
    OnnxModel::load(DEFAULT_MODEL, 1).expect("model loads after the retries");
}
