//! Topic-exchange routing index: a trie of binding patterns, matched against routing keys
//! with RabbitMQ's semantics. It owns only the pattern -> destination multiset; binding
//! identity (queue, key, arguments), idempotence and de-duplication of the routed queues
//! belong to the caller, the exchange in `super`, which calls `bind`/`unbind` as bindings
//! come and go, `remove_destination` when a queue is deleted, and `route` for each publish
//! (under the topology's read lock, so it must stay cheap). It must never scan every binding
//! to route, never panic on any key or pattern a client sends, and never hold on to a
//! routing key.
//!
//! Semantics, as in RabbitMQ 3.x (`rabbit_db_topic_exchange` / the older
//! `rabbit_exchange_type_topic`: `split_topic_key`, `trie_match`, `trie_match_skip_any`),
//! confirmed against RabbitMQ 3.10.8:
//! - keys and patterns are split on every '.', and empty words are words: "a..b" is
//!   [a, "", b], "a." is [a, ""], "." is ["", ""]; but the empty string is zero words, so
//!   pattern "" matches only key "" and key "" is matched by "", "#", "#.#" but not "*";
//! - `*` matches exactly one word (which may be empty), `#` zero or more words; only a
//!   whole word is a wildcard ("a#", "*a" are literals);
//! - a `*` or `#` inside a routing key is an ordinary word (it happens to match the
//!   wildcards like any word does).
//!
//! Unlike RabbitMQ's depth-first walk, which re-visits a node once per path and is
//! exponential in the number of `#` in a pattern, routing here simulates the trie as an
//! NFA: the set of live nodes is advanced word by word and de-duplicated, so a publish
//! costs at most key words x live nodes, whatever patterns clients bind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

/// Index of a node in `TopicTable::nodes`.
type NodeId = usize;

const ROOT: NodeId = 0;
/// Parent of the root, and of nodes on the free list (the marker that they are dead).
const NO_PARENT: NodeId = NodeId::MAX;

/// How a node hangs off its parent; kept so pruning can detach it without searching.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Edge {
    Root,
    Word(Box<str>),
    Star,
    Hash,
}

#[derive(Clone)]
struct Node<D> {
    parent: NodeId,
    edge: Edge,
    words: HashMap<Box<str>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    dests: Vec<D>,
}

impl<D> Node<D> {
    fn new(parent: NodeId, edge: Edge) -> Self {
        Node {
            parent,
            edge,
            words: HashMap::new(),
            star: None,
            hash: None,
            dests: Vec::new(),
        }
    }

    fn is_useless(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// One pattern word, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part<'a> {
    Word(&'a str),
    Star,
    Hash,
}

/// Splits a key or pattern the way RabbitMQ does: "" is no words at all.
fn words(key: &str) -> impl Iterator<Item = &str> {
    let limit = if key.is_empty() { 0 } else { usize::MAX };
    key.split('.').take(limit)
}

/// Pattern words with runs of `#` collapsed: "#.#" matches exactly what "#" matches, and
/// collapsing keeps the trie free of `#` -> `#` chains, which the router relies on (a `#`
/// node's epsilon closure is then just itself). Bind and unbind both go through this, so a
/// binding of "a.#.#" is found again by unbind("a.#.#").
fn parts(pattern: &str) -> impl Iterator<Item = Part<'_>> {
    let mut previous_was_hash = false;
    words(pattern).filter_map(move |w| {
        let part = match w {
            "*" => Part::Star,
            "#" => Part::Hash,
            _ => Part::Word(w),
        };
        let repeat = part == Part::Hash && previous_was_hash;
        previous_was_hash = part == Part::Hash;
        (!repeat).then_some(part)
    })
}

/// Per-thread buffers for `route`, so a publish does not allocate once they have grown.
#[derive(Default)]
struct Scratch {
    current: Vec<NodeId>,
    next: Vec<NodeId>,
    /// `seen[n] == generation` means node n is already in the set being built; bumping the
    /// generation empties the set in O(1).
    seen: Vec<u32>,
    generation: u32,
}

/// Starts a new, empty set over `seen`: bumping the generation forgets every mark at once.
fn fresh_mark(seen: &mut [u32], generation: &mut u32) -> u32 {
    if *generation == u32::MAX {
        seen.iter_mut().for_each(|g| *g = 0);
        *generation = 0;
    }
    *generation += 1;
    *generation
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A multiset of (topic pattern, destination) pairs with trie-based routing.
#[derive(Clone)]
pub struct TopicTable<D> {
    /// Arena of nodes; `nodes[ROOT]` always exists. Dead nodes sit on `free` for reuse.
    nodes: Vec<Node<D>>,
    free: Vec<NodeId>,
    bindings: usize,
}

impl<D> fmt::Debug for TopicTable<D> {
    // Destinations are not required to be Debug; the shape of the table is what helps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTable")
            .field("bindings", &self.bindings)
            .field("live_nodes", &(self.nodes.len() - self.free.len()))
            .finish()
    }
}

impl<D: Clone + PartialEq> Default for TopicTable<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Clone + PartialEq> TopicTable<D> {
    pub fn new() -> Self {
        TopicTable {
            nodes: vec![Node::new(NO_PARENT, Edge::Root)],
            free: Vec::new(),
            bindings: 0,
        }
    }

