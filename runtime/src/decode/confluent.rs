//! Confluent's wire format: byte 0, a 4-byte big-endian schema id, then an Avro datum written
//! with the schema registered under that id. Each writer schema is checked against the port's
//! schema once ([`resolve::check`]) and gets one decoder factory, cached by id; a chunk's
//! records are grouped by id and each group decodes through its writer's factory, so the
//! registry is never asked per record and decoding stays Arrow-native.
//!
//! Fetching writer schemas is the caller's (async) job: [`ConfluentDecoders::missing`] says
//! which ids of a chunk are not cached, [`ConfluentDecoders::learn`] adds one, and
//! [`ConfluentDecoders::decode`] then runs without I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::avro::AvroDecoderFactory;
use super::resolve;
use super::{Decoded, Reason, decode_all};

/// The magic byte that starts every record in Confluent's wire format.
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_BYTES: usize = 5;

/// The schema id of a record, or why it is not in Confluent's wire format.
pub fn schema_id(payload: &[u8]) -> Result<u32, String> {
    match payload {
        [MAGIC, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [first, ..] if *first != MAGIC => Err(format!(
            "not in Confluent's wire format: the first byte is {first}, not the magic byte 0"
        )),
        _ => Err(format!(
            "not in Confluent's wire format: {} bytes, shorter than the 5-byte header",
            payload.len()
        )),
    }
}

/// What a writer schema id means for the port.
enum Writer {
    /// Its records decode into the port's schema.
    Readable(AvroDecoderFactory),
    /// Its records cannot be read as the port's schema: why, naming the field.
    Unreadable(String),
}

/// The writer schemas one input port has met, by id, with their decoders.
pub struct ConfluentDecoders {
    reader: String,
    capacity: usize,
    writers: HashMap<u32, (Arc<Writer>, u64)>,
    /// Ids the registry said it does not know, for the chunk being decoded only.
    unknown: BTreeSet<u32>,
    tick: u64,
}

impl ConfluentDecoders {
    /// Decoders into `reader` (the port's schema text), keeping up to `capacity` writers.
    pub fn new(reader: &str, capacity: usize) -> Self {
        Self {
            reader: reader.to_string(),
            capacity: capacity.max(1),
            writers: HashMap::new(),
            unknown: BTreeSet::new(),
            tick: 0,
        }
    }

    /// The schema ids among `payloads` that are neither cached nor known to be unknown.
    pub fn missing<'a>(&self, payloads: impl Iterator<Item = Option<&'a [u8]>>) -> BTreeSet<u32> {
        payloads
            .flatten()
            .filter_map(|p| schema_id(p).ok())
            .filter(|id| !self.writers.contains_key(id) && !self.unknown.contains(id))
            .collect()
    }

    /// Adds the writer schema registered under `id`: checked against the port's schema once,
    /// and given its decoder. Returns why it cannot be read, if it cannot.
    pub fn learn(&mut self, id: u32, writer: &str) -> Option<String> {
        let entry = match resolve::check(writer, &self.reader) {
            Err(incompatible) => Writer::Unreadable(format!(
                "writer schema {id} cannot be read as the port's schema: {incompatible}"
            )),
            Ok(()) => {
                match AvroDecoderFactory::resolving(&aligned(writer, &self.reader), &self.reader) {
                    Ok(factory) => Writer::Readable(factory),
                    // The check passed but arrow-avro refuses a rule it does not implement.
                    Err(e) => Writer::Unreadable(format!(
                        "writer schema {id} cannot be read as the port's schema: {e}"
                    )),
                }
            }
        };
        let problem = match &entry {
            Writer::Unreadable(why) => Some(why.clone()),
            Writer::Readable(_) => None,
        };
        if self.writers.len() >= self.capacity
            && let Some(oldest) = self
                .writers
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
        {
            self.writers.remove(&oldest);
        }
        self.tick += 1;
        self.writers.insert(id, (Arc::new(entry), self.tick));
        problem
    }

    /// The registry does not know `id` (its records go to the dead-letter topic as
    /// `schema-id`); forgotten after the next [`decode`](Self::decode), so an id registered
    /// late is found then.
    pub fn unknown(&mut self, id: u32) {
        self.unknown.insert(id);
    }

    /// Decodes `payloads` (None: a record without a value) whose ids were all learnt or found
    /// unknown. Rows keep their input index; each group of one writer is one or more batches.
    pub fn decode(&mut self, payloads: &[Option<&[u8]>], max_record_bytes: usize) -> Decoded {
        let mut out = Decoded::default();
        let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, payload) in payloads.iter().enumerate() {
            let index = i as u32;
            let bytes = match super::decodable(*payload, max_record_bytes) {
                Ok(bytes) => bytes,
                Err((reason, message)) => {
                    out.reject(index, reason, message);
                    continue;
                }
            };
            match schema_id(bytes) {
                Err(why) => out.reject(index, Reason::Decode, why),
                Ok(id) => groups.entry(id).or_default().push(index),
            }
        }
        self.tick += 1;
        let tick = self.tick;
        for (id, indices) in groups {
            let writer = match self.writers.get_mut(&id) {
                Some((writer, used)) => {
                    *used = tick;
                    Arc::clone(writer)
                }
                None => {
                    for i in indices {
                        out.reject(
                            i,
                            Reason::SchemaId,
                            format!("schema id {id} is not in the schema registry"),
                        );
                    }
                    continue;
                }
            };
            match writer.as_ref() {
                Writer::Unreadable(why) => {
                    for i in indices {
                        out.reject(i, Reason::SchemaResolution, why.clone());
                    }
                }
                Writer::Readable(factory) => {
                    let datums: Vec<Option<&[u8]>> = indices
                        .iter()
                        .map(|&i| payloads[i as usize].map(|p| &p[HEADER_BYTES..]))
                        .collect();
                    let decoded = decode_all(factory, &datums, max_record_bytes);
                    for (batch, rows) in decoded.batches {
                        let rows = rows.iter().map(|&r| indices[r as usize]).collect();
                        out.batches.push((batch, rows));
                    }
                    for r in decoded.rejected {
                        out.reject(indices[r.index as usize], r.kind, r.message);
                    }
                }
            }
        }
        self.unknown.clear();
        out
    }
}

/// The writer schema with the port's record name and namespace when only the namespace
/// differs: Confluent compares unqualified names, arrow-avro full ones.
fn aligned(writer: &str, reader: &str) -> String {
    let (Ok(mut w), Ok(r)) = (
        serde_json::from_str::<serde_json::Value>(writer),
        serde_json::from_str::<serde_json::Value>(reader),
    ) else {
        return writer.to_string();
    };
    let short = |v: &serde_json::Value| {
        v["name"]
            .as_str()
            .map(|n| n.rsplit('.').next().unwrap_or(n).to_string())
    };
    if short(&w).is_some() && short(&w) == short(&r) {
        w["name"] = r["name"].clone();
        match r.get("namespace") {
            Some(ns) => w["namespace"] = ns.clone(),
            None => {
                if let Some(map) = w.as_object_mut() {
                    map.remove("namespace");
                }
            }
        }
    }
    w.to_string()
}

#[cfg(test)]
mod tests;
