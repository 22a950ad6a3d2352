//! Fuzzing the peer wire format with proptest (stable Rust has no cargo-fuzz): the frame
//! decoder, the length-delimited framing with its size limit, and the handshake, on random
//! bytes and on structured mutations (bit flips, truncations, overwritten length fields,
//! insertions, removals) of valid encodings. Bad input must be an error, never a panic, a hang
//! or an allocation the input did not pay for.
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test --release -p raft-node --test fuzz_codec`;
//! a failure prints its seed, replayed with `PROPTEST_RNG_SEED=<seed>`.

mod fuzz_support;

use bytes::BytesMut;
use futures_util::SinkExt;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, Encoder};

use fuzz_support::{apply, config, envelope, mutation, Mutation};
use raft_node::runtime::codec::{
    decode, encode, framing, handshake_framing, Frame, HANDSHAKE_MAX_FRAME, MAX_FRAME, NONCE,
    WIRE_VERSION,
};
use raft_node::runtime::handshake::{self, HandshakeError, PeerAuth};

fn frame() -> impl Strategy<Value = Frame> {
    let nonce = any::<[u8; NONCE]>();
    prop_oneof![
        (".{0,20}", any::<u64>(), any::<u64>(), nonce, any::<u64>()).prop_map(
            |(cluster_id, from, to, nonce, incarnation)| Frame::Hello {
                cluster_id,
                from,
                to,
                nonce,
                incarnation,
            }
        ),
        (nonce, proptest::option::of(nonce), any::<u64>()).prop_map(
            |(nonce, proof, incarnation)| Frame::Challenge {
                nonce,
                proof,
                incarnation
            }
        ),
        proptest::option::of(nonce).prop_map(|proof| Frame::Auth { proof }),
        Just(Frame::Welcome),
        ".{0,40}".prop_map(|reason| Frame::Refused { reason }),
        ".{0,40}".prop_map(|reason| Frame::Replaced { reason }),
        envelope().prop_map(Frame::Message),
    ]
}

/// Decoding is total: an error or a frame that encodes back to the same bytes.
fn check_decode(body: &[u8]) {
    if let Ok(f) = decode(body) {
        assert_eq!(
            &encode(&f)[..],
            body,
            "a decoded frame re-encodes to its input"
        );
    }
}

proptest! {
    #![proptest_config(config("frame decoder", 2000))]

    #[test]
    fn valid_frames_round_trip(f in frame()) {
        prop_assert_eq!(decode(&encode(&f)).unwrap(), f);
    }

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), versioned in any::<bool>()) {
        let mut body = body;
        if versioned && !body.is_empty() {
            body[0] = WIRE_VERSION;
        }
        check_decode(&body);
    }

    #[test]
    fn mutated_frames_are_errors_or_other_valid_frames(
        f in frame(),
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut body = encode(&f).to_vec();
        for m in &ms {
            apply(&mut body, m);
        }
        check_decode(&body);
    }
}

/// Run `codec` over a byte stream the way `Framed` does: decode until it wants more, then
/// `decode_eof`. Returns the frames or the first error, and the buffer's largest capacity.
fn deframe(
    mut codec: tokio_util::codec::LengthDelimitedCodec,
    stream: &[u8],
    chunk: usize,
) -> (Result<Vec<BytesMut>, std::io::Error>, usize) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut max_cap = 0;
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let r = codec.decode(&mut buf);
            max_cap = max_cap.max(buf.capacity());
            match r {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (Err(e), max_cap),
            }
        }
    }
    let r = loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break Ok(out),
            Err(e) => break Err(e),
        }
    };
    (r, max_cap.max(buf.capacity()))
}

proptest! {
    #![proptest_config(config("framing", 1000))]

    /// Streams of valid frames, mutated, through both framings. Whatever a length prefix
    /// claims, the buffer stays within the input plus the framing's limit (4 KiB before the
    /// handshake completes, 16 MiB after), and every frame that comes out is at most the limit.
    #[test]
    fn framed_streams_of_mutated_frames_never_panic_nor_overallocate(
        fs in proptest::collection::vec(frame(), 1..4),
        ms in proptest::collection::vec(mutation(), 0..4),
        chunk in 1usize..64,
        handshake in any::<bool>(),
    ) {
        let (make, limit): (fn() -> tokio_util::codec::LengthDelimitedCodec, usize) = if handshake {
            (handshake_framing, HANDSHAKE_MAX_FRAME)
        } else {
            (framing, MAX_FRAME)
        };
        let mut stream = BytesMut::new();
        for f in &fs {
            framing().encode(encode(f), &mut stream).unwrap();
        }
        let mut stream = stream.to_vec();
        for m in &ms {
            apply(&mut stream, m);
        }
        let (frames, cap) = deframe(make(), &stream, chunk);
        prop_assert!(
            cap <= stream.len() + limit + 8 * 1024,
            "buffer grew to {} for {} input bytes", cap, stream.len()
        );
        if let Ok(frames) = frames {
            for body in frames {
                prop_assert!(body.len() <= limit);
                check_decode(&body);
            }
        }
        if ms.is_empty() && !handshake {
            let (frames, _) = deframe(framing(), &stream, chunk);
            let got: Vec<Frame> = frames.unwrap().iter().map(|b| decode(b).unwrap()).collect();
            prop_assert_eq!(got, fs);
        }
    }
}

#[test]
fn a_length_prefix_claiming_more_than_the_limit_is_refused_before_reading_the_body() {
    for (codec, limit) in [
        (framing as fn() -> _, MAX_FRAME),
        (handshake_framing, HANDSHAKE_MAX_FRAME),
    ] {
        for claim in [limit as u32 + 1, 1 << 30, u32::MAX] {
            let mut stream = claim.to_be_bytes().to_vec();
            stream.extend_from_slice(&[0; 16]);
            let (r, cap) = deframe(codec(), &stream, 4096);
            let e = r.unwrap_err();
            assert!(e.to_string().contains("frame size too big"), "{e}");
            assert!(cap < 4096, "allocated {cap} bytes for a refused frame");
        }
    }
    // Before the handshake, a claim within the limit reserves at most the limit.
    let (_, cap) = deframe(
        handshake_framing(),
        &(HANDSHAKE_MAX_FRAME as u32).to_be_bytes(),
        4,
    );
    assert!(cap <= 2 * HANDSHAKE_MAX_FRAME, "{cap}");
}

/// `frames` as one byte stream, then `ms` applied to it, for the handshake fuzzing below.
fn handshake_stream(frames: &[Frame], ms: &[Mutation]) -> Vec<u8> {
    let mut codec = framing();
    let mut out = BytesMut::new();
    for f in frames {
        codec.encode(encode(f), &mut out).unwrap();
    }
    let mut stream = out.to_vec();
    for m in ms {
        apply(&mut stream, m);
    }
    stream
}

/// Both ends of the fuzzed handshakes share this secret.
fn secret_auth() -> PeerAuth {
    PeerAuth::new("c", Some(b"fuzzing secret 0123456789".to_vec()))
}

fn local_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config("handshake", 64))]

    /// A listener with a peer secret, fed a mutated dialer stream (a plausible `Hello` and
    /// `Auth` with random or replayed proofs) over loopback TCP: it must refuse (or see the
    /// connection end), within the timeout, never panic, and never accept.
    #[test]
    fn the_listener_refuses_mutated_handshakes(
        nonce in any::<[u8; NONCE]>(),
        proof in proptest::option::of(any::<[u8; NONCE]>()),
        from in prop_oneof![Just(1u64), any::<u64>()],
        ms in proptest::collection::vec(mutation(), 0..3),
    ) {
        let stream = handshake_stream(&[
            Frame::Hello { cluster_id: "c".into(), from, to: 2, nonce, incarnation: 0 },
            Frame::Auth { proof },
        ], &ms);
        let r = local_runtime().block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                handshake::accept(s, &secret_auth(), 2, &[1, 3]).await.map(|(_, from)| from)
            });
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(&stream).await.unwrap();
            c.shutdown().await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(10), server).await
        });
        let r = r.expect("the listener hung").expect("the listener panicked");
        prop_assert!(
            matches!(r, Err(HandshakeError::Refused(_)) | Err(HandshakeError::Io(_))),
            "accepted a forged handshake: {:?}", r.map(|_| ())
        );
    }

    /// A dialer with a peer secret, answered by a mutated listener stream: it must refuse.
    #[test]
    fn the_dialer_refuses_mutated_challenges(
        nonce in any::<[u8; NONCE]>(),
        proof in proptest::option::of(any::<[u8; NONCE]>()),
        ms in proptest::collection::vec(mutation(), 0..3),
    ) {
        let stream = handshake_stream(
            &[Frame::Challenge { nonce, proof, incarnation: 0 }, Frame::Welcome],
            &ms,
        );
        let r = local_runtime().block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let fake = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let _ = s.write_all(&stream).await;
                let _ = s.shutdown().await;
                // Hold the socket until the dialer is done with it.
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink).await;
            });
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                handshake::dial(s, &secret_auth(), 1, 2),
            )
            .await;
            fake.abort();
            r
        });
        let r = r.expect("the dialer hung");
        prop_assert!(r.is_err(), "the dialer accepted a forged challenge");
    }
}

#[test]
fn an_unmutated_forged_stream_is_refused_for_its_proof_not_its_framing() {
    // Sanity for the test above: without mutations, the refusal is the proof check.
    let auth = secret_auth();
    let reason = local_runtime().block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            handshake::accept(s, &auth, 2, &[1, 3]).await.map(|_| ())
        });
        let mut c = tokio_util::codec::Framed::new(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
            framing(),
        );
        c.send(encode(&Frame::Hello {
            cluster_id: "c".into(),
            from: 1,
            to: 2,
            nonce: [0; NONCE],
            incarnation: 0,
        }))
        .await
        .unwrap();
        c.send(encode(&Frame::Auth {
            proof: Some([0; NONCE]),
        }))
        .await
        .unwrap();
        match server.await.unwrap() {
            Err(HandshakeError::Refused(r)) => r,
            other => panic!("{:?}", other.map(|_| ())),
        }
    });
    assert!(reason.contains("failed the peer-secret proof"), "{reason}");
}
