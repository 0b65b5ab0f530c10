//! One JSONL packet line (as `--feed` reads it) on arbitrary text: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mediagraph::framework::PacketType;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        for ty in [PacketType::Any, PacketType::of::<i64>(), PacketType::of::<String>()] {
            let _ = mediagraph::jsonl::parse_packet(line, &ty);
        }
    }
});
