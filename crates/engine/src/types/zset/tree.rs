//! An order-statistic B+tree of sorted-set elements: the ordered half of the large
//! (`skiplist`) sorted-set encoding.
//!
//! Redis keeps a skiplist whose links carry spans so it can answer ZRANK and "the
//! element at rank r" in O(log n). A B+tree does the same with fewer allocations and
//! better locality: every inner node stores, per child, how many elements the child's
//! subtree holds, so ranks are sums along one root-to-leaf path.
//!
//! The tree does not own the elements. Its leaves hold 4-byte slot numbers of the
//! arena ([`super::large`]) where each element's score and member live, and it reads
//! keys through [`Keys`]; separators in inner nodes are copies of keys, so freeing or
//! reusing a slot can never invalidate them.
//!
//! Separators follow the classic rule: child `i` holds keys `< seps[i]`, and child `i+1`
//! keys `>= seps[i]`. Removals leave separators alone (they stay valid bounds); only
//! splits and merges change them. An underfull child is merged with a neighbour and the
//! result split again if it got too large, which covers both "borrow" and "merge".
//! A leaf that overflows because of an append at its end splits unevenly (full left,
//! one-element right), so elements added in ascending order — timestamps as scores —
//! fill leaves completely.
//!
//! The tree does not know about duplicates: the sorted set guarantees that a member
//! appears once (its hash index is the authority), so `insert` never meets an equal key.

use std::cmp::Ordering;

/// Most entries a leaf holds before it splits.
const MAX_LEAF: usize = 64;
/// Most children an inner node holds before it splits.
const MAX_INNER: usize = 64;
/// A leaf with fewer entries is merged with a neighbour.
const MIN_LEAF: usize = MAX_LEAF / 4;
/// An inner node with fewer children is merged with a neighbour.
const MIN_INNER: usize = MAX_INNER / 4;

/// Where the tree reads an element's key from: slot number → (score, member).
pub trait Keys {
    /// The score and member stored in slot `i`.
    fn key(&self, i: u32) -> (f64, &[u8]);
}

/// A separator: a copy of a key.
type Sep = (f64, Box<[u8]>);

/// Sorted-set order: by score, then by member bytes (memcmp order, a prefix first).
/// Scores are never NaN; `-0.0` and `0.0` compare equal, as they do in Redis.
pub fn cmp_key(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| crate::bytecmp::cmp(m1, m2))
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

fn cmp_slot(keys: &impl Keys, i: u32, score: f64, member: &[u8]) -> Ordering {
    tick(1);
    let (s, m) = keys.key(i);
    cmp_key(s, m, score, member)
}

fn cmp_sep(sep: &Sep, score: f64, member: &[u8]) -> Ordering {
    tick(1);
    cmp_key(sep.0, &sep.1, score, member)
}

fn sep_of(keys: &impl Keys, i: u32) -> Sep {
    let (s, m) = keys.key(i);
    (s, m.into())
}

/// A leaf vector with room for one overflowing entry and no more.
fn leaf_vec() -> Vec<u32> {
    Vec::with_capacity(MAX_LEAF + 1)
}

#[derive(Clone)]
enum Node {
    Leaf(Vec<u32>),
    Inner(Box<Inner>),
}

#[derive(Clone)]
struct Inner {
    /// `children.len() - 1` separators.
    seps: Vec<Sep>,
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

