//! The peer handshake over loopback TCP: success with and without a shared secret, and a
//! refusal, on the side that detects it, for a peer without the secret, with the wrong secret,
//! from another cluster, with an unknown id, speaking another wire version, or replaying a
//! recorded handshake. The last test runs the transport itself and checks the warning logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use raft_core::{Envelope, Message};
use raft_node::runtime::codec::{decode, encode, framing, Frame, WIRE_VERSION};
use raft_node::runtime::handshake::{
    self, Conn, HandshakeError, Incarnations, PeerAuth, Role, Transcript,
};
use raft_node::runtime::identity::PeerBook;
use raft_node::runtime::metrics::Metrics;
use raft_node::runtime::node_input::NodeInput;
use raft_node::runtime::snapshot_transfer::SnapshotOptions;
use raft_node::runtime::transport::{listen_with_auth, PeerTiming, Transport};

fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions {
        chunk_bytes: 1 << 20,
        resend_after: Duration::from_secs(1),
    }
}

const SECRET: &[u8] = b"correct horse battery staple";
/// The transcript of node 1 dialing node 2, neither with a book.
fn transcript(nd: [u8; 32], nl: [u8; 32]) -> Transcript {
    Transcript {
        dialer: 1,
        listener: 2,
        nd,
        nl,
        incarnations: Incarnations {
            dialer: 0,
            listener: 0,
        },
    }
}

fn auth(cluster: &str, secret: Option<&[u8]>) -> PeerAuth {
    PeerAuth::new(cluster, secret.map(|s| s.to_vec()))
}

/// Node 1 dials node 2 (which knows node 1 and node 3).
async fn pair(
    dialer: PeerAuth,
    listener: PeerAuth,
    from: u64,
    to: u64,
) -> (
    Result<Conn, HandshakeError>,
    Result<(Conn, u64), HandshakeError>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        handshake::accept(s, &listener, 2, &[1, 3]).await
    });
    let s = TcpStream::connect(addr).await.unwrap();
    let d = handshake::dial(s, &dialer, from, to).await;
    (d, server.await.unwrap())
}

fn refused(r: Result<impl Sized, HandshakeError>) -> String {
    match r {
        Err(HandshakeError::Refused(reason)) => reason,
        Err(e) => panic!("expected a refusal, got the I/O error {e}"),
        Ok(_) => panic!("expected a refusal, the handshake succeeded"),
    }
}

#[tokio::test]
async fn the_same_secret_or_no_secret_on_both_sides_connects() {
    for secret in [Some(SECRET), None] {
        let (d, l) = pair(auth("c", secret), auth("c", secret), 1, 2).await;
        let mut d = d.unwrap();
        let (mut l, from) = l.unwrap();
        assert_eq!(from, 1);
        // The connection carries messages after the handshake.
        let env = Envelope {
            from: 1,
            to: 2,
            msg: Message::RequestVoteResponse {
                term: 1,
                granted: true,
                pre_vote: false,
            },
        };
        d.send(encode(&Frame::Message(env.clone()))).await.unwrap();
        let got = decode(&l.next().await.unwrap().unwrap()).unwrap();
        assert_eq!(got, Frame::Message(env));
    }
}

#[tokio::test]
async fn a_peer_without_the_secret_is_refused() {
    // The listener has the secret, the dialer has none.
    let (d, l) = pair(auth("c", None), auth("c", Some(SECRET)), 1, 2).await;
    let d = refused(d);
    assert!(
        d.contains("proves a peer secret but this node has none"),
        "{d}"
    );
    let l = refused(l);
    assert!(l.contains("node 1 refused our challenge"), "{l}");
    // The dialer has the secret, the listener has none.
    let (d, l) = pair(auth("c", Some(SECRET)), auth("c", None), 1, 2).await;
    let d = refused(d);
    assert!(d.contains("node 2 sent no proof of the peer secret"), "{d}");
    refused(l);
}

#[tokio::test]
async fn a_peer_with_the_wrong_secret_is_refused() {
    let (d, l) = pair(
        auth("c", Some(b"not the secret, but long enough")),
        auth("c", Some(SECRET)),
        1,
        2,
    )
    .await;
    let d = refused(d);
    assert!(d.contains("node 2 failed the peer-secret proof"), "{d}");
    refused(l);
}

#[tokio::test]
async fn another_cluster_an_unknown_node_or_the_wrong_destination_is_refused() {
    let cases = [
        ("other", 1, 2, "wrong cluster id \"other\""),
        ("c", 9, 2, "unknown node id 9"),
        ("c", 1, 3, "addressed to node 3, this is node 2"),
    ];
    for (cluster, from, to, want) in cases {
        let (d, l) = pair(
            auth(cluster, Some(SECRET)),
            auth("c", Some(SECRET)),
            from,
            to,
        )
        .await;
        let l = refused(l);
        assert!(l.contains(want), "{l}");
        let d = refused(d);
        assert!(
            d.contains("refused our handshake") && d.contains(want),
            "{d}"
        );
    }
}

