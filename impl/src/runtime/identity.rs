//! Who a data directory is, and which incarnation of each peer this node has talked to.
//!
//! A voter's promises live on its disk: the vote it cast in each term and the entries it
//! acknowledged. A node that lost its disk has forgotten both, so it must not come back as the
//! voter it was: it could vote twice in a term (two leaders), and the entries only it and one
//! other node held are now on a minority (acknowledged writes lost when that other node fails).
//! Two checks keep such a node out:
//!
//! - A data directory is created once, by [`init`] (`raft-node init`), and `serve` refuses a
//!   directory that was never initialized. Starting on an empty directory is then a decision
//!   an operator made, not what happens when a disk comes back blank.
//! - Each initialization draws a random *incarnation*. Peers exchange incarnations in the
//!   handshake and each node records, durably and before it accepts anything from it, the
//!   incarnation of every peer it talks to ([`PeerBook`], `peers.json`). A peer presenting
//!   another incarnation later was re-initialized: the connection is refused and the replaced
//!   node is told so, and stops with an error that says what happened.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::wal::write_atomic;
use super::wal::{io_err, StorageError};
use raft_core::NodeId;

/// The identity file of a data directory.
pub const META: &str = "meta.json";
/// The incarnations of peers this node has talked to.
pub const PEERS: &str = "peers.json";
/// Files that only an initialized data directory holds.
const STATE_FILES: [&str; 3] = ["hard_state", "snapshot", "wal"];

/// The identity a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub cluster_id: String,
    pub node_id: NodeId,
    /// Drawn at random when the directory was initialized (never 0); written in hex, as every
    /// message shows it. Directories written before incarnations existed read as 0 and get
    /// one at their next start.
    #[serde(default, with = "hex")]
    pub incarnation: u64,
    /// The cluster's voters at its first start, recorded when the directory was initialized
    /// (empty: this node joined an existing cluster and is a member only once a configuration
    /// entry says so). Every node of a cluster must start from the same one, and it must not
    /// change when an operator later lists more peers in the configuration file: it is what
    /// the node believes the configuration is until its log or snapshot says otherwise.
    /// Directories initialized before membership changes existed have none: their voters are
    /// the nodes their configuration lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_voters: Option<Vec<NodeId>>,
}

/// Incarnations as 16 hex digits in the files, so that an operator can match them against the
/// logs.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16)
            .map_err(|e| serde::de::Error::custom(format!("incarnation {text:?}: {e}")))
    }
}

