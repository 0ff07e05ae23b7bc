//! Exchanges: their declared properties, their bindings, and routing.
//!
//! Owned by the vhost's topology (behind its RwLock); routing runs under the read lock
//! and only appends `Arc<Queue>`s to the caller's buffer, so the lock is released before
//! any queue is touched. Each kind keeps a routing index shaped for it: a hash map by key
//! (direct), a list (fanout), a trie (topic), parsed argument matchers (headers). The
//! binding list keeps identity (queue, key, arguments) for idempotent bind and unbind.

pub mod headers;
pub mod topic;

use super::message::Message;
use super::queue::Queue;
use crate::error::Exception;
use amq_protocol::types::FieldTable;
use headers::HeadersBinding;
use std::collections::HashMap;
use std::sync::Arc;
use topic::TopicTable;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

#[derive(Debug)]
pub struct Binding {
    pub queue: Arc<Queue>,
    pub routing_key: String,
    pub arguments: FieldTable,
}

#[derive(Debug)]
enum Routes {
    Direct(HashMap<String, Vec<Arc<Queue>>>),
    Fanout(Vec<Arc<Queue>>),
    Topic(TopicTable<Arc<Queue>>),
    Headers(Vec<(HeadersBinding, Arc<Queue>)>),
}

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    bindings: Vec<Binding>,
    routes: Routes,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let routes = match kind {
            ExchangeKind::Direct => Routes::Direct(HashMap::new()),
            ExchangeKind::Fanout => Routes::Fanout(Vec::new()),
            ExchangeKind::Topic => Routes::Topic(TopicTable::new()),
            ExchangeKind::Headers => Routes::Headers(Vec::new()),
        };
        Exchange {
            name: name.to_owned(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: Vec::new(),
            routes,
        }
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.is_empty()
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Adds a binding; binding the same (queue, key, arguments) again changes nothing.
    pub fn bind(&mut self, queue: &Arc<Queue>, key: &str, arguments: &FieldTable) -> Result<(), Exception> {
        if self.find(queue, key, arguments).is_some() {
            return Ok(());
        }
        match &mut self.routes {
            Routes::Direct(map) => map.entry(key.to_owned()).or_default().push(queue.clone()),
            Routes::Fanout(list) => list.push(queue.clone()),
            Routes::Topic(trie) => trie.bind(key, queue.clone()),
            Routes::Headers(list) => {
                let matcher = HeadersBinding::parse(arguments).map_err(|text| {
                    let detail = text.strip_prefix("PRECONDITION_FAILED - ").unwrap_or(&text);
                    Exception::precondition_failed(detail)
                })?;
                list.push((matcher, queue.clone()));
            }
        }
        self.bindings.push(Binding {
            queue: queue.clone(),
            routing_key: key.to_owned(),
            arguments: arguments.clone(),
        });
        Ok(())
    }

    fn find(&self, queue: &Queue, key: &str, arguments: &FieldTable) -> Option<usize> {
        self.bindings
            .iter()
            .position(|b| b.queue.id == queue.id && b.routing_key == key && &b.arguments == arguments)
    }

    /// Removes one binding; returns whether it existed.
    pub fn unbind(&mut self, queue: &Queue, key: &str, arguments: &FieldTable) -> bool {
        let Some(at) = self.find(queue, key, arguments) else { return false };
        let binding = self.bindings.remove(at);
        match &mut self.routes {
            Routes::Direct(map) => {
                if let Some(list) = map.get_mut(key) {
                    if let Some(i) = list.iter().position(|q| q.id == queue.id) {
                        list.swap_remove(i);
                    }
                    if list.is_empty() {
                        map.remove(key);
                    }
                }
            }
            Routes::Fanout(list) => {
                if let Some(i) = list.iter().position(|q| q.id == queue.id) {
                    list.swap_remove(i);
                }
            }
            Routes::Topic(trie) => {
                trie.unbind(key, &binding.queue);
            }
            Routes::Headers(list) => {
                // Bindings and matchers were pushed in the same order.
                let nth = self.bindings[..at].iter().filter(|b| b.queue.id == queue.id).count();
                if let Some(i) = list.iter().enumerate().filter(|(_, (_, q))| q.id == queue.id).nth(nth).map(|(i, _)| i) {
                    list.remove(i);
                }
            }
        }
        true
    }

    /// Removes every binding to a deleted queue; returns how many there were.
    pub fn remove_queue(&mut self, queue: &Arc<Queue>) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|b| b.queue.id != queue.id);
        match &mut self.routes {
            Routes::Direct(map) => {
                map.retain(|_, list| {
                    list.retain(|q| q.id != queue.id);
                    !list.is_empty()
                });
            }
            Routes::Fanout(list) => list.retain(|q| q.id != queue.id),
            Routes::Topic(trie) => {
                trie.remove_destination(queue);
            }
            Routes::Headers(list) => list.retain(|(_, q)| q.id != queue.id),
        }
        before - self.bindings.len()
    }

    /// Appends the queues this message goes to (possibly with repeats: the caller
    /// de-duplicates).
    pub fn route(&self, msg: &Message, out: &mut Vec<Arc<Queue>>) {
        match &self.routes {
            Routes::Direct(map) => {
                if let Some(list) = map.get(msg.routing_key.as_str()) {
                    out.extend(list.iter().cloned());
                }
            }
            Routes::Fanout(list) => out.extend(list.iter().cloned()),
            Routes::Topic(trie) => trie.route(msg.routing_key.as_str(), &mut |q: &Arc<Queue>| out.push(q.clone())),
            Routes::Headers(list) => {
                if list.is_empty() {
                    return;
                }
                let headers = msg.headers();
                for (matcher, q) in list {
                    if matcher.matches(headers.as_ref()) {
                        out.push(q.clone());
                    }
                }
            }
        }
    }
}
