//! THREAD (RFC 5256 §3): ORDEREDSUBJECT groups by base subject; REFERENCES links messages
//! by Message-ID, References and In-Reply-To, then gathers roots of the same subject.
//! Both build a tree of containers in one arena and walk it with explicit stacks, so a
//! hostile chain of 100 000 replies cannot overflow the stack.

use std::collections::HashMap;

use super::command::{SearchKey, ThreadAlgorithm};
use super::keys::{Keys, Wanted};
use super::response::Done;
use super::selected::{number, unsupported_charset};
use super::sort::read_keys;
use super::subject::BaseSubject;
use super::view::View;

/// THREAD / UID THREAD: writes `* THREAD (...)...`.
pub(super) fn thread(
    view: &View,
    uid: bool,
    algorithm: ThreadAlgorithm,
    charset: &str,
    criteria: &SearchKey,
    out: &mut Vec<u8>,
) -> Done {
    if let Some(refused) = unsupported_charset(charset) {
        return refused;
    }
    let wanted = Wanted {
        subject: true,
        sent: true,
        addresses: false,
        ids: algorithm == ThreadAlgorithm::References,
    };
    let keyed = match read_keys(view, criteria, wanted) {
        Ok(keyed) => keyed,
        Err(done) => return done,
    };
    let forest = match algorithm {
        ThreadAlgorithm::OrderedSubject => Forest::by_subject(&keyed),
        ThreadAlgorithm::References => Forest::by_references(&keyed),
    };
    out.extend_from_slice(b"* THREAD ");
    forest.write(out, |message| {
        keyed
            .get(message)
            .map_or(0, |keys| number(view, keys.index, uid))
    });
    out.extend_from_slice(b"\r\n");
    Done::ok("THREAD completed")
}

/// A container: a message (an index into the keys) or a dummy standing for one that
/// was only referred to.
#[derive(Debug, Default, Clone)]
struct Node {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The threads being built.
struct Forest<'k> {
    keys: &'k [Keys],
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

impl<'k> Forest<'k> {
    fn new(keys: &'k [Keys]) -> Self {
        Forest {
            keys,
            nodes: Vec::new(),
            roots: Vec::new(),
        }
    }

