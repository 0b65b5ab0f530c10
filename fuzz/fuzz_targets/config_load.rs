//! The YAML loader, validator and subgraph expander on arbitrary text: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Link the calculators so configs naming them get past the registry into validation.
    let _ = mediagraph::calculators::VideoHeader::default();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = mediagraph::config::load_str(text, None) {
            // Every rejection renders, with its location.
            let _ = e.to_string();
        }
    }
});