/// What `peers.json` holds: each peer's incarnation, in hex.
#[derive(Default, Serialize, Deserialize)]
struct Known(BTreeMap<NodeId, Incarnation>);

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Incarnation(#[serde(with = "hex")] u64);

fn fresh_incarnation() -> u64 {
    loop {
        let i: u64 = rand::random();
        if i != 0 {
            return i;
        }
    }
}

/// How to get a node whose data directory is gone back into its cluster, said wherever a
/// node refuses to start for that reason.
pub const REJOIN_HINT: &str = "it has forgotten its votes and the log entries it \
     acknowledged, so it must not rejoin as the voter it was: restore its own data directory if \
     a copy exists; otherwise replace it: `raft-node member remove ID` at the cluster, then \
     start a new node under a new id with an empty data directory (`raft-node serve --join`), \
     listed in every node's peers, and add it (`raft-node member add-learner`, then `promote`; \
     RUNTIME.md, \"Membership runbook\")";

/// Create the data directory `dir` for node `node_id` of cluster `cluster_id`, with a fresh
/// incarnation and the cluster's `initial_voters` (empty for a node joining a running
/// cluster). Refuses a directory that is already initialized or holds state.
pub fn init(
    dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    initial_voters: Vec<NodeId>,
) -> Result<Meta, StorageError> {
    if let Some(have) = read(dir)? {
        return Err(StorageError::Invalid(format!(
            "{} is already initialized (node {} of cluster {:?}, incarnation {:016x})",
            dir.display(),
            have.node_id,
            have.cluster_id,
            have.incarnation
        )));
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    create(dir, cluster_id, node_id, Some(initial_voters), None)
}

/// The identity of `dir`, `None` when it was never initialized.
pub fn read(dir: &Path) -> Result<Option<Meta>, StorageError> {
    let path = dir.join(META);
    match fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| StorageError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// The identity of `dir`, which must be initialized, and belong to node `node_id` of cluster
/// `cluster_id`.
pub fn require(dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<Meta, StorageError> {
    match read(dir)? {
        Some(have) => check(dir, have, cluster_id, node_id, None),
        None => Err(StorageError::Invalid(format!(
            "{} is not an initialized data directory (no {META}). A new cluster's nodes are \
             initialized once, before their first start (`raft-node init --config FILE`; \
             `raft-node cluster` does it for its nodes). If this node ran before and lost its data \
             directory, {REJOIN_HINT}.",
            dir.display()
        ))),
    }
}

/// [`require`], except that a directory with no identity and no state is initialized (what
/// library users and tests opening a fresh directory expect).
pub(crate) fn ensure(
    dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    faults: Option<&super::wal::DiskFaults>,
) -> Result<Meta, StorageError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    match read(dir)? {
        Some(have) => check(dir, have, cluster_id, node_id, faults),
        None => create(dir, cluster_id, node_id, None, faults),
    }
}

/// A new identity for `dir`, which holds no state.
fn create(
    dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    initial_voters: Option<Vec<NodeId>>,
    faults: Option<&super::wal::DiskFaults>,
) -> Result<Meta, StorageError> {
    refuse_orphan_state(dir)?;
    let meta = Meta {
        cluster_id: cluster_id.to_string(),
        node_id,
        incarnation: fresh_incarnation(),
        initial_voters,
    };
    write_meta(dir, &meta, faults)?;
    Ok(meta)
}

fn check(
    dir: &Path,
    have: Meta,
    cluster_id: &str,
    node_id: NodeId,
    faults: Option<&super::wal::DiskFaults>,
) -> Result<Meta, StorageError> {
    if have.cluster_id != cluster_id || have.node_id != node_id {
        return Err(StorageError::Invalid(format!(
            "{} belongs to node {} of cluster {:?}, not node {} of cluster {:?}",
            dir.display(),
            have.node_id,
            have.cluster_id,
            node_id,
            cluster_id
        )));
    }
    if have.incarnation != 0 {
        return Ok(have);
    }
    // Written before incarnations existed: this directory is the node's own, so it gets its
    // incarnation now and keeps it.
    let meta = Meta {
        incarnation: fresh_incarnation(),
        ..have
    };
    write_meta(dir, &meta, faults)?;
    Ok(meta)
}

/// A directory that already holds state but lost its identity is not new.
fn refuse_orphan_state(dir: &Path) -> Result<(), StorageError> {
    for other in STATE_FILES {
        if dir.join(other).exists() {
            return Err(StorageError::Invalid(format!(
                "{} is missing but {} exists: refusing to adopt a data directory of unknown \
                 identity",
                dir.join(META).display(),
                dir.join(other).display()
            )));
        }
    }
    Ok(())
}

fn write_meta(
    dir: &Path,
    meta: &Meta,
    faults: Option<&super::wal::DiskFaults>,
) -> Result<(), StorageError> {
    let data = serde_json::to_vec_pretty(meta).expect("meta encodes");
    write_atomic(dir, META, &data, faults)
}

/// Why [`PeerBook::admit`] refused a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A re-initialized incarnation of a node this one knew: it must stop.
    Replaced(String),
    /// Not now (no incarnation presented, or this node could not record it).
    Other(String),
}

/// The incarnations of the peers this node has talked to, durable in `peers.json`, and whether
/// a peer has told this node that it was replaced.
#[derive(Debug)]
pub struct PeerBook {
    me: u64,
    dir: PathBuf,
    known: Mutex<BTreeMap<NodeId, u64>>,
    replaced: watch::Sender<Option<String>>,
}

impl PeerBook {
    /// The book of data directory `dir`, whose own incarnation is `me`.
    pub fn load(dir: &Path, me: u64) -> Result<PeerBook, StorageError> {
        let path = dir.join(PEERS);
        let known = match fs::read(&path) {
            Ok(data) => serde_json::from_slice::<Known>(&data)
                .map_err(|e| StorageError::Invalid(format!("{}: {e}", path.display())))?
                .0
                .into_iter()
                .map(|(id, i)| (id, i.0))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(PeerBook {
            me,
            dir: dir.to_path_buf(),
            known: Mutex::new(known),
            replaced: watch::channel(None).0,
        })
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.me
    }

    /// The recorded incarnation of `peer`, if any.
    pub fn known(&self, peer: NodeId) -> Option<u64> {
        self.known.lock().unwrap().get(&peer).copied()
    }

    /// Accept `peer` presenting `incarnation`: the first one seen is recorded durably before
    /// this returns; any other one is refused as replaced. A peer without an incarnation, or
    /// one this node cannot record, is refused for now, not as replaced: the fault may be here.
    pub fn admit(&self, peer: NodeId, incarnation: u64) -> Result<(), Refusal> {
        let mut known = self.known.lock().unwrap();
        match known.get(&peer) {
            Some(&k) if k == incarnation => Ok(()),
            Some(&k) => Err(Refusal::Replaced(format!(
                "node {peer} presents incarnation {incarnation:016x}, but this cluster knew it as \
                 incarnation {k:016x}: its data directory was re-initialized, and {REJOIN_HINT}"
            ))),
            None if incarnation == 0 => Err(Refusal::Other(format!(
                "node {peer} presents no incarnation (a node without a data directory identity)"
            ))),
            None => {
                known.insert(peer, incarnation);
                let file = Known(known.iter().map(|(&id, &i)| (id, Incarnation(i))).collect());
                let data = serde_json::to_vec_pretty(&file).expect("peer book encodes");
                if let Err(e) = write_atomic(&self.dir, PEERS, &data, None) {
                    known.remove(&peer);
                    return Err(Refusal::Other(format!(
                        "cannot record node {peer}'s incarnation: {e}"
                    )));
                }
                Ok(())
            }
        }
    }

    /// A peer refused this node as a replaced incarnation of itself.
    pub fn mark_replaced(&self, reason: String) {
        self.replaced.send_if_modified(|r| {
            let first = r.is_none();
            r.get_or_insert(reason);
            first
        });
    }

    /// Resolves with the reason once a peer has refused this node as replaced.
    pub fn replaced(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.replaced.subscribe();
        async move {
            loop {
                if let Some(r) = rx.borrow_and_update().clone() {
                    return r;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_once_then_require_and_refuse_strangers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n1");
        let e = require(&dir, "c", 1).unwrap_err().to_string();
        assert!(e.contains("not an initialized data directory"), "{e}");
        let m = init(&dir, "c", 1, vec![1]).unwrap();
        assert_ne!(m.incarnation, 0);
        let text = fs::read_to_string(dir.join(META)).unwrap();
        assert!(
            text.contains(&format!("\"{:016x}\"", m.incarnation)),
            "{text}"
        );
        assert_eq!(require(&dir, "c", 1).unwrap(), m);
        assert!(init(&dir, "c", 1, vec![1])
            .unwrap_err()
            .to_string()
            .contains("already initialized"));
        assert!(require(&dir, "c", 2).is_err());
        assert!(require(&dir, "other", 1).is_err());
        // Two initializations draw two incarnations.
        let other = init(&tmp.path().join("n1b"), "c", 1, vec![1]).unwrap();
        assert_ne!(other.incarnation, m.incarnation);
    }

    #[test]
    fn a_directory_from_before_incarnations_gets_one_and_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(META), br#"{"cluster_id":"c","node_id":1}"#).unwrap();
        let m = require(tmp.path(), "c", 1).unwrap();
        assert_ne!(m.incarnation, 0);
        assert_eq!(require(tmp.path(), "c", 1).unwrap(), m);
    }

    #[test]
    fn the_book_records_a_peer_once_and_refuses_another_incarnation_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let book = PeerBook::load(tmp.path(), 7).unwrap();
        book.admit(2, 11).unwrap();
        book.admit(2, 11).unwrap();
        assert!(matches!(book.admit(3, 0), Err(Refusal::Other(_))));
        drop(book);
        let book = PeerBook::load(tmp.path(), 7).unwrap();
        assert_eq!(book.known(2), Some(11));
        let text = fs::read_to_string(tmp.path().join(PEERS)).unwrap();
        assert!(text.contains("\"000000000000000b\""), "{text}");
        let Err(Refusal::Replaced(e)) = book.admit(2, 12) else {
            panic!("another incarnation admitted");
        };
        assert!(e.contains("re-initialized"), "{e}");
        assert_eq!(book.known(2), Some(11));
    }

    #[test]
    fn a_peer_this_node_cannot_record_is_refused_but_not_as_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let book = PeerBook::load(&tmp.path().join("gone"), 7).unwrap();
        let Err(Refusal::Other(e)) = book.admit(2, 11) else {
            panic!("admitted without recording");
        };
        assert!(e.contains("cannot record"), "{e}");
        assert_eq!(book.known(2), None);
    }

    #[tokio::test]
    async fn being_replaced_is_reported_once_with_the_first_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let book = PeerBook::load(tmp.path(), 7).unwrap();
        let waiting = tokio::spawn(book.replaced());
        book.mark_replaced("first".into());
        book.mark_replaced("second".into());
        assert_eq!(waiting.await.unwrap(), "first");
        assert_eq!(book.replaced().await, "first");
    }
}
