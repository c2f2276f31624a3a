//! Avro schema (.avsc) parsing never panics: a schema or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = meshd_config::PortSchema::parse(text, std::path::Path::new("fuzz/schema.avsc"));
    }
});
