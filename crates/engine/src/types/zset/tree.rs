//! An order-statistic B+tree of `(score, member)` pairs: the ordered half of the large
//! (`skiplist`) sorted-set encoding.
//!
//! Redis keeps a skiplist whose links carry spans so it can answer ZRANK and "the
//! element at rank r" in O(log n). A B+tree does the same with fewer allocations and
//! better locality: every inner node stores, per child, how many elements the child's
//! subtree holds, so ranks are sums along one root-to-leaf path. Leaves hold up to
//! [`MAX_LEAF`] entries in sorted vectors.
//!
//! Separators follow the classic rule: child `i` holds keys `< seps[i]`, and child `i+1`
//! keys `>= seps[i]`. Removals leave separators alone (they stay valid bounds); only
//! splits and merges change them. An underfull child is merged with a neighbour and the
//! result split again if it got too large, which covers both "borrow" and "merge".
//!
//! The tree does not know about duplicates: the sorted set guarantees that a member
//! appears once (its dictionary is the authority), so `insert` never meets an equal key.

use bytes::Bytes;
use std::cmp::Ordering;

/// Most entries a leaf holds before it splits.
const MAX_LEAF: usize = 64;
/// Most children an inner node holds before it splits.
const MAX_INNER: usize = 64;
/// A leaf with fewer entries is merged with a neighbour.
const MIN_LEAF: usize = MAX_LEAF / 4;
/// An inner node with fewer children is merged with a neighbour.
const MIN_INNER: usize = MAX_INNER / 4;

/// One element: its score and member.
pub type Entry = (f64, Bytes);

