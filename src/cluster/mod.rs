//! Clustering on openraft (issue 17, docs/clustering.md). Phase 1's building blocks, not
//! yet used by the broker: a node's identity at start and the node-to-node transport.

pub mod identity;
pub mod transport;