    /// Adds one binding (pattern -> dest). The table is a multiset: binding the same
    /// (pattern, dest) twice stores it twice (the caller keeps binding identity, which
    /// includes arguments); unbind removes one copy.
    pub fn bind(&mut self, pattern: &str, dest: D) {
        let mut at = ROOT;
        for part in parts(pattern) {
            at = match self.child(at, part) {
                Some(next) => next,
                None => self.add_child(at, part),
            };
        }
        self.nodes[at].dests.push(dest);
        self.bindings += 1;
    }

    /// Removes one copy of (pattern, dest); returns whether one was found. Prunes empty trie nodes.
    pub fn unbind(&mut self, pattern: &str, dest: &D) -> bool {
        let mut at = ROOT;
        for part in parts(pattern) {
            match self.child(at, part) {
                Some(next) => at = next,
                None => return false,
            }
        }
        let dests = &mut self.nodes[at].dests;
        let Some(index) = dests.iter().position(|d| d == dest) else {
            return false;
        };
        // Order among a node's destinations carries no meaning.
        dests.swap_remove(index);
        self.bindings -= 1;
        self.prune(at);
        true
    }

    /// Calls `out` for every destination whose pattern matches `routing_key`. A destination may be
    /// reported more than once (the caller de-duplicates); must not allocate per call beyond a small reusable stack if avoidable.
    pub fn route(&self, routing_key: &str, out: &mut dyn FnMut(&D)) {
        if self.bindings == 0 {
            return;
        }
        // The scratch is busy if `out` routes through another table on this thread, and gone
        // while the thread is being torn down; a one-off buffer is correct in both cases.
        let reused = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.route_with(&mut scratch, routing_key, out);
                true
            }
            Err(_) => false,
        });
        if reused != Ok(true) {
            self.route_with(&mut Scratch::default(), routing_key, out);
        }
    }

    /// Removes every binding to `dest` (its queue was deleted); returns how many were removed.
    pub fn remove_destination(&mut self, dest: &D) -> usize {
        let mut removed = 0;
        let mut emptied = Vec::new();
        for (id, node) in self.nodes.iter_mut().enumerate() {
            let before = node.dests.len();
            node.dests.retain(|d| d != dest);
            if node.dests.len() != before {
                removed += before - node.dests.len();
                emptied.push(id);
            }
        }
        self.bindings -= removed;
        for id in emptied {
            self.prune(id);
        }
        removed
    }

    #[cfg(test)] // tests look; the broker does not need to
    pub fn is_empty(&self) -> bool {
        self.bindings == 0
    }

    fn child(&self, at: NodeId, part: Part<'_>) -> Option<NodeId> {
        let node = &self.nodes[at];
        match part {
            Part::Word(w) => node.words.get(w).copied(),
            Part::Star => node.star,
            Part::Hash => node.hash,
        }
    }

    fn add_child(&mut self, at: NodeId, part: Part<'_>) -> NodeId {
        let edge = match part {
            Part::Word(w) => Edge::Word(w.into()),
            Part::Star => Edge::Star,
            Part::Hash => Edge::Hash,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = Node::new(at, edge.clone());
                id
            }
            None => {
                self.nodes.push(Node::new(at, edge.clone()));
                self.nodes.len() - 1
            }
        };
        let parent = &mut self.nodes[at];
        match edge {
            Edge::Word(w) => {
                parent.words.insert(w, id);
            }
            Edge::Star => parent.star = Some(id),
            Edge::Hash => parent.hash = Some(id),
            Edge::Root => {}
        }
        id
    }

    /// Frees `at` and then its ancestors for as long as they hold nothing, so that the trie
    /// never keeps paths of unbound patterns alive and `route` never walks them.
    fn prune(&mut self, mut at: NodeId) {
        while at != ROOT {
            let node = &self.nodes[at];
            if node.parent == NO_PARENT || !node.is_useless() {
                return;
            }
            let parent = node.parent;
            let edge =
                std::mem::replace(&mut self.nodes[at], Node::new(NO_PARENT, Edge::Root)).edge;
            let up = &mut self.nodes[parent];
            match edge {
                Edge::Word(w) => {
                    up.words.remove(&w);
                }
                Edge::Star => up.star = None,
                Edge::Hash => up.hash = None,
                Edge::Root => {}
            }
            self.free.push(at);
            at = parent;
        }
    }

    /// Adds `id` and the `#` node hanging off it (a `#` may match zero words) to the set.
    fn enter(&self, id: NodeId, set: &mut Vec<NodeId>, seen: &mut [u32], generation: u32) {
        let mut id = id;
        loop {
            let slot = &mut seen[id];
            if *slot == generation {
                return;
            }
            *slot = generation;
            set.push(id);
            match self.nodes[id].hash {
                Some(hash) => id = hash,
                None => return,
            }
        }
    }

    fn route_with(&self, scratch: &mut Scratch, routing_key: &str, out: &mut dyn FnMut(&D)) {
        let Scratch {
            current,
            next,
            seen,
            generation,
        } = scratch;
        if seen.len() < self.nodes.len() {
            seen.resize(self.nodes.len(), 0);
        }
        let mark = fresh_mark(seen, generation);
        current.clear();
        self.enter(ROOT, current, seen, mark);
        for word in words(routing_key) {
            let mark = fresh_mark(seen, generation);
            next.clear();
            for &id in current.iter() {
                let node = &self.nodes[id];
                if let Some(&child) = node.words.get(word) {
                    self.enter(child, next, seen, mark);
                }
                if let Some(child) = node.star {
                    self.enter(child, next, seen, mark);
                }
                // A `#` node stays live: it swallows this word too.
                if matches!(node.edge, Edge::Hash) {
                    self.enter(id, next, seen, mark);
                }
            }
            std::mem::swap(current, next);
            if current.is_empty() {
                return;
            }
        }
        for &id in current.iter() {
            for dest in &self.nodes[id].dests {
                out(dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Patterns matching `key`, by the definition rather than by the trie.
    fn reference_match(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => {
                reference_match(rest, key)
                    || (!key.is_empty() && reference_match(pattern, &key[1..]))
            }
            Some((&"*", rest)) => !key.is_empty() && reference_match(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && reference_match(rest, &key[1..]),
        }
    }

    fn split(s: &str) -> Vec<&str> {
        words(s).collect()
    }

    fn routed(table: &TopicTable<usize>, key: &str) -> BTreeSet<usize> {
        let mut got = BTreeSet::new();
        table.route(key, &mut |d| {
            got.insert(*d);
        });
        got
    }

    fn live_nodes<D>(table: &TopicTable<D>) -> usize {
        table.nodes.len() - table.free.len()
    }

    /// (patterns bound, routing key, patterns expected to match).
    const ROWS: &[(&[&str], &str, &[&str])] = &[
        (&["#"], "", &["#"]),
        (&["#"], "a", &["#"]),
        (&["#"], "a.b.c", &["#"]),
        (&["#"], ".", &["#"]),
        (&["*"], "", &[]),
        (&["*"], "a", &["*"]),
        (&["*"], "a.b", &[]),
        (&["*"], ".", &[]),
        (&[""], "", &[""]),
        (&[""], "a", &[]),
        (&["", "*", "#"], "", &["", "#"]),
        (&["a"], "a", &["a"]),
        (&["a"], "A", &[]),
        (&["a"], "a.", &[]),
        (&["a.*"], "a.b", &["a.*"]),
        (&["a.*"], "a", &[]),
        (&["a.*"], "a.", &["a.*"]),
        (&["a.*"], "a.b.c", &[]),
        (&["a.#"], "a", &["a.#"]),
        (&["a.#"], "a.b.c", &["a.#"]),
        (&["a.#"], "b.a", &[]),
        (&["#.a"], "a", &["#.a"]),
        (&["#.a"], "x.y.a", &["#.a"]),
        (&["#.a"], "a.x", &[]),
        (&["a.#.b"], "a.b", &["a.#.b"]),
        (&["a.#.b"], "a.x.b", &["a.#.b"]),
        (&["a.#.b"], "a.x.y.b", &["a.#.b"]),
        (&["a.#.b"], "a.b.c", &[]),
        (&["a.#.b"], "a..b", &["a.#.b"]),
        (&["#.#"], "", &["#.#"]),
        (&["#.#"], "a.b", &["#.#"]),
        (&["*.#"], "", &[]),
        (&["*.#"], "a", &["*.#"]),
        (&["*.#"], "a.b.c", &["*.#"]),
        (&["#.*"], "", &[]),
        (&["#.*"], "a", &["#.*"]),
        (&["#.*"], "..", &["#.*"]),
        (&["*.*"], "a.", &["*.*"]),
        (&["*.*"], ".", &["*.*"]),
        (&["*.*"], "..", &[]),
        (&["a..b"], "a..b", &["a..b"]),
        (&["a..b"], "a.b", &[]),
        (&["a.*.b"], "a..b", &["a.*.b"]),
        (&["."], ".", &["."]),
        (&["."], "", &[]),
        (&["#."], "..", &["#."]),
        (&["#."], "a", &[]),
        (&[".#"], ".a.b", &[".#"]),
        (&["a#", "*a"], "a#", &["a#"]),
        (&["a#", "*a"], "ba", &[]),
        (&["#", "*"], "#", &["#", "*"]),
        (&["a.b"], "*", &[]),
        (&["#.a.#"], "x.a.y", &["#.a.#"]),
        (&["#.a.#"], "x.b.y", &[]),
        (&["a.#.#.b"], "a.b", &["a.#.#.b"]),
        (&["a.#.#.b", "a.#.b"], "a.x.x.b", &["a.#.#.b", "a.#.b"]),
        (&["a.*.#", "a.#.*"], "a", &[]),
        (&["a.*.#", "a.#.*"], "a.b", &["a.*.#", "a.#.*"]),
        (&["#.b.#.c"], "b.x.b.c", &["#.b.#.c"]),
        (
            &["stock.usd.*", "stock.#", "*.eur.*"],
            "stock.eur.ibm",
            &["stock.#", "*.eur.*"],
        ),
    ];

    #[test]
    fn table_driven_edge_cases() {
        assert!(ROWS.len() >= 40);
        for (patterns, key, expected) in ROWS {
            let mut table = TopicTable::new();
            for (i, p) in patterns.iter().enumerate() {
                table.bind(p, i);
            }
            let got: BTreeSet<&str> = routed(&table, key)
                .into_iter()
                .map(|i| patterns[i])
                .collect();
            let want: BTreeSet<&str> = expected.iter().copied().collect();
            assert_eq!(got, want, "patterns {patterns:?}, key {key:?}");
            for (p, want) in patterns.iter().map(|p| (p, want.contains(p))) {
                assert_eq!(
                    reference_match(&split(p), &split(key)),
                    want,
                    "reference on {p:?} / {key:?}"
                );
            }
        }
    }

    /// What RabbitMQ 3.10.8 routed, one queue bound per pattern, for each key.
    #[test]
    fn matches_observed_rabbitmq_routing() {
        let patterns = [
            "#", "*", "", "a", "a.*", "a.#", "#.a", "*.a", "a.#.b", "#.#", "*.#", "#.*", "a.*.b",
            ".", "*.*", "a.", ".a", "#.", ".#", "a..b", "a.*.*", "#.a.#", "a#", "*a", "a.#.#.b",
        ];
        let observed: &[(&str, &[&str])] = &[
            ("", &["#", "", "#.#"]),
            (
                "a",
                &["#", "*", "a", "a.#", "#.a", "#.#", "*.#", "#.*", "#.a.#"],
            ),
            (
                "a.b",
                &[
                    "#", "a.*", "a.#", "a.#.b", "#.#", "*.#", "#.*", "*.*", "#.a.#", "a.#.#.b",
                ],
            ),
            (
                "a.x.b",
                &[
                    "#", "a.#", "a.#.b", "#.#", "*.#", "#.*", "a.*.b", "a.*.*", "#.a.#", "a.#.#.b",
                ],
            ),
            (
                "a.x.y.b",
                &["#", "a.#", "a.#.b", "#.#", "*.#", "#.*", "#.a.#", "a.#.#.b"],
            ),
            (
                "a..b",
                &[
                    "#", "a.#", "a.#.b", "#.#", "*.#", "#.*", "a.*.b", "a..b", "a.*.*", "#.a.#",
                    "a.#.#.b",
                ],
            ),
            (".", &["#", "#.#", "*.#", "#.*", ".", "*.*", "#.", ".#"]),
            ("..", &["#", "#.#", "*.#", "#.*", "#.", ".#"]),
            (
                "a.",
                &[
                    "#", "a.*", "a.#", "#.#", "*.#", "#.*", "*.*", "a.", "#.", "#.a.#",
                ],
            ),
            (
                ".a",
                &[
                    "#", "#.a", "*.a", "#.#", "*.#", "#.*", "*.*", ".a", ".#", "#.a.#",
                ],
            ),
            ("b", &["#", "*", "#.#", "*.#", "#.*"]),
            (
                "a.a",
                &[
                    "#", "a.*", "a.#", "#.a", "*.a", "#.#", "*.#", "#.*", "*.*", "#.a.#",
                ],
            ),
            ("#", &["#", "*", "#.#", "*.#", "#.*"]),
            ("*", &["#", "*", "#.#", "*.#", "#.*"]),
            ("a#", &["#", "*", "#.#", "*.#", "#.*", "a#"]),
            ("x.a.y", &["#", "#.#", "*.#", "#.*", "#.a.#"]),
            (
                "a.b.c",
                &["#", "a.#", "#.#", "*.#", "#.*", "a.*.*", "#.a.#"],
            ),
        ];
        let mut table = TopicTable::new();
        for (i, p) in patterns.iter().enumerate() {
            table.bind(p, i);
        }
        for (key, expected) in observed {
            let got: BTreeSet<&str> = routed(&table, key)
                .into_iter()
                .map(|i| patterns[i])
                .collect();
            assert_eq!(
                got,
                expected.iter().copied().collect::<BTreeSet<_>>(),
                "key {key:?}"
            );
        }
    }

    /// splitmix64: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn words(&mut self, alphabet: &[&str], max: usize) -> String {
            let n = self.below(max + 1);
            (0..n)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect::<Vec<_>>()
                .join(".")
        }
    }

    fn check_against_reference(
        table: &TopicTable<usize>,
        bound: &[Option<String>],
        rng: &mut Rng,
        keys: usize,
    ) {
        for _ in 0..keys {
            let key = rng.words(&["a", "b", "", "*", "#"], 6);
            let want: BTreeSet<usize> = bound
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
                .filter(|(_, p)| reference_match(&split(p), &split(&key)))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(routed(table, &key), want, "key {key:?}");
        }
    }

    #[test]
    fn randomized_against_reference_matcher() {
        let mut rng = Rng(0x5EED);
        for _round in 0..8 {
            let mut table = TopicTable::new();
            // Each destination is bound once; the index is the destination.
            let mut bound: Vec<Option<String>> = (0..150)
                .map(|_| Some(rng.words(&["a", "b", "", "*", "#"], 5)))
                .collect();
            for (i, p) in bound.iter().enumerate() {
                if let Some(p) = p {
                    table.bind(p, i);
                }
            }
            check_against_reference(&table, &bound, &mut rng, 500);

            for (i, slot) in bound.iter_mut().enumerate() {
                if rng.below(2) == 0 {
                    if let Some(p) = slot.take() {
                        assert!(table.unbind(&p, &i));
                        assert!(!table.unbind(&p, &i), "unbind removed a second copy");
                    }
                }
            }
            check_against_reference(&table, &bound, &mut rng, 300);

            for (i, slot) in bound.iter_mut().enumerate() {
                if rng.below(2) == 0 {
                    let expected = usize::from(slot.take().is_some());
                    assert_eq!(table.remove_destination(&i), expected);
                }
            }
            check_against_reference(&table, &bound, &mut rng, 300);

            for (i, p) in bound.iter().enumerate() {
                if let Some(p) = p {
                    assert!(table.unbind(p, &i));
                }
            }
            assert!(table.is_empty());
            assert_eq!(live_nodes(&table), 1, "pruning left nodes behind");
            assert!(routed(&table, "a.b").is_empty());
        }
    }

    #[test]
    fn multiset_bind_twice_unbind_once() {
        let mut table = TopicTable::new();
        table.bind("a.*", 7);
        table.bind("a.*", 7);
        let mut count = 0;
        table.route("a.b", &mut |_| count += 1);
        assert_eq!(count, 2);
        assert!(table.unbind("a.*", &7));
        assert_eq!(routed(&table, "a.b"), BTreeSet::from([7]));
        assert!(table.unbind("a.*", &7));
        assert!(!table.unbind("a.*", &7));
        assert!(table.is_empty());
        assert_eq!(live_nodes(&table), 1);
    }

    #[test]
    fn unbind_of_unknown_pattern_or_destination_is_false() {
        let mut table = TopicTable::new();
        table.bind("a.b", 1);
        assert!(!table.unbind("a", &1));
        assert!(!table.unbind("a.b.c", &1));
        assert!(!table.unbind("a.b", &2));
        assert!(!table.unbind("a.*", &1));
        assert_eq!(routed(&table, "a.b"), BTreeSet::from([1]));
    }

    #[test]
    fn repeated_hashes_are_one_binding_shape() {
        let mut table = TopicTable::new();
        table.bind("a.#.#.#", 1);
        table.bind("a.#", 2);
        assert_eq!(routed(&table, "a"), BTreeSet::from([1, 2]));
        assert!(table.unbind("a.#.#.#", &1));
        assert_eq!(routed(&table, "a.x"), BTreeSet::from([2]));
        assert!(table.unbind("a.#", &2));
        assert_eq!(live_nodes(&table), 1);
    }

    #[test]
    fn remove_destination_counts_and_prunes() {
        let mut table = TopicTable::new();
        for p in ["#", "a.#", "a.b", "a.b", "*.b", ""] {
            table.bind(p, 1);
        }
        table.bind("a.b", 2);
        assert_eq!(table.remove_destination(&1), 6);
        assert_eq!(table.remove_destination(&1), 0);
        assert_eq!(routed(&table, "a.b"), BTreeSet::from([2]));
        assert_eq!(table.remove_destination(&2), 1);
        assert!(table.is_empty());
        assert_eq!(live_nodes(&table), 1);
        // Freed nodes are reused and the table still routes correctly afterwards.
        table.bind("x.*", 3);
        assert_eq!(routed(&table, "x.y"), BTreeSet::from([3]));
        assert_eq!(table.nodes.len(), 7, "freed nodes were not reused");
    }

    #[test]
    fn each_matching_node_reports_its_destinations_once() {
        let mut table = TopicTable::new();
        table.bind("#.a.#", 1);
        let mut count = 0;
        table.route("a.a.a.a.a.a", &mut |_| count += 1);
        assert_eq!(count, 1);
    }

    #[test]
    fn many_hashes_do_not_explode() {
        // Depth-first matching would try C(250, 7) paths here; the NFA walk is linear.
        let mut table = TopicTable::new();
        table.bind("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b", 1);
        table.bind("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#", 2);
        let key = vec!["a"; 125].join(".");
        assert_eq!(routed(&table, &key), BTreeSet::from([2]));
    }

    #[test]
    fn route_from_inside_route_uses_its_own_buffers() {
        let mut outer = TopicTable::new();
        outer.bind("a.*", 1);
        let mut inner = TopicTable::new();
        inner.bind("#", 10);
        let mut got = Vec::new();
        outer.route("a.b", &mut |d| {
            got.push(*d);
            inner.route("x.y", &mut |e| got.push(*e));
        });
        assert_eq!(got, vec![1, 10]);
    }

    #[test]
    fn empty_table_routes_nothing() {
        let table: TopicTable<u8> = TopicTable::default();
        assert!(table.is_empty());
        let mut called = false;
        table.route("", &mut |_| called = true);
        table.route("a.b", &mut |_| called = true);
        assert!(!called);
    }

    #[test]
    fn long_keys_and_odd_bytes_are_words() {
        let mut table = TopicTable::new();
        let long = "w".repeat(255);
        table.bind(&long, 1);
        table.bind("é.*", 2);
        assert_eq!(routed(&table, &long), BTreeSet::from([1]));
        assert_eq!(routed(&table, "é.\u{0}"), BTreeSet::from([2]));
    }
}