/// Sorted-set order: by score, then by member bytes (memcmp order, a prefix first).
/// Scores are never NaN; `-0.0` and `0.0` compare equal, as they do in Redis.
pub fn cmp_key(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

#[cfg(test)]
thread_local! {
    /// Units of work done by tree operations on this thread (key comparisons, predicate
    /// calls, child counts summed): tests check operations stay logarithmic by counting
    /// work instead of timing it.
    pub static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` units of work (tests only; compiles to nothing otherwise).
#[inline]
fn tick(n: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

fn sum_counts(counts: &[usize]) -> usize {
    tick(counts.len());
    counts.iter().sum()
}

fn cmp_entry(e: &Entry, score: f64, member: &[u8]) -> Ordering {
    tick(1);
    cmp_key(e.0, &e.1, score, member)
}

enum Node {
    Leaf(Vec<Entry>),
    Inner(Inner),
}

struct Inner {
    /// `children.len() - 1` separators.
    seps: Vec<Entry>,
    children: Vec<Node>,
    /// Elements in each child's subtree.
    counts: Vec<usize>,
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(n) => n.counts.iter().sum(),
        }
    }

    fn underfull(&self) -> bool {
        match self {
            Node::Leaf(v) => v.len() < MIN_LEAF,
            Node::Inner(n) => n.children.len() < MIN_INNER,
        }
    }

    /// Splits an overfull node in two, returning the separator and the right half.
    fn split_if_needed(&mut self) -> Option<(Entry, Node)> {
        match self {
            Node::Leaf(v) if v.len() > MAX_LEAF => {
                let right = v.split_off(v.len() / 2);
                let sep = right[0].clone();
                Some((sep, Node::Leaf(right)))
            }
            Node::Inner(n) if n.children.len() > MAX_INNER => {
                let mid = n.children.len() / 2;
                let children = n.children.split_off(mid);
                let counts = n.counts.split_off(mid);
                let seps = n.seps.split_off(mid);
                // The separator between the halves moves up.
                let up = n.seps.pop()?;
                Some((
                    up,
                    Node::Inner(Inner {
                        seps,
                        children,
                        counts,
                    }),
                ))
            }
            _ => None,
        }
    }

    /// Appends `right` (which follows `self` in key order) to `self`; `sep` is the
    /// separator that stood between them.
    fn absorb(&mut self, sep: Entry, right: Node) {
        match (self, right) {
            (Node::Leaf(a), Node::Leaf(b)) => a.extend(b),
            (Node::Inner(a), Node::Inner(b)) => {
                a.seps.push(sep);
                a.seps.extend(b.seps);
                a.children.extend(b.children);
                a.counts.extend(b.counts);
            }
            // Siblings always have the same height.
            _ => unreachable!("B+tree siblings of different heights"),
        }
    }
}

impl Inner {
    /// Index of the child whose key range holds `(score, member)`.
    fn child_for(&self, score: f64, member: &[u8]) -> usize {
        self.seps
            .partition_point(|s| cmp_entry(s, score, member) != Ordering::Greater)
    }

    /// Index of the child holding rank `r`, and `r` relative to that child.
    fn child_at(&self, mut r: usize) -> (usize, usize) {
        for (i, &c) in self.counts.iter().enumerate() {
            tick(1);
            if r < c {
                return (i, r);
            }
            r -= c;
        }
        // Callers check the rank against the length first.
        (self.counts.len() - 1, r)
    }

    /// After child `i` shrank: merge it with a neighbour if it is underfull.
    fn rebalance(&mut self, i: usize) {
        if self.children.len() < 2 || !self.children[i].underfull() {
            return;
        }
        let j = if i + 1 < self.children.len() {
            i
        } else {
            i - 1
        };
        let right = self.children.remove(j + 1);
        let right_count = self.counts.remove(j + 1);
        let sep = self.seps.remove(j);
        self.children[j].absorb(sep, right);
        self.counts[j] += right_count;
        if let Some((sep, node)) = self.children[j].split_if_needed() {
            let moved = node.len();
            self.counts[j] -= moved;
            self.children.insert(j + 1, node);
            self.counts.insert(j + 1, moved);
            self.seps.insert(j, sep);
        }
    }
}

/// Where a removal looks for its element.
enum Target<'a> {
    Key(f64, &'a [u8]),
    Rank(usize),
}

/// The order-statistic tree.
pub struct Tree {
    root: Node,
    len: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree {
            root: Node::Leaf(Vec::new()),
            len: 0,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts an element that is not already present.
    pub fn insert(&mut self, score: f64, member: Bytes) {
        debug_assert!(!score.is_nan());
        if let Some((sep, right)) = Self::insert_in(&mut self.root, score, member) {
            let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            let counts = vec![left.len(), right.len()];
            self.root = Node::Inner(Inner {
                seps: vec![sep],
                children: vec![left, right],
                counts,
            });
        }
        self.len += 1;
    }

    fn insert_in(node: &mut Node, score: f64, member: Bytes) -> Option<(Entry, Node)> {
        match node {
            Node::Leaf(v) => {
                let pos = v.partition_point(|e| cmp_entry(e, score, &member) == Ordering::Less);
                debug_assert!(
                    v.get(pos)
                        .is_none_or(|e| cmp_entry(e, score, &member) != Ordering::Equal),
                    "duplicate insert"
                );
                v.insert(pos, (score, member));
            }
            Node::Inner(n) => {
                let i = n.child_for(score, &member);
                n.counts[i] += 1;
                if let Some((sep, right)) = Self::insert_in(&mut n.children[i], score, member) {
                    let moved = right.len();
                    n.counts[i] -= moved;
                    n.children.insert(i + 1, right);
                    n.counts.insert(i + 1, moved);
                    n.seps.insert(i, sep);
                }
            }
        }
        node.split_if_needed()
    }

    /// Removes `(score, member)`; returns false if it was not there.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        self.remove_target(Target::Key(score, member)).is_some()
    }

    /// Removes and returns the element at rank `r` (0-based, ascending).
    pub fn remove_at(&mut self, r: usize) -> Option<Entry> {
        if r >= self.len {
            return None;
        }
        self.remove_target(Target::Rank(r))
    }

    fn remove_target(&mut self, t: Target<'_>) -> Option<Entry> {
        let out = Self::remove_in(&mut self.root, &t)?;
        self.len -= 1;
        // Collapse a root left with a single child.
        if let Node::Inner(n) = &mut self.root
            && n.children.len() == 1
        {
            let child = n.children.pop();
            if let Some(child) = child {
                self.root = child;
            }
        }
        Some(out)
    }

    fn remove_in(node: &mut Node, t: &Target<'_>) -> Option<Entry> {
        match node {
            Node::Leaf(v) => {
                let pos = match *t {
                    Target::Key(score, member) => {
                        v.binary_search_by(|e| cmp_entry(e, score, member)).ok()?
                    }
                    Target::Rank(r) => r,
                };
                (pos < v.len()).then(|| v.remove(pos))
            }
            Node::Inner(n) => {
                let (i, sub) = match *t {
                    Target::Key(score, member) => (n.child_for(score, member), None),
                    Target::Rank(r) => {
                        let (i, rel) = n.child_at(r);
                        (i, Some(rel))
                    }
                };
                let out = match sub {
                    Some(rel) => Self::remove_in(&mut n.children[i], &Target::Rank(rel)),
                    None => Self::remove_in(&mut n.children[i], t),
                }?;
                n.counts[i] -= 1;
                n.rebalance(i);
                Some(out)
            }
        }
    }

    /// 0-based ascending rank of `(score, member)`, if present.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut node = &self.root;
        let mut base = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    return v
                        .binary_search_by(|e| cmp_entry(e, score, member))
                        .ok()
                        .map(|p| base + p);
                }
                Node::Inner(n) => {
                    let i = n.child_for(score, member);
                    base += sum_counts(&n.counts[..i]);
                    node = &n.children[i];
                }
            }
        }
    }

    /// The element at rank `r`.
    pub fn get(&self, r: usize) -> Option<(f64, &Bytes)> {
        if r >= self.len {
            return None;
        }
        let mut node = &self.root;
        let mut r = r;
        loop {
            match node {
                Node::Leaf(v) => return v.get(r).map(|e| (e.0, &e.1)),
                Node::Inner(n) => {
                    let (i, rel) = n.child_at(r);
                    r = rel;
                    node = &n.children[i];
                }
            }
        }
    }

    /// Number of leading elements for which `pred` holds, assuming it holds for a prefix
    /// of the order (a lower bound by score or by member). With a predicate that is not
    /// monotone the answer is some rank in `0..=len`, never a panic.
    pub fn partition_point(&self, mut pred: impl FnMut(f64, &[u8]) -> bool) -> usize {
        let mut node = &self.root;
        let mut base = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    return base
                        + v.partition_point(|e| {
                            tick(1);
                            pred(e.0, &e.1)
                        });
                }
                Node::Inner(n) => {
                    // Every key of the children before the first separator failing the
                    // predicate is smaller than a key that passes it.
                    let i = n.seps.partition_point(|s| {
                        tick(1);
                        pred(s.0, &s.1)
                    });
                    base += sum_counts(&n.counts[..i]);
                    node = &n.children[i];
                }
            }
        }
    }

    /// Visits elements from rank `start`, ascending (`rev == false`) or descending, until
    /// `f` returns false or the elements run out.
    pub fn walk(&self, start: usize, rev: bool, mut f: impl FnMut(f64, &Bytes) -> bool) {
        if start >= self.len {
            return;
        }
        if rev {
            Self::walk_rev(&self.root, start, &mut f);
        } else {
            Self::walk_fwd(&self.root, start, &mut f);
        }
    }

    fn walk_fwd(node: &Node, skip: usize, f: &mut impl FnMut(f64, &Bytes) -> bool) -> bool {
        match node {
            Node::Leaf(v) => {
                for e in v.iter().skip(skip) {
                    if !f(e.0, &e.1) {
                        return false;
                    }
                }
                true
            }
            Node::Inner(n) => {
                let (first, rel) = n.child_at(skip);
                let mut rel = rel;
                for child in &n.children[first..] {
                    if !Self::walk_fwd(child, rel, f) {
                        return false;
                    }
                    rel = 0;
                }
                true
            }
        }
    }

    /// Visits ranks `at, at-1, ..., 0` of `node`.
    fn walk_rev(node: &Node, at: usize, f: &mut impl FnMut(f64, &Bytes) -> bool) -> bool {
        match node {
            Node::Leaf(v) => {
                for e in v.iter().take(at.saturating_add(1)).rev() {
                    if !f(e.0, &e.1) {
                        return false;
                    }
                }
                true
            }
            Node::Inner(n) => {
                let (last, rel) = n.child_at(at);
                if !Self::walk_rev(&n.children[last], rel, f) {
                    return false;
                }
                for i in (0..last).rev() {
                    if n.counts[i] > 0 && !Self::walk_rev(&n.children[i], n.counts[i] - 1, f) {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Approximate heap bytes held by the tree's nodes (members' bytes not included:
    /// they are shared with the dictionary).
    pub fn heap_size(&self) -> usize {
        fn node_size(n: &Node) -> usize {
            match n {
                Node::Leaf(v) => v.capacity() * std::mem::size_of::<Entry>(),
                Node::Inner(i) => {
                    i.seps.capacity() * std::mem::size_of::<Entry>()
                        + i.children.capacity() * std::mem::size_of::<Node>()
                        + i.counts.capacity() * std::mem::size_of::<usize>()
                        + i.children.iter().map(node_size).sum::<usize>()
                }
            }
        }
        node_size(&self.root)
    }

    /// Checks the structural invariants (tests and debug assertions).
    #[cfg(test)]
    pub fn check(&self) {
        fn check_node(n: &Node, lo: Option<&Entry>, hi: Option<&Entry>, root: bool) -> usize {
            match n {
                Node::Leaf(v) => {
                    for w in v.windows(2) {
                        assert_eq!(cmp_entry(&w[0], w[1].0, &w[1].1), Ordering::Less);
                    }
                    for e in v {
                        if let Some(lo) = lo {
                            assert_ne!(cmp_entry(e, lo.0, &lo.1), Ordering::Less);
                        }
                        if let Some(hi) = hi {
                            assert_eq!(cmp_entry(e, hi.0, &hi.1), Ordering::Less);
                        }
                    }
                    assert!(v.len() <= MAX_LEAF);
                    v.len()
                }
                Node::Inner(i) => {
                    assert_eq!(i.seps.len() + 1, i.children.len());
                    assert_eq!(i.counts.len(), i.children.len());
                    assert!(i.children.len() <= MAX_INNER);
                    assert!(root || i.children.len() >= 2);
                    let mut total = 0;
                    for (k, c) in i.children.iter().enumerate() {
                        let clo = if k == 0 { lo } else { Some(&i.seps[k - 1]) };
                        let chi = if k == i.seps.len() {
                            hi
                        } else {
                            Some(&i.seps[k])
                        };
                        let n = check_node(c, clo, chi, false);
                        assert_eq!(n, i.counts[k]);
                        total += n;
                    }
                    total
                }
            }
        }
        assert_eq!(check_node(&self.root, None, None, true), self.len);
        if let Node::Inner(i) = &self.root {
            assert!(i.children.len() >= 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Model key: score bits made order-preserving, then the member.
    fn model_key(score: f64, m: &[u8]) -> (i64, Vec<u8>) {
        let b = score.to_bits() as i64;
        let ord = if b < 0 { b ^ i64::MAX } else { b };
        (ord, m.to_vec())
    }

    fn member(i: u32) -> Bytes {
        Bytes::from(format!("m{i:05}"))
    }

    #[test]
    fn grows_and_shrinks_with_ranks() {
        let mut t = Tree::new();
        for i in 0..5000u32 {
            // Scores interleave so inserts land all over the tree.
            let s = f64::from((i * 7919) % 5000);
            t.insert(s, member(i));
        }
        t.check();
        assert_eq!(t.len(), 5000);
        for r in [0usize, 1, 63, 64, 65, 2500, 4999] {
            let (s, m) = t.get(r).expect("in range");
            assert_eq!(t.rank(s, m), Some(r));
        }
        assert_eq!(t.get(5000), None);
        let mut prev: Option<(f64, Bytes)> = None;
        let mut n = 0;
        t.walk(0, false, |s, m| {
            if let Some((ps, pm)) = &prev {
                assert_eq!(cmp_key(*ps, pm, s, m), Ordering::Less);
            }
            prev = Some((s, m.clone()));
            n += 1;
            true
        });
        assert_eq!(n, 5000);
        for i in 0..5000u32 {
            let s = f64::from((i * 7919) % 5000);
            assert!(t.remove(s, &member(i)), "remove {i}");
            if i % 500 == 0 {
                t.check();
            }
        }
        assert!(t.is_empty());
        t.check();
        assert!(!t.remove(1.0, b"x"));
    }

    #[test]
    fn walk_reverse_and_bounded() {
        let mut t = Tree::new();
        for i in 0..1000u32 {
            t.insert(f64::from(i), member(i));
        }
        let mut got = Vec::new();
        t.walk(999, true, |s, _| {
            got.push(s);
            got.len() < 5
        });
        assert_eq!(got, vec![999.0, 998.0, 997.0, 996.0, 995.0]);
        got.clear();
        t.walk(130, true, |s, _| {
            got.push(s);
            true
        });
        assert_eq!(got.len(), 131);
        assert_eq!(got[130], 0.0);
        got.clear();
        t.walk(997, false, |s, _| {
            got.push(s);
            true
        });
        assert_eq!(got, vec![997.0, 998.0, 999.0]);
        assert_eq!(t.partition_point(|s, _| s < 500.0), 500);
        assert_eq!(t.partition_point(|s, _| s <= 500.0), 501);
        assert_eq!(t.partition_point(|_, _| false), 0);
        assert_eq!(t.partition_point(|_, _| true), 1000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        #[test]
        fn behaves_like_a_sorted_set(ops in proptest::collection::vec((0u8..4, 0u16..400, -20i8..20), 1..1500)) {
            let mut t = Tree::new();
            let mut model: BTreeSet<(i64, Vec<u8>)> = BTreeSet::new();
            let mut scores = std::collections::HashMap::new();
            for (op, m, s) in ops {
                let mb = Bytes::from(format!("k{m}"));
                let score = f64::from(s) / 2.0;
                match op {
                    0 | 1 => {
                        if let std::collections::hash_map::Entry::Vacant(v) = scores.entry(mb.clone()) {
                            v.insert(score);
                            t.insert(score, mb.clone());
                            model.insert(model_key(score, &mb));
                        }
                    }
                    2 => {
                        if let Some(old) = scores.remove(&mb) {
                            proptest::prop_assert!(t.remove(old, &mb));
                            model.remove(&model_key(old, &mb));
                        } else {
                            proptest::prop_assert!(!t.remove(score, &mb));
                        }
                    }
                    _ => {
                        if !model.is_empty() {
                            let r = usize::from(m) % model.len();
                            let (s, got) = t.remove_at(r).expect("rank in range");
                            let want = model.iter().nth(r).cloned().expect("model rank");
                            proptest::prop_assert_eq!(model_key(s, &got), want.clone());
                            model.remove(&want);
                            scores.remove(&got);
                        }
                    }
                }
                proptest::prop_assert_eq!(t.len(), model.len());
            }
            t.check();
            for (r, k) in model.iter().enumerate() {
                let (s, m) = t.get(r).expect("rank");
                proptest::prop_assert_eq!(&model_key(s, m), k);
                proptest::prop_assert_eq!(t.rank(s, m), Some(r));
            }
        }
    }
}
