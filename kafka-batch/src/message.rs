//! A borrowed view of one message of a batch, valid until the batch is destroyed.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::types::RDKafkaRespErr;

/// One record as librdkafka fetched it, borrowed from the batch: copy out what is kept.
pub struct BatchMessage<'a> {
    raw: &'a rdsys::rd_kafka_message_t,
}

/// One header of a record: its key is UTF-8 unless a producer sent otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The key, or its bytes when they are not UTF-8.
    pub key: Result<&'a str, &'a [u8]>,
    /// The value (None: a null header).
    pub value: Option<&'a [u8]>,
}

impl<'a> BatchMessage<'a> {
    /// Wraps a message of a batch that stays alive for `'a` and carries no error.
    ///
    /// # Safety
    /// `raw` points to a message returned by `rd_kafka_consume_batch_queue` and not yet
    /// destroyed, and is not destroyed during `'a`.
    pub(crate) unsafe fn new(raw: *const rdsys::rd_kafka_message_t) -> Self {
        // SAFETY: the caller guarantees `raw` is a live message for 'a.
        let raw = unsafe { &*raw };
        Self { raw }
    }

    /// The message's error code (`NO_ERROR` for a record).
    pub(crate) fn error(&self) -> RDKafkaRespErr {
        self.raw.err
    }

    /// The topic's name ("" if librdkafka gave none or it is not UTF-8, which Kafka forbids).
    pub fn topic(&self) -> &'a str {
        if self.raw.rkt.is_null() {
            return "";
        }
        // SAFETY: a message holds a reference on its topic (`rkt`), whose name is a
        // NUL-terminated string that lives as long as the topic handle.
        let name = unsafe { rdsys::rd_kafka_topic_name(self.raw.rkt) };
        if name.is_null() {
            return "";
        }
        // SAFETY: `name` is non-null and NUL-terminated (above), alive while the message is.
        unsafe { CStr::from_ptr(name) }.to_str().unwrap_or("")
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.raw.partition
    }

    /// The offset.
    pub fn offset(&self) -> i64 {
        self.raw.offset
    }

    /// The value (None: a tombstone).
    pub fn payload(&self) -> Option<&'a [u8]> {
        // SAFETY: librdkafka's `payload`/`len` describe one buffer owned by the message.
        unsafe { bytes(self.raw.payload, self.raw.len) }
    }

    /// The key (None: no key).
    pub fn key(&self) -> Option<&'a [u8]> {
        // SAFETY: librdkafka's `key`/`key_len` describe one buffer owned by the message.
        unsafe { bytes(self.raw.key, self.raw.key_len) }
    }

    /// The Kafka timestamp, milliseconds since the epoch (None: the record has none).
    pub fn timestamp_millis(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: reads the live message; `kind` is a valid place to write the type to.
        let millis = unsafe { rdsys::rd_kafka_message_timestamp(self.raw, &mut kind) };
        match kind {
            rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => None,
            _ if millis < 0 => None,
            _ => Some(millis),
        }
    }

    /// The record's headers, in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + 'a {
        let mut headers: *mut rdsys::rd_kafka_headers_t = ptr::null_mut();
        // SAFETY: reads (and on first call parses) the live message's headers; the list
        // belongs to the message and lives as long as it does.
        let err = unsafe { rdsys::rd_kafka_message_headers(self.raw, &mut headers) };
        let headers = (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && !headers.is_null())
            .then_some(headers as *const rdsys::rd_kafka_headers_t);
        let mut index = 0;
        std::iter::from_fn(move || {
            let list = headers?;
            let mut name: *const c_char = ptr::null();
            let mut value: *const c_void = ptr::null();
            let mut size = 0usize;
            // SAFETY: `list` is the message's header list (alive for 'a); out-pointers are valid.
            let err = unsafe {
                rdsys::rd_kafka_header_get_all(list, index, &mut name, &mut value, &mut size)
            };
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            index += 1;
            // SAFETY: header names are NUL-terminated strings owned by the list.
            let key = unsafe { CStr::from_ptr(name) }.to_bytes();
            Some(Header {
                key: std::str::from_utf8(key).map_err(|_| key),
                // SAFETY: `value`/`size` describe the header's value, owned by the list.
                value: unsafe { bytes(value, size) },
            })
        })
    }
}

/// A borrowed slice from librdkafka's pointer and length (None for a null pointer).
///
/// # Safety
/// A non-null `data` points to `len` initialised bytes alive and unchanged for `'a`.
unsafe fn bytes<'a>(data: *const c_void, len: usize) -> Option<&'a [u8]> {
    if data.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller (above).
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}
