//! Named rate-limit policies (`RL.POLICY`): a spec, a shadow flag and per-key-pattern
//! overrides, so applications write `RL.CHECK key POLICY name` and operators change the
//! limits in one place.
//!
//! A policy is parsed from, and written back as, the arguments of `RL.POLICY SET`
//! ([`Policy::parse`], [`Policy::to_args`]): the same words are shown by `RL.POLICY GET`,
//! saved in the RDB aux field and replayed from the AOF, so every path validates through
//! one parser. Nothing here reads a clock or the keyspace.

use crate::glob::glob_match;
use crate::rl::Spec;
use std::collections::BTreeMap;

/// Most `OVERRIDE` clauses one policy may hold (each is checked, in order, on every
/// `RL.CHECK ... POLICY`).
pub const MAX_OVERRIDES: usize = 64;
/// Longest policy name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest override pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// One named policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The spec used when no override matches.
    pub spec: Spec,
    /// Shadow mode: checks count and report, but never refuse.
    pub shadow: bool,
    /// (glob pattern, spec): the first pattern matching the key wins.
    pub overrides: Vec<(Vec<u8>, Spec)>,
}

/// The error text of a policy that cannot be parsed (without `ERR `).
pub type PolicyError = String;

fn is(a: &[u8], word: &str) -> bool {
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses a spec at `args[i..]`: either `ALG a b ...` as separate arguments or one
/// argument holding them separated by spaces (`"GCRA 20 100 60000"`). Returns the spec
/// and the index after it.
pub fn parse_spec_at(args: &[&[u8]], i: usize) -> Result<(Spec, usize), PolicyError> {
    let first = *args.get(i).ok_or("syntax error")?;
    if first.contains(&b' ') {
        let words: Vec<&[u8]> = first
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let (alg, rest) = words.split_first().ok_or("syntax error")?;
        return Ok((Spec::parse(alg, rest)?, i + 1));
    }
    let n = Spec::arg_count(first).ok_or_else(|| {
        format!(
            "unknown rate limit algorithm '{}' (GCRA, TOKEN, FIXED, SLIDING, LOG)",
            String::from_utf8_lossy(first)
        )
    })?;
    let rest = args.get(i + 1..i + 1 + n).ok_or_else(|| {
        format!(
            "{} takes {n} arguments",
            String::from_utf8_lossy(first).to_uppercase()
        )
    })?;
    Ok((Spec::parse(first, rest)?, i + 1 + n))
}

impl Policy {
    /// Parses `spec [SHADOW] [OVERRIDE pattern spec ...]` (what follows the name in
    /// `RL.POLICY SET`).
    pub fn parse(args: &[&[u8]]) -> Result<Policy, PolicyError> {
        let (spec, mut i) = parse_spec_at(args, 0)?;
        let mut policy = Policy {
            spec,
            shadow: false,
            overrides: Vec::new(),
        };
        while i < args.len() {
            if is(args[i], "shadow") {
                policy.shadow = true;
                i += 1;
            } else if is(args[i], "override") {
                let pattern = *args.get(i + 1).ok_or("syntax error")?;
                if pattern.len() > MAX_PATTERN_LEN {
                    return Err(format!(
                        "override patterns must be at most {MAX_PATTERN_LEN} bytes"
                    ));
                }
                if policy.overrides.len() == MAX_OVERRIDES {
                    return Err(format!("a policy has at most {MAX_OVERRIDES} overrides"));
                }
                let (spec, next) = parse_spec_at(args, i + 2)?;
                policy.overrides.push((pattern.to_vec(), spec));
                i = next;
            } else {
                return Err("syntax error".into());
            }
        }
        Ok(policy)
    }

    /// The spec for `key`: the first override whose pattern matches it (the glob of
    /// `KEYS`, case-sensitive), else the policy's own.
    pub fn spec_for(&self, key: &[u8]) -> Spec {
        self.overrides
            .iter()
            .find(|(p, _)| glob_match(p, key, false))
            .map_or(self.spec, |(_, s)| *s)
    }

    /// The canonical `RL.POLICY SET` arguments after the name: each spec as separate
    /// words, `SHADOW` right after the spec.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        let mut out = spec_words(&self.spec);
        if self.shadow {
            out.push(b"SHADOW".to_vec());
        }
        for (pattern, spec) in &self.overrides {
            out.push(b"OVERRIDE".to_vec());
            out.push(pattern.clone());
            out.extend(spec_words(spec));
        }
        out
    }
}

