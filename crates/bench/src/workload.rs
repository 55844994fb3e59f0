//! What the load generator sends: command templates with `__key__`/`__data__` placeholders,
//! mixed by weights (`--ratio`), or the cache-aside pattern (GET; on a miss, SET).
//!
//! Templates are parsed once into argument pieces; filling one in per request costs a key
//! formatting and a slice of a pre-generated random buffer, never an allocation.

use bytes::BytesMut;

/// A piece of one argument.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(Vec<u8>),
    Key,
    Data,
}

/// One argument of a template.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// Sent as is.
    Lit(Vec<u8>),
    /// Exactly `__key__`.
    Key,
    /// Exactly `__data__`.
    Data,
    /// Literal text mixed with placeholders, e.g. `user:__key__:name`.
    Mixed(Vec<Piece>),
}

/// A parsed command template: one command, or several sent as one request (a
/// transaction: `MULTI ; INCR a:__key__ ; INCR b:__key__ ; EXEC`, words `;` between
/// them), whose last reply completes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The command name, upper-cased, for reports (the names joined by `+` for several).
    pub name: String,
    args: Vec<Arg>,
    /// The commands sent after this one in the same request.
    then: Vec<Template>,
}

/// Most arguments a template fills without heap allocation.
const INLINE_ARGS: usize = 16;

impl Template {
    /// Parses a template such as `SET __key__ __data__ EX 60`. Arguments are separated by
    /// whitespace; single or double quotes group an argument containing spaces; a word
    /// that is exactly `;` (unquoted) starts the next command of the same request.
    pub fn parse(text: &str) -> Result<Template, String> {
        let words = split_words(text)?;
        let mut commands = words.split(|w| w.as_slice() == b";").map(|words| {
            let Some(first) = words.first() else {
                return Err(format!("empty command in template {text:?}"));
            };
            Ok(Template {
                name: String::from_utf8_lossy(first).to_ascii_uppercase(),
                args: words.iter().map(|w| parse_arg(w)).collect(),
                then: Vec::new(),
            })
        });
        let mut t = match commands.next() {
            Some(first) => first?,
            None => return Err("empty command template".into()),
        };
        t.then = commands.collect::<Result<_, _>>()?;
        if !t.then.is_empty() {
            let names: Vec<&str> = t.then.iter().map(|c| c.name.as_str()).collect();
            t.name = format!("{}+{}", t.name, names.join("+"));
        }
        Ok(t)
    }

    /// Replies that answer one request of this template.
    pub fn replies(&self) -> usize {
        1 + self.then.len()
    }

    /// True if the template names `__key__` anywhere.
    pub fn uses_key(&self) -> bool {
        let own = self.args.iter().any(|a| match a {
            Arg::Key => true,
            Arg::Mixed(p) => p.contains(&Piece::Key),
            _ => false,
        });
        own || self.then.iter().any(Template::uses_key)
    }

    /// Adds `EX ttl` to a SET template that sets no expiry of its own.
    pub fn add_ttl_to_set(&mut self, ttl: u64) {
        if self.name != "SET" || !self.then.is_empty() {
            return;
        }
        let has_expiry = self.args.iter().skip(3).any(|a| match a {
            Arg::Lit(l) => {
                let u = l.to_ascii_uppercase();
                matches!(u.as_slice(), b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL")
            }
            _ => false,
        });
        if !has_expiry {
            self.args.push(Arg::Lit(b"EX".to_vec()));
            self.args.push(Arg::Lit(ttl.to_string().into_bytes()));
        }
    }

    /// Encodes the request for `key` and `data`: each command a RESP array of bulk
    /// strings. `scratch` holds the rendering of mixed arguments.
    pub fn encode(&self, key: &[u8], data: &[u8], scratch: &mut Vec<Vec<u8>>, out: &mut BytesMut) {
        self.encode_one(key, data, scratch, out);
        for t in &self.then {
            t.encode_one(key, data, scratch, out);
        }
    }

    fn encode_one(&self, key: &[u8], data: &[u8], scratch: &mut Vec<Vec<u8>>, out: &mut BytesMut) {
        // Render the mixed arguments first (mutable phase), then borrow everything.
        if scratch.len() < self.args.len() {
            scratch.resize(self.args.len(), Vec::new());
        }
        for (arg, buf) in self.args.iter().zip(scratch.iter_mut()) {
            if let Arg::Mixed(pieces) = arg {
                buf.clear();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => buf.extend_from_slice(l),
                        Piece::Key => buf.extend_from_slice(key),
                        Piece::Data => buf.extend_from_slice(data),
                    }
                }
            }
        }
        let scratch: &[Vec<u8>] = scratch;
        let slice = |i: usize| -> &[u8] {
            match &self.args[i] {
                Arg::Lit(l) => l,
                Arg::Key => key,
                Arg::Data => data,
                Arg::Mixed(_) => &scratch[i],
            }
        };
        if self.args.len() <= INLINE_ARGS {
            let mut arr: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
            for (i, slot) in arr.iter_mut().enumerate().take(self.args.len()) {
                *slot = slice(i);
            }
            basalt_proto::encode_command(&arr[..self.args.len()], out);
        } else {
            let v: Vec<&[u8]> = (0..self.args.len()).map(slice).collect();
            basalt_proto::encode_command(&v, out);
        }
    }
}

