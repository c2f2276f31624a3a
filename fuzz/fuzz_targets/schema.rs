//! Avro schema (.avsc) parsing never crashes: a schema or an error.
//!
//! `PortSchema::parse` checks names and aliases itself (apache-avro 0.21 unwraps on invalid
//! ones) and catches any other panic inside apache-avro as a last resort. libfuzzer-sys aborts
//! on every panic, caught or not, so the default hook is restored: a panic that escapes
//! `parse` still aborts (libfuzzer-sys's own `catch_unwind`), one the safety net catches is
//! printed and not counted as a crash. New apache-avro panics show in the log as
//! "panicked at …/apache-avro…"; give them their own check in `invalid_avro_name` when found.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = meshd_config::PortSchema::parse(text, std::path::Path::new("fuzz/schema.avsc"));
    }
});
