//! Writing frames: replies in the connection's protocol, and multibulk requests.
//!
//! RESP3 writes every type natively. RESP2 downgrades RESP3-only types the way Redis 7.0
//! does (`addReplyNull`, `addReplyBool`, `addReplyDouble`, `addReplyMapLen`, ...), so a
//! RESP2 client sees exactly what it would see from Redis. Nothing is allocated except
//! growth of `out`; integers go through `itoa`, doubles through a stack buffer.

use bytes::{BufMut, BytesMut};

use crate::number::g17;
use crate::{Frame, Protocol};

/// Appends `frame` to `out` as `proto` encodes it.
///
/// Status and error texts have CR and LF replaced by spaces, as Redis's `addReplyError`
/// does, so a reply can never break the stream. Nesting is handled by recursion: frames
/// are built by the server, which bounds their depth.
///
/// ```
/// use basalt_proto::{encode, Frame, Protocol};
/// use bytes::BytesMut;
///
/// let mut out = BytesMut::new();
/// let map = Frame::Map(vec![(Frame::bulk(b"a"), Frame::Double(1.5))]);
/// encode(&map, Protocol::Resp3, &mut out);
/// assert_eq!(&out[..], b"%1\r\n$1\r\na\r\n,1.5\r\n");
/// out.clear();
/// encode(&map, Protocol::Resp2, &mut out);
/// assert_eq!(&out[..], b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n");
/// ```
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match frame {
        Frame::Simple(s) => line(out, b'+', s),
        Frame::Error(s) => line(out, b'-', s),
        Frame::Integer(n) => {
            out.put_u8(b':');
            integer(out, *n);
            out.put_slice(b"\r\n");
        }
        Frame::Bulk(b) => bulk(out, b),
        Frame::Null => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Frame::NullArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Frame::Array(items) => {
            header(out, b'*', items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Boolean(b) => out.put_slice(match (resp3, b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Frame::Double(v) => {
            let text = g17(*v);
            if resp3 {
                out.put_u8(b',');
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            } else {
                bulk(out, text.as_bytes());
            }
        }
        Frame::FormattedDouble(text) => {
            if resp3 {
                out.put_u8(b',');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            } else {
                bulk(out, text);
            }
        }
        Frame::BigNumber(digits) => {
            if resp3 {
                out.put_u8(b'(');
                out.put_slice(digits);
                out.put_slice(b"\r\n");
            } else {
                bulk(out, digits);
            }
        }
        Frame::Verbatim { format, text } => {
            if resp3 {
                header(out, b'=', text.len() + 4);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            } else {
                bulk(out, text);
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Frame::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Attribute { attrs, data } => {
            if resp3 {
                header(out, b'|', attrs.len());
                for (k, v) in attrs {
                    encode(k, proto, out);
                    encode(v, proto, out);
                }
            }
            encode(data, proto, out);
        }
        Frame::Push(items) => {
            header(out, if resp3 { b'>' } else { b'*' }, items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Bulks(list) => {
            out.reserve(list.wire().len() + 23);
            header(out, b'*', list.len());
            out.put_slice(list.wire());
        }
    }
}

/// Appends a multibulk request (`*N` then one `$len` bulk per argument), the form every
/// client sends.
///
/// ```
/// let mut out = bytes::BytesMut::new();
/// basalt_proto::encode_command(&[b"GET", b"k"], &mut out);
/// assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn encode_command(args: &[&[u8]], out: &mut BytesMut) {
    bulks(out, b'*', args);
}

/// A push message of bulk strings (pub/sub `message`, `pmessage`, ...): `>N` under RESP3,
/// a plain array under RESP2, encoded in one reservation.
///
/// ```
/// use basalt_proto::Protocol;
/// let mut out = bytes::BytesMut::new();
/// basalt_proto::encode_push(&[b"message", b"c", b"m"], Protocol::Resp3, &mut out);
/// assert_eq!(&out[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
/// ```
pub fn encode_push(args: &[&[u8]], proto: Protocol, out: &mut BytesMut) {
    bulks(
        out,
        if proto == Protocol::Resp3 { b'>' } else { b'*' },
        args,
    );
}

/// `<kind>N` followed by N bulk strings, reserving the whole size first.
fn bulks(out: &mut BytesMut, kind: u8, args: &[&[u8]]) {
    let payload: usize = args.iter().map(|a| a.len() + 16).sum();
    out.reserve(payload + 16);
    header(out, kind, args.len());
    for arg in args {
        header(out, b'$', arg.len());
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

fn integer(out: &mut BytesMut, n: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(n).as_bytes());
}

/// `<kind><n>\r\n`
fn header(out: &mut BytesMut, kind: u8, n: usize) {
    // Assembled on the stack and appended at once: one capacity check and one copy
    // instead of three (a ten-member ZRANGE reply writes eleven headers).
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    let mut h = [0u8; 23]; // kind, at most 20 digits, CRLF
    h[0] = kind;
    h[1..=digits.len()].copy_from_slice(digits);
    h[digits.len() + 1..digits.len() + 3].copy_from_slice(b"\r\n");
    out.extend_from_slice(&h[..digits.len() + 3]);
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `<kind><text>\r\n` with CR/LF in `text` turned into spaces.
fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    if memchr::memchr2(b'\r', b'\n', text).is_none() {
        out.put_slice(text);
    } else {
        for &b in text {
            out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(frame: &Frame, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(frame, proto, &mut out);
        out.to_vec()
    }

    fn both(frame: Frame, resp2: &[u8], resp3: &[u8]) {
        assert_eq!(
            enc(&frame, Protocol::Resp2),
            resp2,
            "RESP2 of {frame:?}: {:?}",
            String::from_utf8_lossy(&enc(&frame, Protocol::Resp2))
        );
        assert_eq!(
            enc(&frame, Protocol::Resp3),
            resp3,
            "RESP3 of {frame:?}: {:?}",
            String::from_utf8_lossy(&enc(&frame, Protocol::Resp3))
        );
    }

    #[test]
    fn scalars() {
        both(Frame::ok(), b"+OK\r\n", b"+OK\r\n");
        both(
            Frame::error("ERR bad\r\nthing"),
            b"-ERR bad  thing\r\n",
            b"-ERR bad  thing\r\n",
        );
        both(Frame::simple("a\nb"), b"+a b\r\n", b"+a b\r\n");
        both(Frame::Integer(0), b":0\r\n", b":0\r\n");
        both(
            Frame::Integer(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        );
        both(Frame::bulk(b""), b"$0\r\n\r\n", b"$0\r\n\r\n");
        both(
            Frame::bulk(b"a\r\nb"),
            b"$4\r\na\r\nb\r\n",
            b"$4\r\na\r\nb\r\n",
        );
        both(Frame::Null, b"$-1\r\n", b"_\r\n");
        both(Frame::NullArray, b"*-1\r\n", b"_\r\n");
        both(Frame::Boolean(true), b":1\r\n", b"#t\r\n");
        both(Frame::Boolean(false), b":0\r\n", b"#f\r\n");
    }

    #[test]
    fn doubles() {
        both(Frame::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n");
        both(
            Frame::Double(0.1),
            b"$19\r\n0.10000000000000001\r\n",
            b",0.10000000000000001\r\n",
        );
        both(Frame::Double(3.0), b"$1\r\n3\r\n", b",3\r\n");
        both(Frame::Double(1e20), b"$5\r\n1e+20\r\n", b",1e+20\r\n");
        both(Frame::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        both(
            Frame::Double(f64::NEG_INFINITY),
            b"$4\r\n-inf\r\n",
            b",-inf\r\n",
        );
        both(Frame::Double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
        both(
            Frame::FormattedDouble(Bytes::from_static(b"13.36138933897018433")),
            b"$20\r\n13.36138933897018433\r\n",
            b",13.36138933897018433\r\n",
        );
    }

    #[test]
    fn big_number_and_verbatim() {
        both(
            Frame::BigNumber(Bytes::from_static(b"-12345678901234567890")),
            b"$21\r\n-12345678901234567890\r\n",
            b"(-12345678901234567890\r\n",
        );
        both(
            Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"Some string"),
            },
            b"$11\r\nSome string\r\n",
            b"=15\r\ntxt:Some string\r\n",
        );
    }

    #[test]
    fn aggregates() {
        both(Frame::Array(vec![]), b"*0\r\n", b"*0\r\n");
        both(
            Frame::Array(vec![Frame::Integer(1), Frame::Null, Frame::bulk(b"x")]),
            b"*3\r\n:1\r\n$-1\r\n$1\r\nx\r\n",
            b"*3\r\n:1\r\n_\r\n$1\r\nx\r\n",
        );
        both(
            Frame::Map(vec![
                (Frame::bulk(b"a"), Frame::Integer(1)),
                (Frame::simple("b"), Frame::Boolean(true)),
            ]),
            b"*4\r\n$1\r\na\r\n:1\r\n+b\r\n:1\r\n",
            b"%2\r\n$1\r\na\r\n:1\r\n+b\r\n#t\r\n",
        );
        both(
            Frame::Set(vec![Frame::bulk(b"m")]),
            b"*1\r\n$1\r\nm\r\n",
            b"~1\r\n$1\r\nm\r\n",
        );
        both(
            Frame::Push(vec![Frame::bulk(b"message"), Frame::bulk(b"ch")]),
            b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
            b">2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
        );
        both(
            Frame::Attribute {
                attrs: vec![(Frame::simple("ttl"), Frame::Integer(3))],
                data: Box::new(Frame::Array(vec![Frame::Integer(7)])),
            },
            b"*1\r\n:7\r\n",
            b"|1\r\n+ttl\r\n:3\r\n*1\r\n:7\r\n",
        );
        both(
            Frame::Array(vec![Frame::Map(vec![]), Frame::Set(vec![])]),
            b"*2\r\n*0\r\n*0\r\n",
            b"*2\r\n%0\r\n~0\r\n",
        );
    }

    #[test]
    fn commands() {
        let mut out = BytesMut::new();
        encode_command(&[], &mut out);
        encode_command(&[b"SET", b"", b"a\r\nb"], &mut out);
        assert_eq!(
            &out[..],
            b"*0\r\n*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
        );
    }

    proptest::proptest! {
        /// A `Bulks` list is the same reply as an `Array` of `Bulk`s in both protocols,
        /// and gives back the elements it was given (binary, empty, CR/LF inside).
        #[test]
        fn bulks_are_an_array_of_bulks(items in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..12)) {
            let mut list = crate::BulkList::default();
            for it in &items {
                list.push(it);
            }
            let array = Frame::Array(items.iter().map(|b| Frame::bulk(b)).collect());
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                proptest::prop_assert_eq!(enc(&Frame::Bulks(list.clone()), proto), enc(&array, proto));
            }
            let back: Vec<Vec<u8>> = list.iter().map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(&back, &items);
            proptest::prop_assert_eq!(list.len(), items.len());
        }
    }

    #[test]
    fn bulks_doubles_are_resp2_scores() {
        let mut list = crate::BulkList::default();
        list.push_double(1.5);
        list.push_double(f64::INFINITY);
        both(
            Frame::Bulks(list),
            b"*2\r\n$3\r\n1.5\r\n$3\r\ninf\r\n",
            b"*2\r\n$3\r\n1.5\r\n$3\r\ninf\r\n",
        );
    }
}
