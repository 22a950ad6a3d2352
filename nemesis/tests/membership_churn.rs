//! Membership changes and leadership transfers in the fault schedule, on a cluster under load:
//! the leader hands its leadership to another voter (`transfer-leader`), and a voter other
//! than the leader is removed, then added back as a learner and promoted
//! (`membership-churn`), all through the nodes' HTTP API. The run must have no anomaly (the
//! linearizability, lost-write, double-application and convergence checks unchanged), at
//! least one transfer and one removal with its re-addition must have been made, and every
//! node must be a voter again at the end.

mod common;

use std::time::Duration;

use raft_nemesis::membership::Op;
use raft_nemesis::schedule::Kind;

#[test]
fn transfers_and_membership_churn_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("membership_churn", dir.path());
    cfg.max_time = Duration::from_secs(15);
    cfg.faults = vec![Kind::TransferLeader, Kind::MembershipChurn];
    common::seed_drawing(
        "membership_churn",
        &mut cfg,
        &[(Kind::TransferLeader, 2), (Kind::MembershipChurn, 2)],
    );
    let seed = cfg.seed;
    let report = common::run_clean(&cfg);
    assert!(
        report.acknowledged_writes > 100,
        "{}",
        report.acknowledged_writes
    );
    let m = &report.membership;
    let answered = |op: Op| m.done.get(op.path()).copied().unwrap_or(0);
    assert!(
        answered(Op::TransferLeader) >= 1,
        "no transfer answered (seed {seed}): {m:?}"
    );
    assert!(
        answered(Op::Remove) >= 1,
        "no removal answered (seed {seed}): {m:?}"
    );
    // Every removed node came back: as a learner, then promoted (at the churn's heal, or at
    // the latest before the final checks).
    assert!(
        answered(Op::AddLearner) >= answered(Op::Remove) && answered(Op::AddLearner) >= 1,
        "{m:?}"
    );
    assert!(answered(Op::Promote) >= answered(Op::AddLearner), "{m:?}");
    assert_eq!(
        report.final_config,
        Some((vec![1, 2, 3], vec![])),
        "the configuration was not restored (seed {seed})"
    );
    assert!(report.restored_at_end.is_some());
    // The transfers' effect was looked at (the monitor saw the target lead, or not).
    assert_eq!(
        report.transfer_took_over.len()
            + report.transfer_other_leader.len()
            + report.transfer_not_taken,
        answered(Op::TransferLeader) as usize,
        "{:?} / {:?} / {}",
        report.transfer_took_over,
        report.transfer_other_leader,
        report.transfer_not_taken
    );
}