/// A spec as the words `RL.CHECK` takes: `GCRA 20 100 60000`.
pub fn spec_words(spec: &Spec) -> Vec<Vec<u8>> {
    let nums: Vec<i64> = match *spec {
        Spec::Gcra {
            burst,
            rate,
            period_ms,
        } => vec![burst, rate, period_ms],
        Spec::Token { capacity, refill } => vec![capacity, refill],
        Spec::Fixed { limit, window_ms }
        | Spec::Sliding { limit, window_ms }
        | Spec::Log { limit, window_ms } => vec![limit, window_ms],
        Spec::Lease { max } => vec![max],
    };
    std::iter::once(spec.name().to_uppercase().into_bytes())
        .chain(nums.into_iter().map(|n| n.to_string().into_bytes()))
        .collect()
}

/// All policies by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Policies {
    by_name: BTreeMap<Vec<u8>, Policy>,
}

impl Policies {
    /// Adds or replaces `name`. Refuses a new name beyond `max_policies` (replacing one
    /// is always allowed) and names longer than [`MAX_NAME_LEN`].
    pub fn set(
        &mut self,
        name: &[u8],
        policy: Policy,
        max_policies: usize,
    ) -> Result<(), PolicyError> {
        if name.len() > MAX_NAME_LEN {
            return Err(format!("policy names must be at most {MAX_NAME_LEN} bytes"));
        }
        if !self.by_name.contains_key(name) && self.by_name.len() >= max_policies {
            return Err(format!(
                "too many policies (rl-max-policies is {max_policies})"
            ));
        }
        self.by_name.insert(name.to_vec(), policy);
        Ok(())
    }

    /// The policy `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Policy> {
        self.by_name.get(name)
    }

    /// Removes `name`; true if it existed.
    pub fn del(&mut self, name: &[u8]) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// Every policy, by name in byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Policy)> {
        self.by_name.iter()
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Policy, PolicyError> {
        let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        Policy::parse(&words)
    }

    #[test]
    fn parse_overrides_and_round_trip() {
        let p =
            parse("GCRA 20 100 60000 SHADOW OVERRIDE vip:* TOKEN 50 10 OVERRIDE * FIXED 1 1000")
                .unwrap();
        assert!(p.shadow);
        assert_eq!(p.spec_for(b"vip:1").name(), "token");
        assert_eq!(p.spec_for(b"user:1").name(), "fixed");
        let words = p.to_args();
        let refs: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
        assert_eq!(Policy::parse(&refs), Ok(p));
        // A spec may be one argument.
        let one: Vec<&[u8]> = vec![b"GCRA 20 100  60000", b"OVERRIDE", b"a*", b"LOG 3 1000"];
        let q = Policy::parse(&one).unwrap();
        assert_eq!(q.spec_for(b"b"), parse("GCRA 20 100 60000").unwrap().spec);
        assert_eq!(q.spec_for(b"ab").name(), "log");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse("GCRA 20 100").unwrap_err(), "GCRA takes 3 arguments");
        assert_eq!(parse("FIXED 1 1000 BOGUS").unwrap_err(), "syntax error");
        assert_eq!(parse("FIXED 1 1000 OVERRIDE").unwrap_err(), "syntax error");
        assert_eq!(
            parse("FIXED 1 1000 OVERRIDE x").unwrap_err(),
            "syntax error"
        );
        assert!(
            parse("LEASE 1")
                .unwrap_err()
                .starts_with("unknown rate limit algorithm")
        );
        assert_eq!(
            parse("FIXED 0 1000").unwrap_err(),
            "limit must be between 1 and 1000000"
        );
        let many = format!(
            "FIXED 1 1000{}",
            " OVERRIDE x FIXED 1 1".repeat(MAX_OVERRIDES)
        );
        assert!(parse(&many).is_ok());
        let more = format!("{many} OVERRIDE x FIXED 1 1");
        assert_eq!(
            parse(&more).unwrap_err(),
            "a policy has at most 64 overrides"
        );
        let long = format!(
            "FIXED 1 1 OVERRIDE {} FIXED 1 1",
            "p".repeat(MAX_PATTERN_LEN + 1)
        );
        assert!(parse(&long).is_err());
    }

    #[test]
    fn store_limits() {
        let p = parse("FIXED 1 1000").unwrap();
        let mut s = Policies::default();
        s.set(b"a", p.clone(), 2).unwrap();
        s.set(b"b", p.clone(), 2).unwrap();
        assert_eq!(
            s.set(b"c", p.clone(), 2).unwrap_err(),
            "too many policies (rl-max-policies is 2)"
        );
        // Replacing stays allowed at the limit.
        s.set(b"b", p.clone(), 2).unwrap();
        assert!(s.set(&[b'n'; MAX_NAME_LEN], p.clone(), 3).is_ok());
        assert!(s.set(&[b'n'; MAX_NAME_LEN + 1], p.clone(), 4).is_err());
        assert!(s.del(b"a") && !s.del(b"a"));
        assert_eq!(s.len(), 2);
    }
}
