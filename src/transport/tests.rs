//! Bytes from the network never panic the decoder; the handshake admits the
//! holder of a committee key and refuses everyone else, both ways.

use super::frame::{codec, Frame, Welcome, MAX_FRAME_BYTES};
use super::handshake::{admit_node, join_hub, HandshakeError};
use crate::actors::{Destination, Envelope, Origin};
use crate::app::Tx;
use crate::crypto::{Digest, Keypair};
use crate::detect::{AccusationReason, Proof, Report};
use crate::ledger::{AccountId, Ledger, TxId};
use crate::protocol::{
    AgentId, Batch, ClientId, Committee, Epoch, Evidence, Message, ProtocolParams, Request, Seq, SignedMessage, View,
};
use bytes::BytesMut;
use proptest::prelude::*;
use std::sync::Arc;
use tokio_util::codec::{Decoder, Framed};

fn request(seed: u8) -> Request {
    let owner = Keypair::from_seed([seed; 32]);
    let to = AccountId(Keypair::from_seed([seed.wrapping_add(1); 32]).public_key());
    let mut transfer = Tx::transfer(TxId([seed; 16]), AccountId(owner.public_key()), to, 7, 0);
    transfer.as_transfer_mut().unwrap().memo = Some("rent".into());
    Request { client: ClientId(1), tx: transfer.sign(&owner) }
}

/// Two prepares `signer` signed for one slot with different digests.
fn equivocation(signer: AgentId, keypair: &Keypair) -> Evidence {
    let prepare = |digest: &[u8]| Message::Prepare { view: View(0), seq: Seq(1), digest: Digest::of(digest) };
    let sign = |message| Arc::new(SignedMessage::sign(message, Epoch(0), signer, keypair));
    Evidence::Equivocation { first: sign(prepare(b"one")), second: sign(prepare(b"two")) }
}

/// One report of each kind, all by `reporter`.
fn reports_by(reporter: AgentId) -> Vec<Report> {
    let keypair = Keypair::from_seed([9; 32]);
    let double_spend = Proof::DoubleSpend { first: Box::new(request(1).tx), second: Box::new(request(2).tx) };
    vec![
        Report::Proof { reporter, proof: Proof::Equivocation(equivocation(AgentId(0), &keypair)) },
        Report::Proof { reporter, proof: double_spend },
        Report::Accusation { accuser: reporter, accused: AgentId(3), reason: AccusationReason::BadSignature },
        Report::CensorshipStrike { reporter, primary: AgentId(0), view: View(2) },
    ]
}

/// A frame of each kind a running connection carries, encoded (built once).
fn real_frames() -> Vec<Vec<u8>> {
    static FRAMES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(encode_real_frames).clone()
}

fn encode_real_frames() -> Vec<Vec<u8>> {
    let keypair = Keypair::from_seed([9; 32]);
    let batch = Arc::new(Batch::of(vec![request(1), request(2)]));
    let digest = Digest::of(b"batch");
    let pre_prepare = Message::PrePrepare { view: View(0), seq: Seq(1), digest, batch };
    let signed = Arc::new(SignedMessage::sign(pre_prepare, Epoch(0), AgentId(0), &keypair));
    let requests = Envelope::Requests(Arc::new(vec![request(3)]));
    let frames = [
        Frame::Deliver {
            from: Origin::Validator(AgentId(0)),
            envelopes: vec![Envelope::Consensus(signed.clone()), requests.clone()],
        },
        Frame::Route(vec![(Destination::AllValidatorsExcept(AgentId(0)), Envelope::Consensus(signed))]),
        Frame::Status(Box::default()),
        Frame::Refused { reason: "no".into() },
        Frame::Reports(reports_by(AgentId(1))),
        Frame::AskNonces { query: 7, accounts: vec![AccountId(keypair.public_key())] },
        Frame::Nonces { query: 7, nonces: vec![3, u64::MAX] },
    ];
    frames.iter().map(|frame| frame.encode().unwrap().to_vec()).collect()
}