fn parse_arg(word: &[u8]) -> Arg {
    match word {
        b"__key__" => return Arg::Key,
        b"__data__" => return Arg::Data,
        _ => {}
    }
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < word.len() {
        if word[i..].starts_with(b"__key__") {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Key);
            i += 7;
        } else if word[i..].starts_with(b"__data__") {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Data);
            i += 8;
        } else {
            lit.push(word[i]);
            i += 1;
        }
    }
    if pieces.is_empty() {
        return Arg::Lit(lit);
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Arg::Mixed(pieces)
}

/// Splits on whitespace with '...' and "..." grouping (no escapes).
fn split_words(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut quote: Option<u8> = None;
    for &b in text.as_bytes() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => cur.get_or_insert_with(Vec::new).push(b),
            None if b == b'"' || b == b'\'' => {
                quote = Some(b);
                cur.get_or_insert_with(Vec::new);
            }
            None if b.is_ascii_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            None => cur.get_or_insert_with(Vec::new).push(b),
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in command template {text:?}"));
    }
    if let Some(w) = cur {
        words.push(w);
    }
    Ok(words)
}

/// Parses `A:B[:C...]` weights (`--ratio 9:1`, `--ratio 90:10`).
pub fn parse_ratio(s: &str) -> Result<Vec<u64>, String> {
    let w: Result<Vec<u64>, _> = s.split(':').map(|p| p.trim().parse::<u64>()).collect();
    let w = w.map_err(|_| format!("bad ratio {s:?} (expected weights like 9:1)"))?;
    if w.iter().sum::<u64>() == 0 {
        return Err(format!("ratio {s:?} has no non-zero weight"));
    }
    Ok(w)
}

/// The request mix.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The command templates; statistics are kept per template.
    pub templates: Vec<Template>,
    /// Cumulative weights for choosing a template.
    cumulative: Vec<u64>,
    /// In cache-aside mode, the indexes of the GET and the follow-up SET templates.
    pub cache_aside: Option<(usize, usize)>,
}

impl Workload {
    /// Weighted templates (weights in the same order as templates).
    pub fn weighted(templates: Vec<Template>, weights: &[u64]) -> Result<Workload, String> {
        if templates.is_empty() {
            return Err("no command template".into());
        }
        if weights.len() != templates.len() {
            return Err(format!(
                "--ratio has {} weights for {} commands",
                weights.len(),
                templates.len()
            ));
        }
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut acc = 0u64;
        for w in weights {
            acc = acc
                .checked_add(*w)
                .ok_or_else(|| "ratio weights overflow".to_string())?;
            cumulative.push(acc);
        }
        if acc == 0 {
            return Err("all ratio weights are zero".into());
        }
        Ok(Workload {
            templates,
            cumulative,
            cache_aside: None,
        })
    }

    /// The default GET/SET mix with `GET:SET` weights.
    pub fn get_set(weights: &[u64], ttl: Option<u64>) -> Result<Workload, String> {
        if weights.len() != 2 {
            return Err("--ratio needs two weights GET:SET unless --command is given".into());
        }
        let mut set = Template::parse("SET __key__ __data__")?;
        if let Some(t) = ttl {
            set.add_ttl_to_set(t);
        }
        Workload::weighted(vec![Template::parse("GET __key__")?, set], weights)
    }

