//! Reading typed values out of RESP replies: maps (RESP3 maps or RESP2 flat arrays of
//! pairs), strings, integers, and server errors turned into [`Error::Server`].

use crate::Error;
use basalt_proto::Frame;
use bytes::Bytes;

/// `Ok(frame)` unless the reply is an error.
pub fn check(frame: Frame) -> Result<Frame, Error> {
    match frame {
        Frame::Error(e) => Err(Error::Server(String::from_utf8_lossy(&e).into_owned())),
        f => Ok(f),
    }
}

/// The bytes of a string reply.
pub fn bytes(f: &Frame) -> Option<Bytes> {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => Some(b.clone()),
        Frame::Verbatim { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A string reply as UTF-8 (lossy).
pub fn text(f: &Frame) -> Option<String> {
    bytes(f).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// An integer reply (or a string holding one).
pub fn int(f: &Frame) -> Option<i64> {
    match f {
        Frame::Integer(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// The pairs of a map reply.
pub struct Fields(Vec<(Bytes, Frame)>);

impl Fields {
    /// Reads a map reply; `None` for anything else.
    pub fn of(frame: Frame) -> Option<Fields> {
        let pairs = match frame {
            Frame::Map(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| bytes(&k).map(|k| (k, v)))
                .collect(),
            Frame::Array(items) => {
                let mut out = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((bytes(&k)?, v));
                }
                out
            }
            _ => return None,
        };
        Some(Fields(pairs))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Frame> {
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// A string field.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(text)
    }

    /// A bytes field.
    pub fn bytes(&self, name: &str) -> Option<Bytes> {
        self.get(name).and_then(bytes)
    }

    /// An integer field; `-1` (the job commands' "none") is `None`.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(int).filter(|&i| i != -1)
    }

    /// An array of strings.
    pub fn texts(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Frame::Array(items)) | Some(Frame::Set(items)) => {
                items.iter().filter_map(text).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn fields_from_flat_arrays_and_maps() {
        let f = Fields::of(Frame::Array(vec![
            b("state"),
            b("active"),
            b("deadline"),
            Frame::Integer(-1),
            b("tags"),
            Frame::Array(vec![b("x"), b("y")]),
        ]))
        .unwrap();
        assert_eq!(f.text("state").as_deref(), Some("active"));
        assert_eq!(f.int("deadline"), None);
        assert_eq!(f.texts("tags"), ["x", "y"]);
        let f = Fields::of(Frame::Map(vec![(b("n"), Frame::Integer(3))])).unwrap();
        assert_eq!(f.int("n"), Some(3));
        assert!(Fields::of(Frame::Null).is_none());
    }

    #[test]
    fn errors_become_server_errors() {
        match check(Frame::error("STALE claim is not current")) {
            Err(Error::Server(e)) => assert_eq!(e, "STALE claim is not current"),
            other => panic!("{other:?}"),
        }
    }
}
