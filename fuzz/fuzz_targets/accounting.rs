//! What both decode targets check: a chunk of arbitrary records, length-prefixed by one byte so
//! the fuzzer controls their boundaries (255: the rest of the input), decodes without a panic,
//! and every input index becomes a row or a rejection exactly once ("nothing lost").

use meshd_runtime::decode::{self, DecoderFactory};

const AVSC: &str = include_str!("../../examples/payments/schema/transactions.avsc");

/// The reference schema, parsed.
pub fn reference_schema() -> meshd_config::PortSchema {
    meshd_config::PortSchema::parse(AVSC, std::path::Path::new("transactions.avsc"))
        .expect("the reference schema parses")
}

/// Splits `data` into records and checks the decoder accounts for each one exactly once.
pub fn check(factory: &dyn DecoderFactory, data: &[u8]) {
    let mut payloads = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        // 255 takes the rest: records longer than a length byte can say (long decimals).
        let len = if len == u8::MAX {
            tail.len()
        } else {
            (len as usize).min(tail.len())
        };
        payloads.push(Some(&tail[..len]));
        rest = &tail[len..];
    }
    let decoded = decode::decode_all(factory, &payloads, 1 << 20);
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
}
