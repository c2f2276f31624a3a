//! Decoding a chunk of arbitrary Avro datums never panics and accounts for every record.
#![no_main]

mod accounting;

use libfuzzer_sys::fuzz_target;
use meshd_runtime::decode::AvroDecoderFactory;

fuzz_target!(|data: &[u8]| {
    let schema = accounting::reference_schema();
    let factory =
        AvroDecoderFactory::new(&schema.text).expect("the reference schema builds a decoder");
    accounting::check(&factory, data);
});
