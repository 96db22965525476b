//! Byte layouts of stored records. Values carry their revisions in a fixed 16-byte header so that a
//! read needs one lookup; log entries carry enough to rebuild the watch event they stand for.

use crate::{Event, EventType, KeyValue};

const HEADER: usize = 16;

/// Encodes a key's value with its create and mod revisions.
pub(crate) fn encode_value(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_value(key: &str, bytes: &[u8]) -> KeyValue {
    let create_revision = u64::from_le_bytes(bytes[0..8].try_into().expect("8-byte header"));
    let mod_revision = u64::from_le_bytes(bytes[8..16].try_into().expect("8-byte header"));
    KeyValue {
        key: key.to_string(),
        value: bytes[HEADER..].to_vec(),
        create_revision,
        mod_revision,
    }
}

/// Log entries are keyed by (revision, index within the transaction) packed into one u64 key:
/// the revision in the upper 48 bits, the index in the lower 16 (a transaction holds < 65536 ops).
pub(crate) fn log_key(revision: u64, index: usize) -> u64 {
    (revision << 16) | (index as u64 & 0xffff)
}

pub(crate) fn log_key_revision(key: u64) -> u64 {
    key >> 16
}

/// kind (1 byte: 0 put, 1 put that created, 2 delete) | create_revision | key length (u32) | key | value
pub(crate) fn encode_event(event: &Event) -> Vec<u8> {
    let kind = match (event.kind, event.created) {
        (EventType::Put, false) => 0u8,
        (EventType::Put, true) => 1,
        (EventType::Delete, _) => 2,
    };
    let key = event.kv.key.as_bytes();
    let mut out = Vec::with_capacity(13 + key.len() + event.kv.value.len());
    out.push(kind);
    out.extend_from_slice(&event.kv.create_revision.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&event.kv.value);
    out
}

pub(crate) fn decode_event(revision: u64, bytes: &[u8]) -> Event {
    let (kind, created) = match bytes[0] {
        0 => (EventType::Put, false),
        1 => (EventType::Put, true),
        _ => (EventType::Delete, false),
    };
    let create_revision = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(bytes[9..13].try_into().expect("4 bytes")) as usize;
    let key = String::from_utf8_lossy(&bytes[13..13 + key_len]).into_owned();
    let value = bytes[13 + key_len..].to_vec();
    Event {
        kind,
        created,
        prev_value: None,
        rendered: Default::default(),
        kv: KeyValue {
            key,
            value,
            create_revision,
            mod_revision: revision,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip() {
        let bytes = encode_value(3, 7, b"{}");
        assert_eq!(
            decode_value("/k", &bytes),
            KeyValue {
                key: "/k".into(),
                value: b"{}".to_vec(),
                create_revision: 3,
                mod_revision: 7
            }
        );
    }

    #[test]
    fn event_round_trip() {
        let event = Event {
            prev_value: None,
            rendered: Default::default(),
            kind: EventType::Delete,
            created: false,
            kv: KeyValue {
                key: "/services/default/web".into(),
                value: b"{\"a\":1}".to_vec(),
                create_revision: 2,
                mod_revision: 9,
            },
        };
        assert_eq!(decode_event(9, &encode_event(&event)), event);
        assert_eq!(log_key_revision(log_key(9, 3)), 9);
        assert!(log_key(9, 65535) < log_key(10, 0));
    }
}