#[test]
fn every_frame_round_trips() {
    for bytes in real_frames() {
        let frame = Frame::decode(&bytes).unwrap();
        assert_eq!(frame.encode().unwrap().to_vec(), bytes);
    }
}

#[test]
fn reports_arrive_as_they_were_sent() {
    let sent = reports_by(AgentId(2));
    let bytes = Frame::Reports(sent.clone()).encode().unwrap();
    match Frame::decode(&bytes).unwrap() {
        Frame::Reports(received) => assert_eq!(received, sent),
        other => panic!("a reports frame decoded as {}", other.kind()),
    }
}

#[test]
fn a_node_keeps_only_its_own_reports() {
    let mut reports = reports_by(AgentId(1));
    reports.extend(reports_by(AgentId(2)));
    let (own, foreign) = super::peer::own_reports(AgentId(1), reports);
    assert_eq!((own, foreign), (reports_by(AgentId(1)), 4));
}

#[test]
fn every_truncation_of_a_real_frame_is_an_error() {
    for bytes in real_frames() {
        for cut in 0..bytes.len() {
            assert!(Frame::decode(&bytes[..cut]).is_err(), "a frame cut at {cut} of {} decoded", bytes.len());
        }
    }
}

#[test]
fn trailing_bytes_after_a_frame_are_an_error() {
    let mut bytes = real_frames().remove(0);
    bytes.push(0);
    assert!(Frame::decode(&bytes).is_err());
}

#[test]
fn the_codec_refuses_a_length_prefix_beyond_the_maximum() {
    let mut buffer = BytesMut::new();
    buffer.extend_from_slice(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes());
    buffer.extend_from_slice(&[0; 16]);
    assert!(codec().decode(&mut buffer).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Frame::decode(&bytes);
    }

    #[test]
    fn corrupted_real_frames_never_panic_the_decoder(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut frames = real_frames();
        let mut bytes = frames.swap_remove(which.index(frames.len()));
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        let _ = Frame::decode(&bytes);
    }

    #[test]
    fn random_streams_never_panic_the_codec(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut codec = codec();
        let mut buffer = BytesMut::new();
        for chunk in chunks {
            buffer.extend_from_slice(&chunk);
            while let Ok(Some(frame)) = codec.decode(&mut buffer) {
                let _ = Frame::decode(&frame);
            }
        }
    }
}

fn welcome(committee: &Committee) -> Welcome {
    let params = ProtocolParams::default();
    Welcome {
        id: AgentId(0),
        name: "bft-agent-1".into(),
        committees: vec![committee.clone()],
        params,
        genesis: crate::app::Application::snapshot(&crate::app::SwarmApp::new(Ledger::default())),
    }
}

/// Runs both sides of a handshake over an in-memory pipe.
fn handshake(
    node: &Keypair,
    hub: &Keypair,
    node_expects: &Keypair,
) -> (Result<Welcome, HandshakeError>, Result<Welcome, HandshakeError>) {
    let keys: Vec<_> = (0..4u8).map(|i| Keypair::from_seed([i; 32]).public_key()).collect();
    let committee = Committee::numbered(Epoch(0), &keys, "bft-agent-", None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (mut node_side, mut hub_side) = (Framed::new(a, codec()), Framed::new(b, codec()));
        let member = committee.clone();
        let admit = move |key| match member.members().iter().any(|m| m.public_key == key) {
            true => Ok(welcome(&member)),
            false => Err(format!("the key {key} is not registered with this hub")),
        };
        // The node hangs up when it is done, as a node process exits.
        let node_joins = async move { join_hub(&mut node_side, node, node_expects.public_key()).await };
        tokio::join!(node_joins, admit_node(&mut hub_side, hub, admit))
    })
}

