//! Where model files and the ONNX Runtime library are found, without the user exporting
//! anything.
//!
//! **Models directory** (the first that exists):
//! 1. `$MEDIAGRAPH_MODELS_DIR`;
//! 2. `<dir of the executable>/../../models` (the workspace's `models/` for
//!    `target/{debug,release}/mediagraph`), and `<dir>/../../../models` (test and example
//!    binaries in `target/*/deps` or `target/*/examples`);
//! 3. the `models/` directory of the workspace this crate was built in.
//!
//! **A model file** given as a relative path (option `model_path`, side packet `MODEL_PATH`,
//! `label_map_path`) is looked up relative to the current directory first, then in the models
//! directory. Absolute paths are used as they are.
//!
//! **The ONNX Runtime library**: `$ORT_DYLIB_PATH`, else
//! `<models dir>/onnxruntime/libonnxruntime.so` (put there by `scripts/setup onnxruntime`).

use std::path::{Path, PathBuf};

use super::DetectionError;
use crate::Result;

/// Environment variable naming the models directory.
pub const MODELS_DIR_ENV: &str = "MEDIAGRAPH_MODELS_DIR";
/// Environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// The library's file name inside `<models dir>/onnxruntime/`.
pub const ORT_LIBRARY_NAME: &str = if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else if cfg!(target_os = "windows") {
    "onnxruntime.dll"
} else {
    "libonnxruntime.so"
};

/// The candidate models directories, in the order they are tried (see the module docs).
pub fn models_dir_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("../../models"));
        dirs.push(exe_dir.join("../../../models"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    dirs
}

/// The models directory: the first candidate that exists (see the module docs).
pub fn models_dir() -> Option<PathBuf> {
    models_dir_candidates()
        .into_iter()
        .find(|d| d.is_dir())
        .map(|d| d.canonicalize().unwrap_or(d))
}

fn listing(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves a model file path (see the module docs); `what` names it in the error, which
/// lists where it was looked for and how to provide it.
pub fn resolve_model_file(path: &str, what: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(DetectionError::Model {
            path: String::new(),
            message: format!("no {what} given"),
        }
        .into());
    }
    let p = Path::new(path);
    let mut tried = vec![p.to_path_buf()];
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_relative() {
        for dir in models_dir_candidates() {
            let candidate = dir.join(p);
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate);
        }
    }
    Err(DetectionError::Model {
        path: path.to_string(),
        message: format!(
            "{what} not found (looked at: {}). Run `scripts/setup model` to fetch the bundled \
             model, give an existing path, or set {MODELS_DIR_ENV} to the directory holding it",
            listing(&tried)
        ),
    }
    .into())
}

/// The ONNX Runtime library to load (see the module docs), or an error saying where it was
/// looked for and how to point at it.
pub fn ort_library_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(DetectionError::Runtime(format!(
            "{ORT_DYLIB_ENV}={} does not name a file; point it at libonnxruntime.so \
             (scripts/setup onnxruntime puts one in models/onnxruntime/) or unset it",
            p.display()
        ))
        .into());
    }
    let tried: Vec<PathBuf> = models_dir_candidates()
        .into_iter()
        .map(|d| d.join("onnxruntime").join(ORT_LIBRARY_NAME))
        .collect();
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.canonicalize().unwrap_or_else(|_| found.clone()));
    }
    Err(DetectionError::Runtime(format!(
        "the ONNX Runtime library was not found (looked at: {}). Run `scripts/setup onnxruntime`, \
         or set {ORT_DYLIB_ENV} to the path of libonnxruntime.so (1.20 or newer), or \
         {MODELS_DIR_ENV} to a directory with onnxruntime/{ORT_LIBRARY_NAME}",
        listing(&tried)
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_file_says_where_it_looked_and_what_to_do() {
        let err = resolve_model_file("no_such_model.onnx", "model").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("model not found"), "{text}");
        assert!(text.contains("scripts/setup model"), "{text}");
        assert!(text.contains(MODELS_DIR_ENV), "{text}");
        let err = resolve_model_file("", "label map").unwrap_err();
        assert!(err.to_string().contains("no label map given"), "{err}");
    }

    #[test]
    fn existing_paths_are_used_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.onnx");
        std::fs::write(&f, b"x").unwrap();
        let s = f.to_string_lossy().into_owned();
        assert_eq!(resolve_model_file(&s, "model").unwrap(), f);
    }
}