    /// ORDEREDSUBJECT: messages of one base subject form a thread whose first message
    /// (by sent date) is the parent of all the others.
    fn by_subject(keys: &'k [Keys]) -> Self {
        let mut forest = Forest::new(keys);
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&keys[a], &keys[b]);
            (&a.subject.key, a.sent, a.index).cmp(&(&b.subject.key, b.sent, b.index))
        });
        let mut first: Option<(usize, &str)> = None;
        for message in order {
            let node = forest.add(Some(message));
            let subject = keys[message].subject.key.as_str();
            match first {
                Some((parent, key)) if key == subject => forest.link(parent, node),
                _ => {
                    forest.roots.push(node);
                    first = Some((node, subject));
                }
            }
        }
        forest.sort();
        forest
    }

    /// REFERENCES: the RFC 5256 §3 algorithm, steps 1 to 6.
    fn by_references(keys: &'k [Keys]) -> Self {
        let mut forest = Forest::new(keys);
        forest.link_references();
        forest.roots = (0..forest.nodes.len())
            .filter(|&n| forest.nodes[n].parent.is_none())
            .collect();
        forest.prune();
        forest.gather_subjects();
        forest.sort();
        forest
    }

    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Node {
            message,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(parent) = self.nodes[child].parent.take() {
            self.nodes[parent].children.retain(|&c| c != child);
        }
    }

    /// True if `ancestor` is `node` or above it.
    fn is_ancestor(&self, ancestor: usize, node: usize) -> bool {
        let mut at = Some(node);
        while let Some(n) = at {
            if n == ancestor {
                return true;
            }
            at = self.nodes[n].parent;
        }
        false
    }

    /// Step 1: a container per message ID; each message's references linked in order
    /// (never making a loop, never moving a container that has a parent), and the
    /// message made a child of its last reference. A message without an ID, or with one
    /// an earlier message already has, gets a container of its own.
    fn link_references(&mut self) {
        let mut by_id: HashMap<&'k str, usize> = HashMap::new();
        let keys = self.keys;
        for (message, keys) in keys.iter().enumerate() {
            let own = match keys.message_id.as_deref() {
                Some(id) => match by_id.get(id) {
                    Some(&node) if self.nodes[node].message.is_none() => node,
                    Some(_) => self.add(None),
                    None => {
                        let node = self.add(None);
                        by_id.insert(id, node);
                        node
                    }
                },
                None => self.add(None),
            };
            self.nodes[own].message = Some(message);
            let mut previous: Option<usize> = None;
            for reference in &keys.references {
                let node = match by_id.get(reference.as_str()) {
                    Some(&node) => node,
                    None => {
                        let node = self.add(None);
                        by_id.insert(reference, node);
                        node
                    }
                };
                if let Some(parent) = previous
                    && self.nodes[node].parent.is_none()
                    && !self.is_ancestor(node, parent)
                {
                    self.link(parent, node);
                }
                previous = Some(node);
            }
            // Step 1B: an existing parent link is broken first (a truncated References
            // made it), and the new one is not made if it would close a loop.
            self.unlink(own);
            if let Some(parent) = previous
                && !self.is_ancestor(own, parent)
            {
                self.link(parent, own);
            }
        }
    }

    /// The containers below `roots`, children before their parents.
    fn post_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, bool)> = self.roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                order.push(node);
            } else {
                stack.push((node, true));
                stack.extend(self.nodes[node].children.iter().rev().map(|&c| (c, false)));
            }
        }
        order
    }

    /// Step 4: dummies without children go; a dummy's children take its place, except
    /// that a dummy at the top keeps two or more children together.
    fn prune(&mut self) {
        for node in self.post_order() {
            let children = std::mem::take(&mut self.nodes[node].children);
            let kept = self.spliced(children);
            for &child in &kept {
                self.nodes[child].parent = Some(node);
            }
            self.nodes[node].children = kept;
        }
        let roots = std::mem::take(&mut self.roots);
        let mut kept = Vec::with_capacity(roots.len());
        for root in roots {
            let node = &self.nodes[root];
            if node.message.is_some() || node.children.len() > 1 {
                kept.push(root);
            } else if let Some(&only) = node.children.first() {
                self.nodes[only].parent = None;
                kept.push(only);
            }
        }
        self.roots = kept;
    }

    /// `children` with each dummy replaced by its own (already pruned) children.
    fn spliced(&self, children: Vec<usize>) -> Vec<usize> {
        let mut kept = Vec::with_capacity(children.len());
        for child in children {
            let node = &self.nodes[child];
            if node.message.is_some() {
                kept.push(child);
            } else {
                kept.extend_from_slice(&node.children);
            }
        }
        kept
    }

    /// The base subject of a thread: its root's, or for a dummy its first child's.
    fn subject(&self, root: usize) -> Option<&'k BaseSubject> {
        let node = &self.nodes[root];
        let message = node
            .message
            .or_else(|| node.children.first().and_then(|&c| self.nodes[c].message))?;
        self.keys.get(message).map(|keys| &keys.subject)
    }

    fn is_dummy(&self, node: usize) -> bool {
        self.nodes[node].message.is_none()
    }

    /// Step 5: threads whose roots have the same base subject are put together.
    fn gather_subjects(&mut self) {
        let mut table: HashMap<&'k str, usize> = HashMap::new();
        for &root in &self.roots {
            let Some(subject) = self.subject(root).filter(|s| !s.key.is_empty()) else {
                continue;
            };
            let replace = match table.get(subject.key.as_str()) {
                None => true,
                Some(&held) => {
                    (self.is_dummy(root) && !self.is_dummy(held))
                        || (self.subject(held).is_some_and(|s| s.reply) && !subject.reply)
                }
            };
            if replace {
                table.insert(subject.key.as_str(), root);
            }
        }
        let roots = std::mem::take(&mut self.roots);
        let mut kept = Vec::with_capacity(roots.len());
        for root in roots {
            let held = self
                .subject(root)
                .and_then(|subject| table.get(subject.key.as_str()).copied());
            match held {
                Some(held) if held != root => self.merge(held, root),
                _ => kept.push(root),
            }
        }
        self.roots = kept;
    }

    /// Puts the thread `root` under `held`, the thread of the same subject that stays.
    fn merge(&mut self, held: usize, root: usize) {
        let root_reply = self.subject(root).is_some_and(|s| s.reply);
        let held_reply = self.subject(held).is_some_and(|s| s.reply);
        if self.is_dummy(held) && self.is_dummy(root) {
            for child in std::mem::take(&mut self.nodes[root].children) {
                self.link(held, child);
            }
        } else if self.is_dummy(held) || (root_reply && !held_reply) {
            self.link(held, root);
        } else {
            // A new dummy above both, in `held`'s place: `held`'s content moves down.
            let message = self.nodes[held].message.take();
            let moved = self.add(message);
            for child in std::mem::take(&mut self.nodes[held].children) {
                self.link(moved, child);
            }
            self.link(held, moved);
            if self.is_dummy(root) {
                for child in std::mem::take(&mut self.nodes[root].children) {
                    self.link(held, child);
                }
            } else {
                self.link(held, root);
            }
        }
    }

    /// Step 6: siblings by sent date (a dummy by its first child's), ties in mailbox
    /// order.
    fn sort(&mut self) {
        let mut date: HashMap<usize, (i64, usize)> = HashMap::new();
        for node in self.post_order() {
            let mut children = std::mem::take(&mut self.nodes[node].children);
            children.sort_by_key(|c| date.get(c).copied().unwrap_or_default());
            let key = match self.nodes[node].message.and_then(|m| self.keys.get(m)) {
                Some(keys) => (keys.sent, keys.index),
                None => children
                    .first()
                    .and_then(|c| date.get(c).copied())
                    .unwrap_or_default(),
            };
            date.insert(node, key);
            self.nodes[node].children = children;
        }
        self.roots
            .sort_by_key(|r| date.get(r).copied().unwrap_or_default());
    }

    /// The threads in RFC 5256 §4's form: `(1 2 (3)(4 5))`, a child that is the only
    /// one continuing its parent's list.
    fn write(&self, out: &mut Vec<u8>, number: impl Fn(usize) -> u32) {
        enum Step {
            Node(usize),
            Text(&'static [u8]),
        }
        let mut stack: Vec<Step> = Vec::new();
        for &root in self.roots.iter().rev() {
            stack.extend([Step::Text(b")"), Step::Node(root), Step::Text(b"(")]);
        }
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Text(text) => {
                    out.extend_from_slice(text);
                    continue;
                }
                Step::Node(node) => &self.nodes[node],
            };
            if let Some(message) = node.message {
                out.extend_from_slice(number(message).to_string().as_bytes());
                if !node.children.is_empty() {
                    out.push(b' ');
                }
            }
            match node.children.as_slice() {
                [] => {}
                [only] => stack.push(Step::Node(*only)),
                children => {
                    for &child in children.iter().rev() {
                        stack.extend([Step::Text(b")"), Step::Node(child), Step::Text(b"(")]);
                    }
                }
            }
        }
    }
}
