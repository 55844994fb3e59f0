//! Property tests of the codec: encode/decode round trips for replies and requests, chunking
//! independence of the request decoder, and that no input can make a decoder panic.

use basalt_proto::{
    Frame, Limits, Protocol, RequestDecoder, decode_frame, encode, encode_command, format_double,
    format_double_human, split_args,
};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

const CASES: u32 = 256;

fn text_without_crlf() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..24,
    )
    .prop_map(Bytes::from)
}

fn any_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("NaN never equals itself", |v| !v.is_nan()),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64 / 8.0),
    ]
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        text_without_crlf().prop_map(Frame::Simple),
        text_without_crlf().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes(40).prop_map(Frame::Bulk),
        Just(Frame::Null),
        Just(Frame::NullArray),
        any::<bool>().prop_map(Frame::Boolean),
        double().prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        (any::<[u8; 3]>(), any_bytes(30))
            .prop_map(|(format, text)| Frame::Verbatim { format, text }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            pairs.clone().prop_map(Frame::Map),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            (pairs, inner).prop_map(|(attrs, data)| Frame::Attribute {
                attrs,
                data: Box::new(data)
            }),
        ]
    })
}

/// What a RESP3 reader sees: both nulls are `_`.
fn resp3_view(f: &Frame) -> Frame {
    let all = |v: &[Frame]| v.iter().map(resp3_view).collect();
    let pairs = |v: &[(Frame, Frame)]| {
        v.iter()
            .map(|(k, v)| (resp3_view(k), resp3_view(v)))
            .collect()
    };
    match f {
        Frame::NullArray => Frame::Null,
        Frame::Array(v) => Frame::Array(all(v)),
        Frame::Set(v) => Frame::Set(all(v)),
        Frame::Push(v) => Frame::Push(all(v)),
        Frame::Map(v) => Frame::Map(pairs(v)),
        Frame::Attribute { attrs, data } => Frame::Attribute {
            attrs: pairs(attrs),
            data: Box::new(resp3_view(data)),
        },
        other => other.clone(),
    }
}

/// What a RESP2 reader sees after Redis's downgrades.
fn resp2_view(f: &Frame) -> Frame {
    let all = |v: &[Frame]| Frame::Array(v.iter().map(resp2_view).collect());
    match f {
        Frame::Boolean(b) => Frame::Integer(i64::from(*b)),
        Frame::Double(v) => {
            let mut text = Vec::new();
            format_double(*v, &mut text);
            Frame::Bulk(Bytes::from(text))
        }
        Frame::BigNumber(d) => Frame::Bulk(d.clone()),
        Frame::Verbatim { text, .. } => Frame::Bulk(text.clone()),
        Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => all(v),
        Frame::Map(pairs) => Frame::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [resp2_view(k), resp2_view(v)])
                .collect(),
        ),
        Frame::Attribute { data, .. } => resp2_view(data),
        other => other.clone(),
    }
}

/// Feeds `input` in chunks of the given sizes (cycled), collecting commands until the end or
/// the first error.
fn feed(
    limits: Limits,
    input: &[u8],
    chunks: &[usize],
) -> (Vec<Vec<Bytes>>, Option<basalt_proto::ProtocolError>) {
    feed_with(limits, input, chunks, true)
}

