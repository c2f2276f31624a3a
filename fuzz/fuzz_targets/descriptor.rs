//! Descriptor parsing never panics, whatever the YAML: it returns a descriptor or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = meshd_config::DataProduct::from_str_at(text, std::path::Path::new("fuzz/product.yaml"));
    }
});