#[test]
fn a_committee_key_is_admitted_and_learns_its_welcome() {
    let (node, hub) = (Keypair::from_seed([0; 32]), Keypair::from_seed([42; 32]));
    let (joined, admitted) = handshake(&node, &hub, &hub);
    assert_eq!(joined.unwrap().name, "bft-agent-1");
    assert_eq!(admitted.unwrap().id, AgentId(0));
}

#[test]
fn an_unregistered_key_is_refused_and_told_why() {
    let (stranger, hub) = (Keypair::from_seed([99; 32]), Keypair::from_seed([42; 32]));
    let (joined, admitted) = handshake(&stranger, &hub, &hub);
    match joined {
        Err(HandshakeError::Refused(reason)) => assert!(reason.contains("not registered"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(admitted.is_err());
}

#[test]
fn a_hub_without_the_expected_key_is_not_trusted() {
    let (node, impostor, real_hub) =
        (Keypair::from_seed([0; 32]), Keypair::from_seed([5; 32]), Keypair::from_seed([42; 32]));
    let (joined, _) = handshake(&node, &impostor, &real_hub);
    assert!(matches!(joined, Err(HandshakeError::WrongHub { .. })), "{joined:?}");
}

/// The keys of a committee of four validators, all remote, and the hub's key.
fn four_remote_members() -> (Vec<Keypair>, Keypair) {
    ((0..4u8).map(|i| Keypair::from_seed([i; 32])).collect(), Keypair::from_seed([42; 32]))
}

/// A hub on loopback for a swarm whose four members run elsewhere.
async fn listening_hub(keys: &[Keypair], hub_key: &Keypair) -> super::Hub {
    use crate::actors::{LaunchOptions, Swarm, SwarmSpec};
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public_keys, "bft-agent-", None).unwrap();
    let genesis = crate::app::SwarmApp::new(Ledger::default());
    let spec = SwarmSpec::new(committee, keys.to_vec(), ProtocolParams::default(), genesis).unwrap();
    let options = LaunchOptions { external_validators: (0..4).map(AgentId).collect(), ..LaunchOptions::default() };
    let swarm = Arc::new(Swarm::launch_with(spec, options).unwrap());
    super::Hub::listen(swarm, hub_key.clone(), "127.0.0.1:0").await.unwrap()
}

#[test]
fn the_hub_admits_its_remote_members_and_turns_away_a_refused_key_with_the_reason() {
    let (keys, hub_key) = four_remote_members();
    let public_keys: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    actix::System::new().block_on(async {
        let hub = listening_hub(&keys, &hub_key).await;
        hub.refuse(public_keys[2], "quarantined for equivocation".into());
        let join = |keypair: Keypair| {
            let (address, hub_key) = (hub.local_addr(), hub_key.public_key());
            async move {
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                join_hub(&mut Framed::new(stream, codec()), &keypair, hub_key).await
            }
        };
        match join(keys[2].clone()).await {
            Err(HandshakeError::Refused(reason)) => {
                assert!(reason.contains("quarantined for equivocation"), "{reason}")
            }
            other => panic!("a refused key got {other:?}"),
        }
        let welcome = join(keys[1].clone()).await.unwrap();
        assert_eq!((welcome.id, welcome.name.as_str()), (AgentId(1), "bft-agent-2"));

        // A quarantine, whoever decided it, closes the door to that validator's key.
        let quarantined = crate::events::LifecycleEvent::AgentQuarantined {
            timestamp: String::new(),
            agent: AgentId(3),
            reason: "equivocation".into(),
            quarantine_ms: 60_000,
        };
        hub.swarm().hub().do_send(crate::hooks::Publish(vec![quarantined]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match join(keys[3].clone()).await {
                Err(HandshakeError::Refused(reason)) => {
                    assert!(reason.contains("bft-agent-4 is quarantined (equivocation)"), "{reason}");
                    break;
                }
                other => {
                    assert!(std::time::Instant::now() < deadline, "still admitted after the quarantine: {other:?}")
                }
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn the_hub_convicts_on_a_nodes_own_reports_and_ignores_those_in_another_members_name() {
    use futures_util::SinkExt;
    let (keys, hub_key) = four_remote_members();
    actix::System::new().block_on(async {
        let hub = listening_hub(&keys, &hub_key).await;
        let stream = tokio::net::TcpStream::connect(hub.local_addr()).await.unwrap();
        let mut node = Framed::new(stream, codec());
        let welcome = join_hub(&mut node, &keys[1], hub_key.public_key()).await.unwrap();
        assert_eq!(welcome.id, AgentId(1));
        // With f = 1, two distinct accusers convict: node 1 may not be the second one.
        let accuse =
            |accuser| Report::Accusation { accuser, accused: AgentId(3), reason: AccusationReason::BadSignature };
        let reports = vec![accuse(AgentId(1)), accuse(AgentId(2))];
        node.send(Frame::Reports(reports).encode().unwrap()).await.unwrap();
        // Its own proof of agent 0's equivocation convicts on its own.
        let proof = Proof::Equivocation(equivocation(AgentId(0), &keys[0]));
        node.send(Frame::Reports(vec![Report::Proof { reporter: AgentId(1), proof }]).encode().unwrap()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let log = loop {
            let log = hub.swarm().detection_log().await.unwrap();
            if !log.is_empty() {
                break log;
            }
            assert!(std::time::Instant::now() < deadline, "no conviction from the node's proof");
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        // The proof came after the accusations on one connection: they were judged first.
        let convicted: Vec<_> = log.iter().map(|record| (record.agent_id, record.fault_type.as_str())).collect();
        assert_eq!(convicted, [(AgentId(0), "equivocation")]);
        let statuses = hub.swarm().status().await;
        let node_status = statuses.iter().find(|status| status.id == AgentId(1)).unwrap();
        assert_eq!(node_status.inbound_rejected.get("report-not-its-own"), Some(&1), "{node_status:?}");
    });
}

#[test]
fn a_refusal_before_the_hub_proves_its_key_is_not_believed_and_is_printable() {
    let (node, hub) = (Keypair::from_seed([0; 32]), Keypair::from_seed([42; 32]));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let joined = runtime.block_on(async {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (mut node_side, mut impostor) = (Framed::new(a, codec()), Framed::new(b, codec()));
        let impostor_refuses = async move {
            let _hello = super::handshake::receive(&mut impostor, std::time::Duration::from_secs(5)).await;
            let refused = Frame::Refused { reason: "\u{1b}[31mgo away\nnow".into() };
            super::handshake::send(&mut impostor, &refused).await.unwrap();
        };
        tokio::join!(join_hub(&mut node_side, &node, hub.public_key()), impostor_refuses).0
    });
    match joined {
        Err(error @ HandshakeError::UnprovenRefusal(_)) => {
            assert!(!error.is_fatal(), "anyone can say Refused: the node must try again");
            let text = error.to_string();
            assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text:?}");
            assert!(text.contains("\\u{1b}[31mgo away\\nnow"), "{text:?}");
        }
        other => panic!("expected an unproven refusal, got {other:?}"),
    }
}

#[test]
fn the_hub_hangs_up_on_a_stranger_announcing_more_than_a_handshake_frame() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (keys, hub_key) = four_remote_members();
    actix::System::new().block_on(async {
        let hub = listening_hub(&keys, &hub_key).await;
        let mut stranger = tokio::net::TcpStream::connect(hub.local_addr()).await.unwrap();
        let announced = (super::HANDSHAKE_FRAME_BYTES as u32) + 1;
        stranger.write_all(&announced.to_be_bytes()).await.unwrap();
        stranger.write_all(&[0u8; 1024]).await.unwrap();
        // The hub closes the connection without waiting for the rest of the frame.
        let mut rest = [0u8; 16];
        let read = tokio::time::timeout(std::time::Duration::from_secs(3), stranger.read(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the hub kept the connection open: {read:?}");
    });
}