    /// Cache-aside: every operation is a GET; a miss is followed at once by a SET of the
    /// same key.
    pub fn cache_aside(ttl: Option<u64>) -> Result<Workload, String> {
        let mut w = Workload::get_set(&[1, 0], ttl)?;
        w.cache_aside = Some((0, 1));
        Ok(w)
    }

    /// Picks a template index for the next operation from a uniform draw.
    #[inline]
    pub fn pick(&self, draw: u64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = draw % total;
        self.cumulative.iter().position(|&c| x < c).unwrap_or(0)
    }

    /// Names of the templates, for statistics.
    pub fn names(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(t: &Template, key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        t.encode(key, data, &mut scratch, &mut out);
        out.to_vec()
    }

    #[test]
    fn templates_fill_placeholders() {
        let t = Template::parse("SET __key__ __data__").unwrap();
        assert_eq!(t.name, "SET");
        assert!(t.uses_key());
        assert_eq!(
            enc(&t, b"k1", b"vv"),
            b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nvv\r\n"
        );
        let t = Template::parse("hset user:__key__ 'full name' x__data__y").unwrap();
        assert_eq!(t.name, "HSET");
        assert_eq!(
            enc(&t, b"7", b"D"),
            b"*4\r\n$4\r\nhset\r\n$6\r\nuser:7\r\n$9\r\nfull name\r\n$3\r\nxDy\r\n"
        );
        let t = Template::parse("PING").unwrap();
        assert!(!t.uses_key());
        assert_eq!(enc(&t, b"", b""), b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn long_templates_are_encoded_too() {
        let text = format!("MSET {}", "__key__ __data__ ".repeat(10));
        let t = Template::parse(&text).unwrap();
        let out = enc(&t, b"k", b"v");
        assert!(out.starts_with(b"*21\r\n$4\r\nMSET\r\n$1\r\nk\r\n$1\r\nv\r\n"));
    }

    #[test]
    fn one_request_may_hold_several_commands() {
        let t = Template::parse("MULTI ; INCR a:__key__ ; INCR 'b;c' ; EXEC").unwrap();
        assert_eq!(t.name, "MULTI+INCR+INCR+EXEC");
        assert_eq!(t.replies(), 4);
        assert!(t.uses_key());
        let mut out = BytesMut::new();
        t.encode(b"7", b"", &mut Vec::new(), &mut out);
        assert_eq!(
            &out[..],
            b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$3\r\na:7\r\n*2\r\n$4\r\nINCR\r\n$3\r\nb;c\r\n*1\r\n$4\r\nEXEC\r\n"
        );
        let mut set = Template::parse("SET __key__ x ; GET __key__").unwrap();
        set.add_ttl_to_set(5);
        assert_eq!(set.replies(), 2, "no TTL added to a multi-command request");
        assert!(Template::parse("GET a ; ; GET b").is_err());
        assert!(Template::parse("GET a ;").is_err());
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(Template::parse("").is_err());
        assert!(Template::parse("GET 'unclosed").is_err());
    }

    #[test]
    fn ttl_is_added_to_sets_without_expiry() {
        let mut t = Template::parse("SET __key__ __data__").unwrap();
        t.add_ttl_to_set(60);
        assert_eq!(
            enc(&t, b"k", b"v"),
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n60\r\n"
        );
        let mut t = Template::parse("SET __key__ __data__ px 5").unwrap();
        t.add_ttl_to_set(60);
        assert_eq!(
            enc(&t, b"k", b"v").iter().filter(|&&b| b == b'$').count(),
            5
        );
        let mut t = Template::parse("GET __key__").unwrap();
        t.add_ttl_to_set(60);
        assert_eq!(enc(&t, b"k", b"v"), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[test]
    fn ratios_pick_in_proportion() {
        let w = Workload::get_set(&parse_ratio("9:1").unwrap(), None).unwrap();
        let picks: Vec<usize> = (0..10).map(|d| w.pick(d)).collect();
        assert_eq!(picks, vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let w = Workload::get_set(&parse_ratio("0:1").unwrap(), None).unwrap();
        assert!((0..100).all(|d| w.pick(d) == 1));
        assert!(parse_ratio("0:0").is_err());
        assert!(parse_ratio("a:1").is_err());
        assert!(Workload::get_set(&[1, 2, 3], None).is_err());
    }
}
