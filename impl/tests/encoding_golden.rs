//! The bytes the node writes and sends for one fixed set of values: log entries (WAL records),
//! peer messages (wire frames), a snapshot with keys and sessions (snapshot files), the hard
//! state, and the JSON of a recorded message and reply. The expected bytes were produced by
//! the build before the state machine became a type parameter of the core; a change here
//! means nodes of the two builds can no longer read each other's disks or messages. The one
//! change since: a snapshot records its configuration (`membership`, one byte `00` for none
//! at the end of `install`; `"membership":null` in its JSON), with wire version 5 and
//! snapshot file version 2 (which still reads version 1 files).

use raft_core::{
    Answer, ClientReply, ClientResponse, Command, Entry, Envelope, HardState, Kv, KvStateMachine,
    Message, Op, Session, Snapshot,
};

fn entries() -> Vec<Entry> {
    let client = |seq, op| Command::Client {
        client_id: 7,
        seq,
        op,
    };
    vec![
        Entry {
            term: 1,
            command: Command::Noop,
        },
        Entry {
            term: 1,
            command: Command::Register { nonce: 99 },
        },
        Entry {
            term: 2,
            command: client(
                1,
                Op::Put {
                    key: "k".into(),
                    value: "v".into(),
                },
            ),
        },
        Entry {
            term: 2,
            command: client(2, Op::Get { key: "k".into() }),
        },
        Entry {
            term: 3,
            command: client(3, Op::Delete { key: "k".into() }),
        },
        Entry {
            term: 3,
            command: client(
                4,
                Op::Cas {
                    key: "k".into(),
                    expected: None,
                    new: Some("w".into()),
                },
            ),
        },
    ]
}

fn snapshot() -> Snapshot {
    let mut kv = Kv::default();
    kv.insert("a".into(), "1".into());
    let mut sessions = im::OrdMap::new();
    sessions.insert(
        2,
        Session {
            last_seq: 3,
            answer: Answer::Cas {
                swapped: true,
                previous: Some("0".into()),
            },
            last_index: 5,
        },
    );
    Snapshot {
        last_included_index: 6,
        last_included_term: 3,
        state: KvStateMachine::from_parts(kv, sessions),
        membership: None,
    }
}

fn append() -> Envelope {
    Envelope {
        from: 1,
        to: 2,
        msg: Message::AppendEntries {
            term: 3,
            leader: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: entries(),
            leader_commit: 4,
        },
    }
}

fn install() -> Envelope {
    Envelope {
        from: 1,
        to: 3,
        msg: Message::InstallSnapshot {
            term: 3,
            leader: 1,
            snapshot: snapshot(),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encodings() -> Vec<(&'static str, String)> {
    let reply = ClientReply::Response(ClientResponse {
        client_id: 7,
        seq: 1,
        answer: Answer::Value(Some("v".into())),
    });
    vec![
        ("entries", hex(&bincode::serialize(&entries()).unwrap())),
        ("append", hex(&bincode::serialize(&append()).unwrap())),
        ("install", hex(&bincode::serialize(&install()).unwrap())),
        (
            "hard_state",
            hex(&bincode::serialize(&HardState {
                current_term: 3,
                voted_for: Some(2),
            })
            .unwrap()),
        ),
        ("append_json", serde_json::to_string(&append()).unwrap()),
        ("install_json", serde_json::to_string(&install()).unwrap()),
        ("reply_json", serde_json::to_string(&reply).unwrap()),
    ]
}

#[test]
fn entries_messages_snapshots_and_replies_encode_as_before() {
    let got = encodings();
    if std::env::var_os("PRINT_GOLDEN").is_some() {
        for (name, bytes) in &got {
            println!("{name} {bytes}");
        }
    }
    let want = golden();
    assert_eq!(got.len(), want.len());
    for ((name, bytes), (want_name, want_bytes)) in got.iter().zip(want) {
        assert_eq!(*name, want_name);
        assert_eq!(*bytes, want_bytes, "{name} encodes differently");
    }
}

fn golden() -> Vec<(&'static str, String)> {
    [
        (
            "entries",
            "06000000000000000100000000000000000000000100000000000000020000006300000000000000020000000000000001000000070000000000000001000000000000000000000001000000000000006b010000000000000076020000000000000001000000070000000000000002000000000000000100000001000000000000006b030000000000000001000000070000000000000003000000000000000200000001000000000000006b030000000000000001000000070000000000000004000000000000000300000001000000000000006b0001010000000000000077",
        ),
        (
            "append",
            "0100000000000000020000000000000002000000030000000000000001000000000000000000000000000000000000000000000006000000000000000100000000000000000000000100000000000000020000006300000000000000020000000000000001000000070000000000000001000000000000000000000001000000000000006b010000000000000076020000000000000001000000070000000000000002000000000000000100000001000000000000006b030000000000000001000000070000000000000003000000000000000200000001000000000000006b030000000000000001000000070000000000000004000000000000000300000001000000000000006b00010100000000000000770400000000000000",
        ),
        (
            "install",
            "010000000000000003000000000000000400000003000000000000000100000000000000060000000000000003000000000000000100000000000000010000000000000061010000000000000031010000000000000002000000000000000300000000000000020000000101010000000000000030050000000000000000",
        ),
        (
            "hard_state",
            "0300000000000000010200000000000000",
        ),
        (
            "append_json",
            r#"{"from":1,"to":2,"msg":{"AppendEntries":{"term":3,"leader":1,"prev_log_index":0,"prev_log_term":0,"entries":[{"term":1,"command":"Noop"},{"term":1,"command":{"Register":{"nonce":99}}},{"term":2,"command":{"Client":{"client_id":7,"seq":1,"op":{"Put":{"key":"k","value":"v"}}}}},{"term":2,"command":{"Client":{"client_id":7,"seq":2,"op":{"Get":{"key":"k"}}}}},{"term":3,"command":{"Client":{"client_id":7,"seq":3,"op":{"Delete":{"key":"k"}}}}},{"term":3,"command":{"Client":{"client_id":7,"seq":4,"op":{"Cas":{"key":"k","expected":null,"new":"w"}}}}}],"leader_commit":4}}}"#,
        ),
        (
            "install_json",
            r#"{"from":1,"to":3,"msg":{"InstallSnapshot":{"term":3,"leader":1,"snapshot":{"last_included_index":6,"last_included_term":3,"state":{"kv":{"a":"1"},"sessions":{"2":{"last_seq":3,"answer":{"Cas":{"swapped":true,"previous":"0"}},"last_index":5}}},"membership":null}}}}"#,
        ),
        (
            "reply_json",
            r#"{"Response":{"client_id":7,"seq":1,"answer":{"Value":"v"}}}"#,
        ),
    ]
    .into_iter()
    .map(|(name, bytes): (&'static str, &str)| (name, bytes.to_string()))
    .collect()
}
