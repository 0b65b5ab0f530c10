//! Where the sample videos are, for tests, benchmarks and examples: `$MEDIAGRAPH_DATA_DIR`, else
//! the `data/` folder of the workspace this crate was built in (`scripts/setup videos` fills
//! it with `vtest.avi` and `bikes.mp4`).

use std::path::{Path, PathBuf};

/// Environment variable naming the sample data directory.
pub const DATA_DIR_ENV: &str = "MEDIAGRAPH_DATA_DIR";

/// The sample data directory (it may not exist yet).
pub fn data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../data"),
    }
}

/// The path of sample video `name`, or a message saying how to fetch it.
pub fn sample_video(name: &str) -> Result<PathBuf, String> {
    let path = data_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "sample video {} is missing: run `scripts/setup videos` (or set {DATA_DIR_ENV})",
            path.display()
        ))
    }
}
