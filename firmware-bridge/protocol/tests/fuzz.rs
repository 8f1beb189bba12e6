//! Property tests: the decoder never panics, resynchronises after any garbage, accepts
//! only canonical frames, and every valid frame round-trips bit-exactly.

use crate::common::*;
use handful_protocol::*;
use proptest::prelude::*;

/// Header kind bytes: every known one plus arbitrary ones.
fn arb_kind_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            0x01u8, 0x02, 0x03, 0x10, 0x11, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34, 0x40, 0x50
        ]),
        any::<u8>(),
    ]
}

/// Byte streams with zeros sprinkled at varying density, so frames of every length
/// (empty, short, maximal, overlong) reach the decoder.
fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    (1u32..64).prop_flat_map(|zero_one_in| {
        prop::collection::vec(
            any::<u8>().prop_map(move |b| {
                if u32::from(b) % zero_one_in == 0 {
                    0
                } else {
                    b
                }
            }),
            0..1500,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics(bytes in arb_stream()) {
        let _ = decode_all(&bytes);
    }

    #[test]
    fn garbage_then_delimiter_then_frame_yields_the_frame_last(
        garbage in arb_stream(),
        frame in arb_frame(),
    ) {
        let mut stream = garbage;
        stream.push(0);
        stream.extend(encode_vec(&frame));
        let results = decode_all(&stream);
        let last = results.last().expect("at least the valid frame");
        prop_assert!(matches!(last, Ok(got) if same_bits(got, &frame)), "{last:?}");
    }

    #[test]
    fn any_frame_round_trips(frame in arb_frame()) {
        let decoded = decode_one(&encode_vec(&frame));
        prop_assert!(matches!(&decoded, Ok(got) if same_bits(got, &frame)), "{decoded:?}");
    }

    /// Frames with a correct CRC but arbitrary header and payload reach the payload
    /// parser; whatever it accepts must re-encode to the very same bytes.
    #[test]
    fn accepted_frames_are_canonical(
        version in prop_oneof![Just(PROTOCOL_VERSION), any::<u8>()],
        kind in arb_kind_byte(),
        payload in prop::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD_LEN),
    ) {
        let wire = seal(&body(version, kind, &payload));
        if let Ok(frame) = decode_one(&wire) {
            prop_assert_eq!(encode_vec(&frame), wire);
        }
    }

    /// Short payloads of the right kind are accepted often enough to exercise every
    /// field check (strings, enums, counts).
    #[test]
    fn structured_payloads_never_panic(
        kind in arb_kind_byte(),
        count in 0u8..40,
        fill in any::<u8>(),
        len in 0usize..=MAX_PAYLOAD_LEN,
    ) {
        let mut payload = vec![fill; len];
        for offset in [4usize, 9, 12] {
            if let Some(b) = payload.get_mut(offset) {
                *b = count;
            }
        }
        let _ = decode_one(&seal(&body(PROTOCOL_VERSION, kind, &payload)));
    }
}
