//! Room names and the Redis send payload that carries them: `room1,room2 NUL <frame>`.

use std::sync::Arc;

use crate::WsError;

/// Checks that `room` can travel in the reference's send payload: not empty, no `,` (the
/// separator) and no NUL (the end of the room list).
pub fn validate_room(room: &str) -> Result<(), WsError> {
    let reason = if room.is_empty() {
        "it is empty"
    } else if room.contains(',') {
        "it contains `,`"
    } else if room.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(WsError::InvalidRoom {
        room: room.to_owned(),
        reason,
    })
}

/// Validates every room and collects them, without duplicates, in the order given.
pub(crate) fn rooms<R: AsRef<str>>(rooms: &[R]) -> Result<Vec<Arc<str>>, WsError> {
    let mut out: Vec<Arc<str>> = Vec::with_capacity(rooms.len());
    for room in rooms {
        let room = room.as_ref();
        validate_room(room)?;
        if !out.iter().any(|r| &**r == room) {
            out.push(Arc::from(room));
        }
    }
    Ok(out)
}

/// The payload of the send channel: the rooms comma-joined, a NUL byte, the frame.
pub fn encode_send_payload<R: AsRef<str>>(rooms: &[R], frame: &[u8]) -> Vec<u8> {
    let names: usize = rooms.iter().map(|r| r.as_ref().len() + 1).sum();
    let mut payload = Vec::with_capacity(names + frame.len());
    for (i, room) in rooms.iter().enumerate() {
        if i > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(room.as_ref().as_bytes());
    }
    payload.push(0);
    payload.extend_from_slice(frame);
    payload
}

/// Splits a send-channel payload into its rooms and its frame; `None` when it has no NUL
/// byte or its rooms are not UTF-8.
pub fn decode_send_payload(payload: &[u8]) -> Option<(Vec<&str>, &[u8])> {
    let nul = payload.iter().position(|b| *b == 0)?;
    let rooms = std::str::from_utf8(&payload[..nul]).ok()?;
    Some((rooms.split(',').collect(), &payload[nul + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_the_wire_cannot_carry_are_refused_by_name() {
        assert!(validate_room("tasks:42").is_ok());
        for (room, why) in [("", "empty"), ("a,b", "`,`"), ("a\0b", "NUL")] {
            let error = validate_room(room).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn send_payloads_are_the_references_bytes() {
        let payload = encode_send_payload(&["room-a", "room-b"], br#"{"MESSAGE_ID":"x"}"#);
        assert_eq!(payload, b"room-a,room-b\0{\"MESSAGE_ID\":\"x\"}");
        let (rooms, frame) = decode_send_payload(&payload).unwrap();
        assert_eq!(rooms, ["room-a", "room-b"]);
        assert_eq!(frame, br#"{"MESSAGE_ID":"x"}"#);
        assert!(decode_send_payload(b"no separator").is_none());
    }

    #[test]
    fn duplicate_rooms_are_sent_once() {
        let rooms = rooms(&["a", "b", "a"]).unwrap();
        assert_eq!(rooms.len(), 2);
    }
}