fn feed_with(
    limits: Limits,
    input: &[u8],
    chunks: &[usize],
    fast_path: bool,
) -> (Vec<Vec<Bytes>>, Option<basalt_proto::ProtocolError>) {
    let mut dec = RequestDecoder::new(limits);
    dec.set_fast_path(fast_path);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut sizes = chunks.iter().cycle();
    while pos < input.len() {
        let n = sizes.next().copied().unwrap_or(input.len()).max(1);
        let end = (pos + n).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(args)) => out.push(args),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// Bytes drawn mostly from RESP's own alphabet, so random input reaches deep paths.
fn resp_noise() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: &'static [u8] = b"*$\r\n\r\n0123-+:_#,(=%~|>!tf\" '\\xa\0";
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(alphabet),
            1 => any::<u8>(),
        ],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn resp3_round_trip(f in frame()) {
        let mut out = BytesMut::new();
        encode(&f, Protocol::Resp3, &mut out);
        let (decoded, used) = decode_frame(&out, 16).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(decoded, resp3_view(&f));
    }

    #[test]
    fn resp2_downgrade(f in frame()) {
        let mut out = BytesMut::new();
        encode(&f, Protocol::Resp2, &mut out);
        let (decoded, used) = decode_frame(&out, 16).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(decoded, resp2_view(&f));
    }

    #[test]
    fn pipelined_replies_split_anywhere(frames in prop::collection::vec(frame(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut out = BytesMut::new();
        for f in &frames {
            encode(f, Protocol::Resp3, &mut out);
        }
        // Any strict prefix ending inside the last frame is incomplete, never an error.
        let mut pos = 0;
        let mut got = Vec::new();
        while let Some((f, used)) = decode_frame(&out[pos..], 16).unwrap() {
            got.push(f);
            pos += used;
        }
        prop_assert_eq!(pos, out.len());
        prop_assert_eq!(got, frames.iter().map(resp3_view).collect::<Vec<_>>());
        let cut = cut.index(out.len());
        let prefix = &out[..cut];
        let mut pos = 0;
        while let Some((_, used)) = decode_frame(&prefix[pos..], 16).unwrap() {
            pos += used;
        }
        prop_assert!(pos <= cut);
    }

    #[test]
    fn commands_round_trip_in_any_chunks(
        cmds in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    8 => prop::collection::vec(any::<u8>(), 0..20),
                    1 => prop::collection::vec(any::<u8>(), 0..3000),
                ],
                1..8,
            ),
            1..6,
        ),
        chunks in prop::collection::vec(1usize..300, 1..8),
    ) {
        let mut input = BytesMut::new();
        for cmd in &cmds {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            encode_command(&args, &mut input);
        }
        let (got, err) = feed(Limits::default(), &input, &chunks);
        prop_assert_eq!(err, None);
        let got: Vec<Vec<Vec<u8>>> = got
            .iter()
            .map(|c| c.iter().map(|a| a.to_vec()).collect())
            .collect();
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn chunking_never_changes_the_outcome(
        input in resp_noise(),
        chunks in prop::collection::vec(1usize..20, 1..6),
        max_inline_len in 4usize..40,
    ) {
        let limits = Limits { max_bulk_len: 64, max_multibulk_len: 16, max_inline_len };
        let whole = feed(limits, &input, &[input.len().max(1)]);
        let chunked = feed(limits, &input, &chunks);
        prop_assert_eq!(whole, chunked);
    }

    /// Well-formed requests with damage here and there (a byte changed, inserted or
    /// dropped): the whole-request fast path and the general decoder agree on every
    /// request and error, in any chunking.
    #[test]
    fn fast_path_agrees_with_the_general_decoder(
        cmds in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..6),
            1..6,
        ),
        damage in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(&b"*$\r\n0-9a"[..])), 0..3),
        chunks in prop::collection::vec(1usize..40, 1..5),
        tiny in any::<bool>(),
    ) {
        let mut input = BytesMut::new();
        for cmd in &cmds {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            encode_command(&args, &mut input);
        }
        let mut input = input.to_vec();
        for (at, how, byte) in damage {
            if input.is_empty() {
                break;
            }
            let i = at.index(input.len());
            match how {
                0 => input[i] = byte,
                1 => input.insert(i, byte),
                _ => {
                    input.remove(i);
                }
            }
        }
        let limits = if tiny {
            Limits { max_bulk_len: 6, max_multibulk_len: 3, max_inline_len: 16 }
        } else {
            Limits::default()
        };
        for c in [&chunks[..], &[input.len().max(1)][..]] {
            prop_assert_eq!(feed_with(limits, &input, c, true), feed_with(limits, &input, c, false));
        }
    }

    #[test]
    fn request_decoder_never_panics(input in prop::collection::vec(any::<u8>(), 0..400), chunks in prop::collection::vec(1usize..64, 1..4)) {
        let _ = feed(Limits::default(), &input, &chunks);
        let tiny = Limits { max_bulk_len: 8, max_multibulk_len: 4, max_inline_len: 8 };
        let _ = feed(tiny, &input, &chunks);
    }

    #[test]
    fn request_decoder_never_panics_on_resp_noise(input in resp_noise()) {
        let _ = feed(Limits::default(), &input, &[7]);
    }

    #[test]
    fn decode_frame_never_panics(input in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(Some((_, used))) = decode_frame(&input, 8) {
            prop_assert!(used <= input.len());
        }
    }

    #[test]
    fn decode_frame_never_panics_on_resp_noise(input in resp_noise(), depth in 0usize..6) {
        let mut pos = 0;
        while let Ok(Some((_, used))) = decode_frame(&input[pos..], depth) {
            prop_assert!(used > 0);
            pos += used;
        }
    }

    #[test]
    fn hex_quoted_args_split_back(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..6)) {
        let mut line = Vec::new();
        for arg in &args {
            line.extend_from_slice(b" \"");
            for b in arg {
                line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            line.push(b'"');
        }
        prop_assert_eq!(split_args(&line), Some(args));
    }

    #[test]
    fn doubles_round_trip_through_text(v in double()) {
        let text = format_double_human(v);
        let back: f64 = text.parse().unwrap();
        prop_assert_eq!(back.to_bits(), v.to_bits());
        // %g never leaves trailing zeros in a fraction.
        let mantissa = text.split('e').next().unwrap_or_default();
        if mantissa.contains('.') {
            prop_assert!(!mantissa.ends_with('0') && !mantissa.ends_with('.'));
        }
    }
}
