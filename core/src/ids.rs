//! The numbers every part of the protocol names: servers, terms and log indexes. A module of
//! their own, below everything else, so that the log, the messages and the snapshots can all
//! use them without depending on one another.

/// A server id.
pub type NodeId = u64;
/// A term.
pub type Term = u64;
/// A log index (1-based; 0 means "before the first entry").
pub type Index = u64;
