//! The sequential key-value store that client histories must linearize to.

use crate::types::{Answer, Op, Value};
use stateright::semantics::SequentialSpec;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvSpec {
    kv: [Option<Value>; 2],
}

impl SequentialSpec for KvSpec {
    type Op = Op;
    type Ret = Answer;

    /// The same function the servers' state machines run: the specification of one
    /// operation is not where a replication bug lives, so it is not written twice.
    fn invoke(&mut self, op: &Op) -> Answer {
        crate::server::run(&mut self.kv, *op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Op;
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

    #[test]
    fn a_read_after_a_completed_write_must_see_it() {
        let mut t = LinearizabilityTester::<u8, KvSpec>::new(KvSpec::default());
        t.on_invoke(0, Op::Put { key: 0, value: 1 }).unwrap();
        t.on_return(0, Answer::Ok).unwrap();
        t.on_invoke(1, Op::Get { key: 0 }).unwrap();
        t.on_return(1, Answer::Value(None)).unwrap();
        assert!(!t.is_consistent());
    }

    #[test]
    fn a_concurrent_read_may_miss_the_write() {
        let mut t = LinearizabilityTester::<u8, KvSpec>::new(KvSpec::default());
        t.on_invoke(0, Op::Put { key: 0, value: 1 }).unwrap();
        t.on_invoke(1, Op::Get { key: 0 }).unwrap();
        t.on_return(1, Answer::Value(None)).unwrap();
        t.on_return(0, Answer::Ok).unwrap();
        assert!(t.is_consistent());
    }
}