/// A raw connection, playing an attacker who speaks the wire format.
async fn raw(
    addr: std::net::SocketAddr,
) -> Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec> {
    Framed::new(TcpStream::connect(addr).await.unwrap(), framing())
}

async fn recv(c: &mut Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>) -> Frame {
    decode(&c.next().await.unwrap().unwrap()).unwrap()
}

/// A listener accepting `n` connections with `a`; returns their outcomes.
async fn listener(
    a: PeerAuth,
    n: usize,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Vec<Result<u64, HandshakeError>>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let (s, _) = l.accept().await.unwrap();
            out.push(handshake::accept(s, &a, 2, &[1, 3]).await.map(|(_, f)| f));
        }
        out
    });
    (addr, h)
}

#[tokio::test]
async fn a_replayed_handshake_is_refused() {
    let (addr, h) = listener(auth("c", Some(SECRET)), 2).await;
    let me = auth("c", Some(SECRET));
    let nd = [7u8; 32];
    let hello = encode(&Frame::Hello {
        cluster_id: "c".into(),
        from: 1,
        to: 2,
        nonce: nd,
        incarnation: 0,
    });
    // An honest session, recorded.
    let mut c = raw(addr).await;
    c.send(hello.clone()).await.unwrap();
    let Frame::Challenge {
        nonce: nl, proof, ..
    } = recv(&mut c).await
    else {
        panic!("no challenge");
    };
    assert_eq!(proof, me.proof(Role::Listener, &transcript(nd, nl)));
    let auth_frame = encode(&Frame::Auth {
        proof: me.proof(Role::Dialer, &transcript(nd, nl)),
    });
    c.send(auth_frame.clone()).await.unwrap();
    assert_eq!(recv(&mut c).await, Frame::Welcome);
    // The same bytes again, by someone who does not know the secret: the listener's nonce is
    // new, so the recorded proof does not match.
    let mut c = raw(addr).await;
    c.send(hello).await.unwrap();
    let Frame::Challenge { nonce: nl2, .. } = recv(&mut c).await else {
        panic!("no challenge");
    };
    assert_ne!(nl, nl2);
    c.send(auth_frame).await.unwrap();
    let Frame::Refused { reason } = recv(&mut c).await else {
        panic!("replay accepted");
    };
    assert!(reason.contains("failed the peer-secret proof"), "{reason}");
    let results = h.await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &1);
    let l = refused(results.into_iter().nth(1).unwrap());
    assert!(l.contains("node 1 failed the peer-secret proof"), "{l}");
}

#[tokio::test]
async fn a_replayed_challenge_is_refused_by_the_dialer() {
    // A fake listener that replays a challenge recorded from an earlier session.
    let real = auth("c", Some(SECRET));
    let old_nd = [1u8; 32];
    let old_nl = [2u8; 32];
    let recorded = encode(&Frame::Challenge {
        nonce: old_nl,
        proof: real.proof(Role::Listener, &transcript(old_nd, old_nl)),
        incarnation: 0,
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut c = Framed::new(s, framing());
        let _hello = c.next().await.unwrap().unwrap();
        c.send(recorded).await.unwrap();
        recv(&mut c).await
    });
    let d = handshake::dial(TcpStream::connect(addr).await.unwrap(), &real, 1, 2).await;
    let d = refused(d);
    assert!(d.contains("node 2 failed the peer-secret proof"), "{d}");
    let Frame::Refused { reason } = fake.await.unwrap() else {
        panic!("the dialer did not refuse");
    };
    assert_eq!(reason, d);
}

#[tokio::test]
async fn a_missing_proof_and_another_wire_version_are_refused() {
    let (addr, h) = listener(auth("c", Some(SECRET)), 2).await;
    // Right cluster and ids, but no proof.
    let mut c = raw(addr).await;
    c.send(encode(&Frame::Hello {
        cluster_id: "c".into(),
        from: 1,
        to: 2,
        nonce: [3; 32],
        incarnation: 0,
    }))
    .await
    .unwrap();
    assert!(matches!(recv(&mut c).await, Frame::Challenge { .. }));
    c.send(encode(&Frame::Auth { proof: None })).await.unwrap();
    let Frame::Refused { reason } = recv(&mut c).await else {
        panic!("accepted without a proof");
    };
    assert!(reason.contains("sent no proof"), "{reason}");
    // A version-1 handshake (the old format): refused, and told so in the current version.
    let mut c = raw(addr).await;
    let mut old = encode(&Frame::Welcome).to_vec();
    old[0] = 1;
    c.send(bytes::Bytes::from(old)).await.unwrap();
    let Frame::Refused { reason } = recv(&mut c).await else {
        panic!("old version accepted");
    };
    assert!(
        reason.contains(&format!(
            "unsupported wire version 1 (this node speaks {WIRE_VERSION})"
        )),
        "{reason}"
    );
    let r = h.await.unwrap();
    assert!(refused(r.into_iter().nth(1).unwrap()).contains("wire version 1"));
}