    /// Splits an overfull node in two, returning the separator and the right half. A
    /// leaf that overflowed through an append at its end keeps itself full.
    fn split_if_needed(&mut self, keys: &impl Keys, appended: bool) -> Option<(Sep, Node)> {
        match self {
            Node::Leaf(v) if v.len() > MAX_LEAF => {
                let at = if appended { MAX_LEAF } else { v.len() / 2 };
                let mut right = leaf_vec();
                right.extend_from_slice(&v[at..]);
                v.truncate(at);
                v.shrink_to(MAX_LEAF + 1);
                let sep = sep_of(keys, right[0]);
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
                    Node::Inner(Box::new(Inner {
                        seps,
                        children,
                        counts,
                    })),
                ))
            }
            _ => None,
        }
    }

    /// Appends `right` (which follows `self` in key order) to `self`; `sep` is the
    /// separator that stood between them.
    fn absorb(&mut self, sep: Sep, right: Node) {
        match (self, right) {
            (Node::Leaf(a), Node::Leaf(b)) => a.extend(b),
            (Node::Inner(a), Node::Inner(b)) => {
                let b = *b;
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
            .partition_point(|s| cmp_sep(s, score, member) != Ordering::Greater)
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

    /// Puts a split-off right half after child `i`.
    fn adopt(&mut self, i: usize, sep: Sep, right: Node) {
        let moved = right.len();
        self.counts[i] -= moved;
        self.children.insert(i + 1, right);
        self.counts.insert(i + 1, moved);
        self.seps.insert(i, sep);
    }

    /// After child `i` shrank: merge it with a neighbour if it is underfull.
    fn rebalance(&mut self, i: usize, keys: &impl Keys) {
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
        match self.children[j].split_if_needed(keys, false) {
            Some((sep, node)) => self.adopt(j, sep, node),
            None => {
                if let Node::Leaf(v) = &mut self.children[j] {
                    v.shrink_to(MAX_LEAF + 1);
                }
            }
        }
    }
}

/// Where a removal looks for its element.
enum Target<'a> {
    Key(f64, &'a [u8]),
    Rank(usize),
}

/// The order-statistic tree.
#[derive(Clone)]
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
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts slot `slot`, whose key is not already present.
    pub fn insert(&mut self, slot: u32, keys: &impl Keys) {
        let (score, member) = keys.key(slot);
        debug_assert!(!score.is_nan());
        if let Some((sep, right)) = Self::insert_in(&mut self.root, slot, score, member, keys) {
            let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            let counts = vec![left.len(), right.len()];
            self.root = Node::Inner(Box::new(Inner {
                seps: vec![sep],
                children: vec![left, right],
                counts,
            }));
        }
        self.len += 1;
    }

    fn insert_in(
        node: &mut Node,
        slot: u32,
        score: f64,
        member: &[u8],
        keys: &impl Keys,
    ) -> Option<(Sep, Node)> {
        let mut appended = false;
        match node {
            Node::Leaf(v) => {
                let pos =
                    v.partition_point(|&e| cmp_slot(keys, e, score, member) == Ordering::Less);
                debug_assert!(
                    v.get(pos)
                        .is_none_or(|&e| cmp_slot(keys, e, score, member) != Ordering::Equal),
                    "duplicate insert"
                );
                appended = pos == v.len();
                if v.capacity() == 0 {
                    v.reserve_exact(MAX_LEAF + 1);
                }
                v.insert(pos, slot);
            }
            Node::Inner(n) => {
                let i = n.child_for(score, member);
                n.counts[i] += 1;
                if let Some((sep, right)) =
                    Self::insert_in(&mut n.children[i], slot, score, member, keys)
                {
                    n.adopt(i, sep, right);
                }
            }
        }
        node.split_if_needed(keys, appended)
    }

    /// Removes the element with key `(score, member)`; returns its slot.
    pub fn remove(&mut self, score: f64, member: &[u8], keys: &impl Keys) -> Option<u32> {
        self.remove_target(Target::Key(score, member), keys)
    }

    /// Removes the element at rank `r` (0-based, ascending); returns its slot.
    pub fn remove_at(&mut self, r: usize, keys: &impl Keys) -> Option<u32> {
        if r >= self.len {
            return None;
        }
        self.remove_target(Target::Rank(r), keys)
    }

    fn remove_target(&mut self, t: Target<'_>, keys: &impl Keys) -> Option<u32> {
        let out = Self::remove_in(&mut self.root, &t, keys)?;
        self.len -= 1;
        // Collapse a root left with a single child.
        if let Node::Inner(n) = &mut self.root
            && n.children.len() == 1
            && let Some(child) = n.children.pop()
        {
            self.root = child;
        }
        Some(out)
    }

    fn remove_in(node: &mut Node, t: &Target<'_>, keys: &impl Keys) -> Option<u32> {
        match node {
            Node::Leaf(v) => {
                let pos = match *t {
                    Target::Key(score, member) => v
                        .binary_search_by(|&e| cmp_slot(keys, e, score, member))
                        .ok()?,
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
                    Some(rel) => Self::remove_in(&mut n.children[i], &Target::Rank(rel), keys),
                    None => Self::remove_in(&mut n.children[i], t, keys),
                }?;
                n.counts[i] -= 1;
                n.rebalance(i, keys);
                Some(out)
            }
        }
    }

    /// 0-based ascending rank of the element with key `(score, member)`, if present.
    pub fn rank(&self, score: f64, member: &[u8], keys: &impl Keys) -> Option<usize> {
        let mut node = &self.root;
        let mut base = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    return v
                        .binary_search_by(|&e| cmp_slot(keys, e, score, member))
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

    /// The slot of the element at rank `r`.
    pub fn get(&self, r: usize) -> Option<u32> {
        if r >= self.len {
            return None;
        }
        let mut node = &self.root;
        let mut r = r;
        loop {
            match node {
                Node::Leaf(v) => return v.get(r).copied(),
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
    pub fn partition_point(
        &self,
        keys: &impl Keys,
        mut pred: impl FnMut(f64, &[u8]) -> bool,
    ) -> usize {
        let mut node = &self.root;
        let mut base = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    return base
                        + v.partition_point(|&e| {
                            tick(1);
                            let (s, m) = keys.key(e);
                            pred(s, m)
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

    /// Visits slots from rank `start`, ascending (`rev == false`) or descending, until
    /// `f` returns false or the elements run out.
    pub fn walk(&self, start: usize, rev: bool, mut f: impl FnMut(u32) -> bool) {
        if start >= self.len {
            return;
        }
        if rev {
            Self::walk_rev(&self.root, start, &mut f);
        } else {
            Self::walk_fwd(&self.root, start, &mut f);
        }
    }

    fn walk_fwd(node: &Node, skip: usize, f: &mut impl FnMut(u32) -> bool) -> bool {
        match node {
            Node::Leaf(v) => v.iter().skip(skip).all(|&e| f(e)),
            Node::Inner(n) => {
                let (first, mut rel) = n.child_at(skip);
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
    fn walk_rev(node: &Node, at: usize, f: &mut impl FnMut(u32) -> bool) -> bool {
        match node {
            Node::Leaf(v) => v.iter().take(at.saturating_add(1)).rev().all(|&e| f(e)),
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

    /// Approximate heap bytes held by the tree's nodes, in O(1) (memory accounting may
    /// ask after every write): leaves of 65 four-byte slots filled to about three
    /// quarters, plus about one inner-node entry (separator, child, count) per leaf.
    pub fn heap_size(&self) -> usize {
        let leaves = self.len / (MAX_LEAF * 3 / 4) + 1;
        leaves * ((MAX_LEAF + 1) * 4 + std::mem::size_of::<Sep>() + 16 + 40)
    }

    /// Number of leaves (tests).
    #[cfg(test)]
    pub fn leaf_count(&self) -> usize {
        fn count(n: &Node) -> usize {
            match n {
                Node::Leaf(_) => 1,
                Node::Inner(i) => i.children.iter().map(count).sum(),
            }
        }
        count(&self.root)
    }

    /// Checks the structural invariants (tests).
    #[cfg(test)]
    pub fn check(&self, keys: &impl Keys) {
        fn check_node(
            n: &Node,
            keys: &impl Keys,
            lo: Option<&Sep>,
            hi: Option<&Sep>,
            root: bool,
        ) -> usize {
            match n {
                Node::Leaf(v) => {
                    for w in v.windows(2) {
                        let (s, m) = keys.key(w[1]);
                        assert_eq!(cmp_slot(keys, w[0], s, m), Ordering::Less);
                    }
                    for &e in v {
                        let (s, m) = keys.key(e);
                        if let Some(lo) = lo {
                            assert_ne!(cmp_sep(lo, s, m), Ordering::Greater);
                        }
                        if let Some(hi) = hi {
                            assert_eq!(cmp_sep(hi, s, m), Ordering::Greater);
                        }
                    }
                    assert!(v.len() <= MAX_LEAF);
                    assert!(
                        v.capacity() <= MAX_LEAF + 1,
                        "leaf capacity {}",
                        v.capacity()
                    );
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
                        let n = check_node(c, keys, clo, chi, false);
                        assert_eq!(n, i.counts[k]);
                        total += n;
                    }
                    total
                }
            }
        }
        assert_eq!(check_node(&self.root, keys, None, None, true), self.len);
        if let Node::Inner(i) = &self.root {
            assert!(i.children.len() >= 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A test arena: slot i holds `keys[i]`.
    struct Arena(Vec<(f64, Vec<u8>)>);

    impl Keys for Arena {
        fn key(&self, i: u32) -> (f64, &[u8]) {
            let (s, m) = &self.0[i as usize];
            (*s, m)
        }
    }

    /// Model key: score bits made order-preserving, then the member.
    fn model_key(score: f64, m: &[u8]) -> (i64, Vec<u8>) {
        let b = score.to_bits() as i64;
        let ord = if b < 0 { b ^ i64::MAX } else { b };
        (ord, m.to_vec())
    }

    fn member(i: u32) -> Vec<u8> {
        format!("m{i:05}").into_bytes()
    }

    #[test]
    fn grows_and_shrinks_with_ranks() {
        let mut a = Arena(Vec::new());
        let mut t = Tree::new();
        for i in 0..5000u32 {
            // Scores interleave so inserts land all over the tree.
            let s = f64::from((i * 7919) % 5000);
            a.0.push((s, member(i)));
            t.insert(i, &a);
        }
        t.check(&a);
        assert_eq!(t.len(), 5000);
        for r in [0usize, 1, 63, 64, 65, 2500, 4999] {
            let slot = t.get(r).expect("in range");
            let (s, m) = a.key(slot);
            assert_eq!(t.rank(s, m, &a), Some(r));
        }
        assert_eq!(t.get(5000), None);
        let mut prev: Option<u32> = None;
        let mut n = 0;
        t.walk(0, false, |e| {
            if let Some(p) = prev {
                let (s, m) = a.key(e);
                assert_eq!(cmp_slot(&a, p, s, m), Ordering::Less);
            }
            prev = Some(e);
            n += 1;
            true
        });
        assert_eq!(n, 5000);
        for i in 0..5000u32 {
            let (s, m) = a.key(i);
            assert_eq!(t.remove(s, m, &a), Some(i), "remove {i}");
            if i % 500 == 0 {
                t.check(&a);
            }
        }
        assert!(t.is_empty());
        t.check(&a);
        assert_eq!(t.remove(1.0, b"x", &a), None);
    }

    #[test]
    fn ascending_inserts_fill_leaves() {
        let mut a = Arena(Vec::new());
        let mut t = Tree::new();
        for i in 0..64 * 100u32 {
            a.0.push((f64::from(i), member(i)));
            t.insert(i, &a);
        }
        t.check(&a);
        // 100 full leaves of 64 slots: half-splits would have left about 200.
        assert_eq!(t.leaf_count(), 100);
    }

    #[test]
    fn walk_reverse_and_bounded() {
        let mut a = Arena(Vec::new());
        let mut t = Tree::new();
        for i in 0..1000u32 {
            a.0.push((f64::from(i), member(i)));
            t.insert(i, &a);
        }
        let score = |e: u32| a.key(e).0;
        let mut got = Vec::new();
        t.walk(999, true, |e| {
            got.push(score(e));
            got.len() < 5
        });
        assert_eq!(got, vec![999.0, 998.0, 997.0, 996.0, 995.0]);
        got.clear();
        t.walk(130, true, |e| {
            got.push(score(e));
            true
        });
        assert_eq!(got.len(), 131);
        assert_eq!(got[130], 0.0);
        got.clear();
        t.walk(997, false, |e| {
            got.push(score(e));
            true
        });
        assert_eq!(got, vec![997.0, 998.0, 999.0]);
        assert_eq!(t.partition_point(&a, |s, _| s < 500.0), 500);
        assert_eq!(t.partition_point(&a, |s, _| s <= 500.0), 501);
        assert_eq!(t.partition_point(&a, |_, _| false), 0);
        assert_eq!(t.partition_point(&a, |_, _| true), 1000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        #[test]
        fn behaves_like_a_sorted_set(ops in proptest::collection::vec((0u8..4, 0u16..400, -20i8..20), 1..1500)) {
            // Slots are never reused here, so a removed key stays readable (as a freed
            // arena slot would not be: the tree must not look at removed slots).
            let mut a = Arena(Vec::new());
            let mut t = Tree::new();
            let mut model: BTreeSet<(i64, Vec<u8>)> = BTreeSet::new();
            let mut live = std::collections::HashMap::new();
            for (op, m, s) in ops {
                let mb = format!("k{m}").into_bytes();
                let score = f64::from(s) / 2.0;
                match op {
                    0 | 1 => {
                        if let std::collections::hash_map::Entry::Vacant(v) = live.entry(mb.clone()) {
                            let slot = a.0.len() as u32;
                            a.0.push((score, mb.clone()));
                            v.insert(slot);
                            t.insert(slot, &a);
                            model.insert(model_key(score, &mb));
                        }
                    }
                    2 => {
                        if let Some(slot) = live.remove(&mb) {
                            let (old, _) = a.key(slot);
                            proptest::prop_assert_eq!(t.remove(old, &mb, &a), Some(slot));
                            model.remove(&model_key(old, &mb));
                        } else {
                            proptest::prop_assert_eq!(t.remove(score, &mb, &a), None);
                        }
                    }
                    _ => {
                        if !model.is_empty() {
                            let r = usize::from(m) % model.len();
                            let slot = t.remove_at(r, &a).expect("rank in range");
                            let (s, got) = a.key(slot);
                            let want = model.iter().nth(r).cloned().expect("model rank");
                            proptest::prop_assert_eq!(model_key(s, got), want.clone());
                            model.remove(&want);
                            live.remove(got);
                        }
                    }
                }
                proptest::prop_assert_eq!(t.len(), model.len());
            }
            t.check(&a);
            for (r, k) in model.iter().enumerate() {
                let slot = t.get(r).expect("rank");
                let (s, m) = a.key(slot);
                proptest::prop_assert_eq!(&model_key(s, m), k);
                proptest::prop_assert_eq!(t.rank(s, m, &a), Some(r));
            }
        }
    }
}
