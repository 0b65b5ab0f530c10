//! The binary TrackingData decoder on arbitrary bytes: errors, never panics; what decodes
//! re-encodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mediagraph::calculators::tracking::tracking_data::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode(data) {
        let _ = encode(&decoded, true);
    }
});
