//! Decoding a chunk of arbitrary JSON records never panics and accounts for every record.
#![no_main]

mod accounting;

use libfuzzer_sys::fuzz_target;
use meshd_runtime::decode::{JsonDecoderFactory, wire};

fuzz_target!(|data: &[u8]| {
    let schema = accounting::reference_schema();
    let factory = JsonDecoderFactory::new(wire::json_wire_schema(&schema));
    accounting::check(&factory, data);
});
