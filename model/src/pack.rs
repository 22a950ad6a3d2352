//! Hashing by packed bytes. The checker fingerprints every generated state; derived `Hash`
//! feeds the hasher one small field at a time, which made fingerprinting the largest item in
//! the checker's profile. These impls write each server and message as one packed byte string
//! (injective: fixed layouts, lengths first), so equal values still hash equally.

use crate::server::Server;
use crate::types::*;
use std::hash::{Hash, Hasher};

/// A stack buffer that hands full chunks to the hasher.
struct Packer<'h, H: Hasher> {
    buf: [u8; 128],
    len: usize,
    hasher: &'h mut H,
}

impl<'h, H: Hasher> Packer<'h, H> {
    fn new(hasher: &'h mut H) -> Self {
        Packer {
            buf: [0; 128],
            len: 0,
            hasher,
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.hasher.write(&self.buf[..self.len]);
            self.len = 0;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn opt(&mut self, v: Option<u8>) {
        self.bytes(&match v {
            None => [0, 0],
            Some(v) => [1, v],
        });
    }

    fn entries(&mut self, entries: &[Entry]) {
        self.bytes(&[entries.len() as u8]);
        for e in entries {
            self.bytes(&e.packed());
        }
    }

    fn sessions(&mut self, sessions: &[Session]) {
        self.bytes(&[sessions.len() as u8]);
        for s in sessions {
            self.bytes(&[s.client_id, s.last_seq, s.last_index]);
            self.bytes(&s.answer.packed());
        }
    }

    fn snapshot(&mut self, snap: &Snapshot) {
        self.bytes(&[snap.last_included_index, snap.last_included_term]);
        self.opt(snap.kv[0]);
        self.opt(snap.kv[1]);
        self.sessions(&snap.sessions);
        match snap.membership {
            None => self.bytes(&[0]),
            Some(m) => self.bytes(&[1, m.voters, m.learners]),
        }
    }

    fn finish(self) {
        self.hasher.write(&self.buf[..self.len]);
    }
}

/// An optional value in one byte: the model's values stay far below 255.
fn opt_byte(v: Option<u8>) -> u8 {
    v.map_or(0, |v| v + 1)
}

impl Op {
    fn packed(&self) -> [u8; 4] {
        match *self {
            Op::Put { key, value } => [0, key, value, 0],
            Op::Get { key } => [1, key, 0, 0],
            Op::Delete { key } => [2, key, 0, 0],
            Op::Cas { key, expected, new } => [3, key, opt_byte(expected), opt_byte(new)],
        }
    }
}

impl Answer {
    fn packed(&self) -> [u8; 3] {
        match *self {
            Answer::Ok => [0, 0, 0],
            Answer::Value(None) => [1, 0, 0],
            Answer::Value(Some(v)) => [1, 1, v],
            Answer::SessionExpired => [2, 0, 0],
            Answer::Registered(id) => [3, id, 0],
            Answer::Cas { swapped, previous } => [4, swapped as u8, opt_byte(previous)],
        }
    }
}

impl Entry {
    fn packed(&self) -> [u8; 8] {
        match self.command {
            Command::Noop => [self.term, 0, 0, 0, 0, 0, 0, 0],
            Command::Client { client_id, seq, op } => {
                let [t, k, a, b] = op.packed();
                [self.term, 1, client_id, seq, t, k, a, b]
            }
            Command::Register { nonce } => [self.term, 2, nonce, 0, 0, 0, 0, 0],
            Command::Membership(m) => [self.term, 3, m.voters, m.learners, 0, 0, 0, 0],
        }
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.packed());
    }
}

impl Hash for Server {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut p = Packer::new(state);
        p.bytes(&[
            self.current_term,
            self.role as u8,
            self.votes,
            self.commit_index,
        ]);
        p.opt(self.voted_for);
        p.opt(self.leader_id);
        p.bytes(&[self.recent_active]);
        p.entries(&self.log);
        p.bytes(&[self.next_index.len() as u8]);
        p.bytes(&self.next_index);
        p.bytes(&[self.match_index.len() as u8]);
        p.bytes(&self.match_index);
        p.bytes(&[self.inflight.len() as u8, self.stalled]);
        for lasts in &self.inflight {
            p.bytes(&[lasts.len() as u8]);
            p.bytes(lasts);
        }
        p.opt(self.kv[0]);
        p.opt(self.kv[1]);
        p.sessions(&self.sessions);
        p.snapshot(&self.snapshot);
        let reads = &self.reads;
        p.bytes(&[
            reads.round,
            reads.pending.len() as u8,
            reads.waiting.len() as u8,
        ]);
        for r in &reads.pending {
            let q = r.request;
            p.bytes(&[q.client_id, q.seq, q.key, r.read_index, r.round, r.acks]);
        }
        for q in &reads.waiting {
            p.bytes(&[q.client_id, q.seq, q.key]);
        }
        p.bytes(&[self.applied.len() as u8]);
        for &(c, s, n) in &self.applied {
            p.bytes(&[c, s, n]);
        }
        p.finish();
    }
}

impl Hash for Envelope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut p = Packer::new(state);
        p.bytes(&[self.src, self.dst]);
        match &self.msg {
            Msg::RequestVote {
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote,
            } => p.bytes(&[
                0,
                *term,
                *candidate,
                *last_log_index,
                *last_log_term,
                *pre_vote as u8,
            ]),
            Msg::RequestVoteResponse {
                term,
                granted,
                pre_vote,
            } => p.bytes(&[1, *term, *granted as u8, *pre_vote as u8]),
            Msg::AppendEntries {
                term,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                p.bytes(&[
                    2,
                    *term,
                    *leader,
                    *prev_log_index,
                    *prev_log_term,
                    *leader_commit,
                ]);
                p.entries(entries);
            }
            Msg::AppendEntriesResponse {
                term,
                success,
                last_index,
            } => p.bytes(&[3, *term, *success as u8, *last_index]),
            Msg::InstallSnapshot {
                term,
                leader,
                snapshot,
            } => {
                p.bytes(&[4, *term, *leader]);
                p.snapshot(snapshot);
            }
            Msg::ReadIndex {
                term,
                leader,
                round,
            } => p.bytes(&[5, *term, *leader, *round]),
            Msg::ReadIndexResponse { term, round, ok } => p.bytes(&[6, *term, *round, *ok as u8]),
            Msg::TimeoutNow { term, leader } => p.bytes(&[7, *term, *leader]),
        }
        p.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use std::hash::DefaultHasher;

    fn h<T: Hash>(t: &T) -> u64 {
        let mut s = DefaultHasher::new();
        t.hash(&mut s);
        s.finish()
    }

    #[test]
    fn distinct_servers_hash_apart_and_equal_ones_together() {
        let cfg = Config::default();
        let a = Server::new(&cfg);
        let mut b = a.clone();
        assert_eq!(h(&a), h(&b));
        b.voted_for = Some(0);
        assert_ne!(h(&a), h(&b));
        let mut c = a.clone();
        c.log.push(Entry {
            term: 1,
            command: Command::Noop,
        });
        assert_ne!(h(&a), h(&c));
        // Moving a byte from one vector to the next must change the hash (lengths come first).
        let mut d = a.clone();
        d.next_index = vec![1, 2];
        d.match_index = vec![3];
        let mut e = a.clone();
        e.next_index = vec![1];
        e.match_index = vec![2, 3];
        assert_ne!(h(&d), h(&e));
    }
}
