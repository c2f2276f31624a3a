//! Decoding a chunk of arbitrary avro records never panics, and accounts for every record:
//! each input index becomes a row or a rejection, exactly once ("nothing lost").
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_runtime::decode::{self, DecoderFactory};

const AVSC: &str = include_str!("../../examples/payments/schema/transactions.avsc");

fn factory() -> Box<dyn DecoderFactory> {
    let schema = meshd_config::PortSchema::parse(AVSC, std::path::Path::new("transactions.avsc"))
        .expect("the reference schema parses");
    Box::new(decode::AvroDecoderFactory::new(&schema.text).expect("the reference schema builds a decoder"))
}

fuzz_target!(|data: &[u8]| {
    // Records are length-prefixed by one byte, so the fuzzer controls their boundaries.
    let mut payloads = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        payloads.push(Some(&tail[..len]));
        rest = &tail[len..];
    }
    let factory = factory();
    let decoded = decode::decode_all(factory.as_ref(), &payloads, 1 << 20);
    let mut seen = vec![0u8; payloads.len()];
    for (batch, rows) in &decoded.batches {
        assert_eq!(batch.num_rows(), rows.len());
        for &r in rows {
            seen[r as usize] += 1;
        }
    }
    for r in &decoded.rejected {
        seen[r.index as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "a record was lost or counted twice: {seen:?}");
});