/// Collects what `tracing` writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_transport_delivers_with_the_secret_and_logs_a_refusal_without_it() {
    let logs = Logs::default();
    let writer = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let listen_metrics = Arc::new(Metrics::default());
    tokio::spawn(listen_with_auth(
        l,
        Arc::new(auth("c", Some(SECRET))),
        2,
        vec![1, 3],
        Duration::from_secs(2),
        None,
        tx,
        listen_metrics.clone(),
    ));
    let env = |from| Envelope {
        from,
        to: 2,
        msg: Message::RequestVoteResponse {
            term: 4,
            granted: false,
            pre_vote: true,
        },
    };
    // Node 3 has a wrong secret: refused, logged, counted; nothing delivered.
    let bad_metrics = Arc::new(Metrics::default());
    let bad = Transport::start_with_auth(
        Arc::new(auth("c", Some(b"a wrong secret of some length"))),
        3,
        &[(2, addr)],
        4,
        PeerTiming::from_election_timeout(Duration::from_millis(600)),
        snapshot_options(),
        bad_metrics.clone(),
    );
    // Node 1 has the right one.
    let good = Transport::start_with_auth(
        Arc::new(auth("c", Some(SECRET))),
        1,
        &[(2, addr)],
        4,
        PeerTiming::from_election_timeout(Duration::from_millis(600)),
        snapshot_options(),
        Arc::new(Metrics::default()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        good.send(env(1));
        bad.send(env(3));
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(NodeInput::Peer(e))) => break e,
            Ok(_) => panic!("unexpected input"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "nothing delivered"),
        }
    };
    assert_eq!(got, env(1));
    let load = |m: &Metrics| {
        m.handshakes_refused
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while load(&bad_metrics) == 0 || load(&listen_metrics) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no refusal counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only node 1's messages ever arrive.
    while let Ok(Some(NodeInput::Peer(e))) =
        tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
    {
        assert_eq!(e.from, 1);
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("peer handshake refused")
            && l.contains("node 2 failed the peer-secret proof")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("refused peer connection")
            && l.contains("node 3 refused our challenge")),
        "{text}"
    );
    assert!(
        !text.contains("correct horse"),
        "the secret must never be logged"
    );
}

/// Books in a temporary directory: node 1's (dialer) and node 2's (listener).
fn booked(dir: &std::path::Path, name: &str, incarnation: u64) -> Arc<PeerBook> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    Arc::new(PeerBook::load(&d, incarnation).unwrap())
}

#[tokio::test]
async fn a_reinitialized_peer_is_refused_in_both_directions_and_told_it_was_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let one = booked(tmp.path(), "n1", 0x11);
    let two = booked(tmp.path(), "n2", 0x22);
    let with = |b: &Arc<PeerBook>| auth("c", Some(SECRET)).with_book(b.clone());
    // First contact: each side records the other's incarnation.
    let (d, l) = pair(with(&one), with(&two), 1, 2).await;
    assert!(d.is_ok() && l.is_ok());
    assert_eq!((one.known(2), two.known(1)), (Some(0x22), Some(0x11)));

    // Node 1 re-initialized (a new incarnation, an empty book) dials node 2: node 2 refuses it,
    // and node 1 learns that it was replaced.
    let one_again = booked(tmp.path(), "n1-again", 0x33);
    let told = tokio::spawn(one_again.replaced());
    let (d, l) = pair(with(&one_again), with(&two), 1, 2).await;
    let l = refused(l);
    assert!(l.contains("re-initialized"), "{l}");
    match d {
        Err(HandshakeError::Replaced(reason)) => {
            assert!(reason.contains("node 2 says"), "{reason}")
        }
        other => panic!("the replaced node was not told: {:?}", other.err()),
    }
    assert!(told.await.unwrap().contains("incarnation 0000000000000033"));
    assert_eq!(
        two.known(1),
        Some(0x11),
        "the book keeps the first incarnation"
    );

    // Node 2 dials the re-initialized node 1 (as listener): node 2 refuses it after checking
    // its challenge, and the listener learns it was replaced.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let as_listener = with(&one_again);
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        handshake::accept(s, &as_listener, 1, &[2, 3]).await
    });
    let d = handshake::dial(TcpStream::connect(addr).await.unwrap(), &with(&two), 2, 1).await;
    assert!(refused(d).contains("re-initialized"));
    assert!(matches!(
        server.await.unwrap(),
        Err(HandshakeError::Replaced(_))
    ));

    // The incarnations are covered by the proofs: a listener whose challenge claims another
    // incarnation than the one its proof was made for fails the proof check.
    let me = auth("c", Some(SECRET));
    let real = transcript([5; 32], [6; 32]);
    let mut forged = real;
    forged.incarnations.listener = 0x99;
    assert_ne!(
        me.proof(Role::Listener, &real),
        me.proof(Role::Listener, &forged)
    );
}
