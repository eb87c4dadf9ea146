//! The Double Ratchet (Signal's specification, revision 4) and session records.
//!
//! Messages are sealed with ChaCha20-Poly1305 under keys from the symmetric-key ratchet; the
//! associated data is both identities followed by the encoded header, so a header cannot be
//! moved to another message or session. Decryption always runs on a copy of the state and the
//! copy replaces the original only when the tag verified: a bad message changes nothing.

use std::collections::VecDeque;

use rand_core::{CryptoRng, RngCore};

use crate::codec::{self, Reader, Writer};
use crate::error::DecodeError;
use crate::identity::{IDENTITY_KEY_LEN, IdentityKey};
use crate::keys::{self, CryptoError, KEM_CIPHERTEXT_LEN, KeyPair};
use crate::secret::{Secret, SecretVec};
use crate::wire::{CiphertextMessage, MAX_PLAINTEXT_LEN, PreKeyMessage, RatchetMessage};

/// How far ahead of the next expected index one message may point within a chain.
///
/// Each skipped index costs two HMACs and a stored key, so this bounds the work an attacker (or
/// a broken peer) can force with one message. The relay delivers each mailbox in order, so real
/// gaps come only from loss or reordering and stay small; 2,000 covers a long burst of lost
/// messages while keeping the worst case around a millisecond.
pub const MAX_FORWARD_JUMP: u32 = 2_000;

/// Most skipped message keys one session state keeps, over all its receiver chains.
///
/// Equal to [`MAX_FORWARD_JUMP`] so one maximal jump still fits; beyond it the oldest keys are
/// dropped first (those messages are the least likely to still arrive). Also bounds the stored
/// record at roughly 140 KB per state.
pub const MAX_SKIPPED_MESSAGE_KEYS: usize = 2_000;

/// How many receiver chains (one per peer ratchet key) a state remembers.
///
/// Older chains are needed only for messages delayed across several ratchet turns; Signal keeps
/// five and that has proved enough in practice.
pub const MAX_RECEIVER_CHAINS: usize = 5;

/// How many archived states a session record keeps besides the current one.
///
/// Archived states let a late message on a replaced session still decrypt, and let two devices
/// that started sessions with each other at the same time converge on one (Sesame). Forty is
/// Signal's value: generous for repeated re-initiation while bounding the record size.
pub const MAX_ARCHIVED_STATES: usize = 40;

/// Version byte of [`SessionRecord::to_bytes`].
///
/// Version 2 has the layout of version 1; it adds one state version 1 never wrote: a DH
/// ratchet step taken on receipt whose sending half is still pending (no sending chain while
/// a receiving chain exists, see `SessionState::complete_sending_ratchet`). Builds that only
/// know version 1 would read such a state as unable to send, so the version byte makes them
/// refuse the record instead. Version 1 records decode unchanged.
pub const SESSION_RECORD_VERSION: u8 = 2;
/// The first session record version, still decoded.
const SESSION_RECORD_VERSION_1: u8 = 1;

/// Largest encoded session state (with a full skipped-key store).
const MAX_STATE_LEN: usize = 256 * 1024;
/// Largest encoded session record: the current state plus the archive.
pub const MAX_SESSION_RECORD_LEN: usize = 5 + (MAX_ARCHIVED_STATES + 1) * (4 + MAX_STATE_LEN);

const ROOT_KDF_INFO: &[u8] = b"Latch_DoubleRatchet_Root_v1";
const MESSAGE_KEYS_INFO: &[u8] = b"Latch_DoubleRatchet_MessageKeys_v1";
const MESSAGE_KEY_SEED: &[u8] = &[0x01];
const CHAIN_KEY_SEED: &[u8] = &[0x02];

/// Why a ratchet operation failed. The state is unchanged whenever one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RatchetError {
    /// The record has no session state to use.
    #[error("no session")]
    NoSession,
    /// This message index was already decrypted (or its key was evicted).
    #[error("duplicate or expired message")]
    DuplicateMessage,
    /// The message points further ahead than [`MAX_FORWARD_JUMP`].
    #[error("message index too far ahead (limit {limit})")]
    TooFarInFuture {
        /// The per-chain jump limit.
        limit: u32,
    },
    /// The chain reached its last index; a new session is needed.
    #[error("message counter exhausted")]
    CounterExhausted,
    /// The state cannot send yet (a responder that has not received anything).
    #[error("session cannot send yet")]
    NotReadyToSend,
    /// The plaintext exceeds [`MAX_PLAINTEXT_LEN`].
    #[error("plaintext too large (limit {limit} bytes)")]
    PlaintextTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A primitive failed: bad tag or a low-order ratchet key.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A sending or receiving chain.
#[derive(Clone)]
struct Chain {
    key: Secret<32>,
    index: u32,
}

impl Chain {
    /// One step of the symmetric-key ratchet: the message key for `index`, then advance.
    fn step(&mut self) -> Result<Secret<32>, RatchetError> {
        let mk = keys::hmac_sha256(self.key.expose(), MESSAGE_KEY_SEED)?;
        self.key = keys::hmac_sha256(self.key.expose(), CHAIN_KEY_SEED)?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or(RatchetError::CounterExhausted)?;
        Ok(mk)
    }
}

#[derive(Clone)]
struct ReceiverChain {
    ratchet_key: [u8; 32],
    chain: Chain,
}

#[derive(Clone)]
struct SkippedKey {
    ratchet_key: [u8; 32],
    index: u32,
    key: Secret<32>,
}

/// What the initiator repeats in every message until the responder answers.
#[derive(Clone)]
pub(crate) struct PendingPreKey {
    pub(crate) signed_prekey_id: u32,
    pub(crate) one_time_prekey_id: Option<u32>,
    pub(crate) kem_prekey_id: u32,
    pub(crate) kem_ciphertext: Vec<u8>,
}

/// One Double Ratchet session with one peer device.
#[derive(Clone)]
pub(crate) struct SessionState {
    /// Encoded identities: kept as bytes so loading a record needs no curve operations; they
    /// were verified when they first arrived.
    pub(crate) local_identity: [u8; IDENTITY_KEY_LEN],
    pub(crate) remote_identity: [u8; IDENTITY_KEY_LEN],
    pub(crate) initiator: bool,
    /// The initiator's PQXDH ephemeral key: names the session for duplicate prekey messages
    /// and for Sesame convergence.
    pub(crate) base_key: [u8; 32],
    root_key: Secret<32>,
    sender_ratchet: KeyPair,
    sender_chain: Option<Chain>,
    previous_counter: u32,
    receiver_chains: VecDeque<ReceiverChain>,
    skipped: VecDeque<SkippedKey>,
    pub(crate) pending_prekey: Option<PendingPreKey>,
}

fn message_keys(mk: &Secret<32>) -> Result<(Secret<32>, [u8; 12]), RatchetError> {
    let okm = keys::hkdf_sha256(None, mk.expose(), MESSAGE_KEYS_INFO, 44)?;
    // A short output is an error, never a zero key or nonce to carry on with.
    let (key, nonce) = okm
        .expose()
        .split_at_checked(32)
        .ok_or(CryptoError::InvalidLength)?;
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::InvalidLength)?;
    let key = Secret::copy_from_slice(key).ok_or(CryptoError::InvalidLength)?;
    Ok((key, nonce))
}

impl SessionState {
    /// The initiator's state right after PQXDH: `DHr` is the responder's signed prekey.
    pub(crate) fn new_initiator<R: CryptoRng + RngCore>(
        local_identity: IdentityKey,
        remote_identity: IdentityKey,
        base_key: [u8; 32],
        shared_secret: &Secret<32>,
        their_signed_prekey: &[u8; 32],
        pending: PendingPreKey,
        rng: &mut R,
    ) -> Result<Self, RatchetError> {
        let sender_ratchet = KeyPair::generate(rng);
        let dh = keys::x25519(&sender_ratchet.secret, their_signed_prekey)?;
        let (root_key, ck) =
            keys::hkdf_pair(Some(shared_secret.expose()), dh.expose(), ROOT_KDF_INFO)?;
        Ok(Self {
            local_identity: local_identity.to_bytes(),
            remote_identity: remote_identity.to_bytes(),
            initiator: true,
            base_key,
            root_key,
            sender_ratchet,
            sender_chain: Some(Chain { key: ck, index: 0 }),
            previous_counter: 0,
            receiver_chains: VecDeque::new(),
            skipped: VecDeque::new(),
            pending_prekey: Some(pending),
        })
    }

    /// The responder's state right after PQXDH: its signed prekey is its first ratchet key.
    pub(crate) fn new_responder(
        local_identity: IdentityKey,
        remote_identity: IdentityKey,
        base_key: [u8; 32],
        shared_secret: Secret<32>,
        signed_prekey: KeyPair,
    ) -> Self {
        Self {
            local_identity: local_identity.to_bytes(),
            remote_identity: remote_identity.to_bytes(),
            initiator: false,
            base_key,
            root_key: shared_secret,
            sender_ratchet: signed_prekey,
            sender_chain: None,
            previous_counter: 0,
            receiver_chains: VecDeque::new(),
            skipped: VecDeque::new(),
            pending_prekey: None,
        }
    }

    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let (a, b) = if self.initiator {
            (&self.local_identity, &self.remote_identity)
        } else {
            (&self.remote_identity, &self.local_identity)
        };
        let mut ad = Vec::with_capacity(2 * IDENTITY_KEY_LEN + header.len());
        ad.extend_from_slice(a);
        ad.extend_from_slice(b);
        ad.extend_from_slice(header);
        ad
    }

    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) -> Result<RatchetMessage, RatchetError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(RatchetError::PlaintextTooLarge {
                limit: MAX_PLAINTEXT_LEN,
            });
        }
        self.complete_sending_ratchet()?;
        let chain = self
            .sender_chain
            .as_mut()
            .ok_or(RatchetError::NotReadyToSend)?;
        let counter = chain.index;
        let mk = chain.step()?;
        let mut msg = RatchetMessage {
            ratchet_key: self.sender_ratchet.public_bytes(),
            previous_counter: self.previous_counter,
            counter,
            ciphertext: Vec::new(),
        };
        let (key, nonce) = message_keys(&mk)?;
        let ad = self.associated_data(&msg.header_bytes());
        msg.ciphertext = keys::aead_seal(key.expose(), &nonce, &ad, plaintext)?;
        Ok(msg)
    }

    /// Decrypts in place; callers run this on a copy and keep it only on success.
    pub(crate) fn decrypt<R: CryptoRng + RngCore>(
        &mut self,
        msg: &RatchetMessage,
        rng: &mut R,
    ) -> Result<SecretVec, RatchetError> {
        let mk = self.message_key_for(msg, rng)?;
        let (key, nonce) = message_keys(&mk)?;
        let ad = self.associated_data(&msg.header_bytes());
        let plaintext = keys::aead_open(key.expose(), &nonce, &ad, &msg.ciphertext)?;
        // Hearing from the responder proves it has the session: stop sending prekey messages.
        self.pending_prekey = None;
        Ok(plaintext)
    }

    fn message_key_for<R: CryptoRng + RngCore>(
        &mut self,
        msg: &RatchetMessage,
        rng: &mut R,
    ) -> Result<Secret<32>, RatchetError> {
        let Self {
            receiver_chains,
            skipped,
            ..
        } = self;
        if let Some(rc) = receiver_chains
            .iter_mut()
            .find(|c| c.ratchet_key == msg.ratchet_key)
        {
            if msg.counter < rc.chain.index {
                let pos = skipped
                    .iter()
                    .position(|s| s.ratchet_key == msg.ratchet_key && s.index == msg.counter)
                    .ok_or(RatchetError::DuplicateMessage)?;
                return skipped
                    .remove(pos)
                    .map(|s| s.key)
                    .ok_or(RatchetError::DuplicateMessage);
            }
            return advance_to(rc, skipped, msg.counter);
        }
        // A new ratchet key: finish the current receiving chain up to the sender's previous
        // counter, then turn the DH ratchet.
        if let Some(rc) = receiver_chains.back_mut()
            && msg.previous_counter > rc.chain.index
        {
            skip_to(rc, skipped, msg.previous_counter)?;
        }
        self.dh_ratchet(&msg.ratchet_key, rng)?;
        let Self {
            receiver_chains,
            skipped,
            ..
        } = self;
        let rc = receiver_chains.back_mut().ok_or(RatchetError::NoSession)?;
        advance_to(rc, skipped, msg.counter)
    }

    /// Derives the sending chain of a DH ratchet step taken on receipt, if still pending.
    ///
    /// On receiving a new ratchet key, [`Self::dh_ratchet`] derives the receiving chain and
    /// generates our next ratchet key pair, but leaves the second half of the step (the DH
    /// with that new key pair and the root KDF into a sending chain) until we next send, as
    /// Olm does. The keys are exactly those of the eager step, so nothing changes on the wire;
    /// a party that only receives saves one X25519 per turn, and setup saves it on the
    /// responder. The pending state is `sender_chain == None` with a receiving chain present
    /// (a responder that has received nothing has no receiving chain and cannot send).
    fn complete_sending_ratchet(&mut self) -> Result<(), RatchetError> {
        if self.sender_chain.is_some() {
            return Ok(());
        }
        let Some(their_key) = self.receiver_chains.back().map(|rc| rc.ratchet_key) else {
            return Ok(());
        };
        let dh = keys::x25519(&self.sender_ratchet.secret, &their_key)?;
        let (root, ck_send) =
            keys::hkdf_pair(Some(self.root_key.expose()), dh.expose(), ROOT_KDF_INFO)?;
        self.root_key = root;
        self.sender_chain = Some(Chain {
            key: ck_send,
            index: 0,
        });
        Ok(())
    }

    fn dh_ratchet<R: CryptoRng + RngCore>(
        &mut self,
        their_key: &[u8; 32],
        rng: &mut R,
    ) -> Result<(), RatchetError> {
        // A previous step's sending half is completed first, so the root chain advances in
        // the same order as with eager steps.
        self.complete_sending_ratchet()?;
        let dh = keys::x25519(&self.sender_ratchet.secret, their_key)?;
        let (root, ck_recv) =
            keys::hkdf_pair(Some(self.root_key.expose()), dh.expose(), ROOT_KDF_INFO)?;
        self.receiver_chains.push_back(ReceiverChain {
            ratchet_key: *their_key,
            chain: Chain {
                key: ck_recv,
                index: 0,
            },
        });
        if self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
            while self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
                self.receiver_chains.pop_front();
            }
            // The skipped keys of an evicted chain go with it, as in libsignal: lookups go
            // through the chain, so nothing could reach them, and keeping them would only keep
            // old message keys on disk. Keys records of older builds kept for chains evicted
            // back then go too.
            let chains = &self.receiver_chains;
            self.skipped
                .retain(|s| chains.iter().any(|c| c.ratchet_key == s.ratchet_key));
        }
        self.previous_counter = self.sender_chain.as_ref().map_or(0, |c| c.index);
        // The key pair is generated now (encrypting takes no RNG); the sending chain is
        // derived by `complete_sending_ratchet` when first needed.
        self.sender_ratchet = KeyPair::generate(rng);
        self.root_key = root;
        self.sender_chain = None;
        Ok(())
    }

    // ---- storage encoding (version 1) ----

    /// The exact length [`Self::encode`] writes, so a record's buffer is allocated once at
    /// its final size and never reallocated (a reallocation frees a copy of the keys unwiped).
    fn encoded_len(&self) -> usize {
        const CHAIN: usize = 32 + 4;
        let fixed = 1 + 2 * IDENTITY_KEY_LEN + 32 + 32 + 32 + 32 + 1 + CHAIN + 4;
        let receivers = 4 + self.receiver_chains.len() * (32 + CHAIN);
        let skipped = 4 + self.skipped.len() * (32 + 4 + 32);
        let pending = match &self.pending_prekey {
            Some(p) => 1 + 4 + 1 + 4 + 4 + 4 + p.kem_ciphertext.len(),
            None => 1,
        };
        fixed + receivers + skipped + pending
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(u8::from(self.initiator));
        w.bytes(&self.local_identity);
        w.bytes(&self.remote_identity);
        w.bytes(&self.base_key);
        w.bytes(self.root_key.expose());
        w.bytes(self.sender_ratchet.secret_bytes().expose());
        w.bytes(&self.sender_ratchet.public_bytes());
        match &self.sender_chain {
            Some(c) => {
                w.u8(1);
                w.bytes(c.key.expose());
                w.u32(c.index);
            }
            None => {
                w.u8(0);
                w.bytes(&[0u8; 32]);
                w.u32(0);
            }
        }
        w.u32(self.previous_counter);
        w.u32(self.receiver_chains.len() as u32);
        for rc in &self.receiver_chains {
            w.bytes(&rc.ratchet_key);
            w.bytes(rc.chain.key.expose());
            w.u32(rc.chain.index);
        }
        w.u32(self.skipped.len() as u32);
        for s in &self.skipped {
            w.bytes(&s.ratchet_key);
            w.u32(s.index);
            w.bytes(s.key.expose());
        }
        match &self.pending_prekey {
            Some(p) => {
                w.u8(1);
                w.u32(p.signed_prekey_id);
                w.u8(u8::from(p.one_time_prekey_id.is_some()));
                w.u32(p.one_time_prekey_id.unwrap_or(0));
                w.u32(p.kem_prekey_id);
                w.var_bytes(&p.kem_ciphertext);
            }
            None => w.u8(0),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let initiator = r.bool()?;
        let local_identity = r.array()?;
        let remote_identity = r.array()?;
        if local_identity[0] != crate::identity::IDENTITY_KEY_VERSION
            || remote_identity[0] != crate::identity::IDENTITY_KEY_VERSION
        {
            return Err(DecodeError::InvalidField("identity key version"));
        }
        let base_key = r.array()?;
        let root_key = r.secret()?;
        let ratchet_secret = r.secret()?;
        let sender_ratchet = KeyPair::from_parts_unchecked(&ratchet_secret, r.array()?);
        let has_chain = r.bool()?;
        let key = r.secret()?;
        let index = r.u32()?;
        if !has_chain && (key.expose() != &[0u8; 32] || index != 0) {
            return Err(DecodeError::InvalidField("sender chain"));
        }
        let sender_chain = has_chain.then_some(Chain { key, index });
        let previous_counter = r.u32()?;
        let n = r.count(MAX_RECEIVER_CHAINS)?;
        let mut receiver_chains = VecDeque::with_capacity(n);
        for _ in 0..n {
            let ratchet_key = r.array()?;
            let key = r.secret()?;
            let index = r.u32()?;
            receiver_chains.push_back(ReceiverChain {
                ratchet_key,
                chain: Chain { key, index },
            });
        }
        let n = r.count(MAX_SKIPPED_MESSAGE_KEYS)?;
        let mut skipped = VecDeque::with_capacity(n);
        for _ in 0..n {
            let ratchet_key = r.array()?;
            let index = r.u32()?;
            let key = r.secret()?;
            skipped.push_back(SkippedKey {
                ratchet_key,
                index,
                key,
            });
        }
        let pending_prekey = if r.bool()? {
            let signed_prekey_id = r.u32()?;
            let has_otpk = r.bool()?;
            let otpk = r.u32()?;
            if !has_otpk && otpk != 0 {
                return Err(DecodeError::InvalidField("one-time prekey id"));
            }
            let kem_prekey_id = r.u32()?;
            let kem_ciphertext = r.var_bytes(KEM_CIPHERTEXT_LEN)?.to_vec();
            Some(PendingPreKey {
                signed_prekey_id,
                one_time_prekey_id: has_otpk.then_some(otpk),
                kem_prekey_id,
                kem_ciphertext,
            })
        } else {
            None
        };
        Ok(Self {
            local_identity,
            remote_identity,
            initiator,
            base_key,
            root_key,
            sender_ratchet,
            sender_chain,
            previous_counter,
            receiver_chains,
            skipped,
            pending_prekey,
        })
    }
}

fn push_skipped(
    skipped: &mut VecDeque<SkippedKey>,
    ratchet_key: [u8; 32],
    index: u32,
    key: Secret<32>,
) {
    skipped.push_back(SkippedKey {
        ratchet_key,
        index,
        key,
    });
    while skipped.len() > MAX_SKIPPED_MESSAGE_KEYS {
        skipped.pop_front();
    }
}

/// Stores the keys of indices `rc.index .. target` as skipped, within the jump limit.
fn skip_to(
    rc: &mut ReceiverChain,
    skipped: &mut VecDeque<SkippedKey>,
    target: u32,
) -> Result<(), RatchetError> {
    if target.saturating_sub(rc.chain.index) > MAX_FORWARD_JUMP {
        return Err(RatchetError::TooFarInFuture {
            limit: MAX_FORWARD_JUMP,
        });
    }
    while rc.chain.index < target {
        let index = rc.chain.index;
        let mk = rc.chain.step()?;
        push_skipped(skipped, rc.ratchet_key, index, mk);
    }
    Ok(())
}

/// Skips to `target` and returns its message key.
fn advance_to(
    rc: &mut ReceiverChain,
    skipped: &mut VecDeque<SkippedKey>,
    target: u32,
) -> Result<Secret<32>, RatchetError> {
    skip_to(rc, skipped, target)?;
    rc.chain.step()
}

/// Every session with one peer device: the current state and archived ones.
///
/// This is the unit a store persists (as the opaque blob from [`SessionRecord::to_bytes`]).
#[derive(Clone, Default)]
pub struct SessionRecord {
    current: Option<SessionState>,
    archived: VecDeque<SessionState>,
}

impl core::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("has_current", &self.current.is_some())
            .field("archived", &self.archived.len())
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is a current session to send on.
    pub fn has_current_session(&self) -> bool {
        self.current.is_some()
    }

    /// Number of archived states.
    pub fn archived_count(&self) -> usize {
        self.archived.len()
    }

    /// The base key naming the current session (equal on both sides once they converge).
    pub fn current_base_key(&self) -> Option<[u8; 32]> {
        self.current.as_ref().map(|s| s.base_key)
    }

    /// The peer identity of the current session.
    pub fn remote_identity(&self) -> Option<IdentityKey> {
        self.current
            .as_ref()
            .and_then(|s| IdentityKey::decode_unverified(&s.remote_identity).ok())
    }

    /// Whether the current session still sends prekey messages (no reply received yet).
    pub fn has_unacknowledged_prekey(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.pending_prekey.is_some())
    }

    /// Makes `state` current and archives the previous one (Sesame).
    pub(crate) fn promote(&mut self, state: SessionState) {
        if let Some(old) = self.current.replace(state) {
            self.archived.push_front(old);
            self.archived.truncate(MAX_ARCHIVED_STATES);
        }
    }

    /// Archives the current session, e.g. after the peer's identity changed.
    pub fn archive_current(&mut self) {
        if let Some(old) = self.current.take() {
            self.archived.push_front(old);
            self.archived.truncate(MAX_ARCHIVED_STATES);
        }
    }

    pub(crate) fn has_base_key(&self, base_key: &[u8; 32]) -> bool {
        self.current
            .iter()
            .chain(self.archived.iter())
            .any(|s| &s.base_key == base_key)
    }

    /// Encrypts on the current session; a prekey message until the peer has answered.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<CiphertextMessage, RatchetError> {
        let state = self.current.as_mut().ok_or(RatchetError::NoSession)?;
        let message = state.encrypt(plaintext)?;
        Ok(match &state.pending_prekey {
            Some(p) => CiphertextMessage::PreKey(PreKeyMessage {
                signed_prekey_id: p.signed_prekey_id,
                one_time_prekey_id: p.one_time_prekey_id,
                kem_prekey_id: p.kem_prekey_id,
                base_key: state.base_key,
                identity: IdentityKey::decode_unverified(&state.local_identity)
                    .map_err(|_| RatchetError::NoSession)?,
                kem_ciphertext: p.kem_ciphertext.clone(),
                message,
            }),
            None => CiphertextMessage::Ratchet(message),
        })
    }

    /// Decrypts with the current state, then archived ones; the state that succeeds becomes
    /// current. On failure the record is unchanged and the current state's error is returned.
    pub fn decrypt<R: CryptoRng + RngCore>(
        &mut self,
        msg: &RatchetMessage,
        rng: &mut R,
    ) -> Result<SecretVec, RatchetError> {
        self.decrypt_matching(msg, rng, |_| true)
    }

    pub(crate) fn decrypt_matching<R: CryptoRng + RngCore>(
        &mut self,
        msg: &RatchetMessage,
        rng: &mut R,
        filter: impl Fn(&SessionState) -> bool,
    ) -> Result<SecretVec, RatchetError> {
        let mut first_err = None;
        if let Some(current) = self.current.as_ref().filter(|s| filter(s)) {
            let mut staged = current.clone();
            match staged.decrypt(msg, rng) {
                Ok(pt) => {
                    self.current = Some(staged);
                    return Ok(pt);
                }
                Err(e) => first_err = Some(e),
            }
        }
        for i in 0..self.archived.len() {
            let Some(state) = self.archived.get(i).filter(|s| filter(s)) else {
                continue;
            };
            let mut staged = state.clone();
            match staged.decrypt(msg, rng) {
                Ok(pt) => {
                    self.archived.remove(i);
                    self.promote(staged);
                    return Ok(pt);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(RatchetError::NoSession))
    }

    /// Versioned storage encoding; contains secret keys, hence the zeroizing buffer.
    ///
    /// Layout (versions 1 and 2): `version || has_current(u8) || [u32 len || state] || u32 count ||
    /// count × (u32 len || state)`.
    pub fn to_bytes(&self) -> SecretVec {
        // Written once into a buffer of the exact final size: growing it would free copies of
        // the keys unwiped, and so would encoding each state into a buffer of its own.
        let len = self.encoded_len();
        let mut w = Writer::with_capacity(len);
        let start = w.buf.as_ptr();
        w.u8(SESSION_RECORD_VERSION);
        let state = |w: &mut Writer, s: &SessionState| {
            w.u32(u32::try_from(s.encoded_len()).unwrap_or(u32::MAX));
            s.encode(w);
        };
        match &self.current {
            Some(s) => {
                w.u8(1);
                state(&mut w, s);
            }
            None => w.u8(0),
        }
        w.u32(self.archived.len() as u32);
        for s in &self.archived {
            state(&mut w, s);
        }
        // Every test that stores a session checks the length was exact and never grew.
        debug_assert_eq!(w.buf.len(), len, "encoded_len is exact");
        debug_assert_eq!(w.buf.as_ptr(), start, "the buffer was never moved");
        SecretVec::new(w.finish())
    }

    /// The exact length of [`Self::to_bytes`].
    fn encoded_len(&self) -> usize {
        let current = self.current.as_ref().map_or(0, |s| 4 + s.encoded_len());
        let archived: usize = self.archived.iter().map(|s| 4 + s.encoded_len()).sum();
        1 + 1 + current + 4 + archived
    }

    /// Decodes any supported record version (today: 1 and 2, which share a layout). A future
    /// decoder goes here next to these, so records written by older builds keep decrypting.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_SESSION_RECORD_LEN {
            return Err(DecodeError::TooLarge {
                limit: MAX_SESSION_RECORD_LEN,
            });
        }
        match bytes.first() {
            Some(&v @ (SESSION_RECORD_VERSION_1 | SESSION_RECORD_VERSION)) => {
                Self::decode_v1_v2(bytes, v)
            }
            Some(&v) => Err(DecodeError::UnknownVersion(v)),
            None => Err(DecodeError::Truncated),
        }
    }

    fn decode_v1_v2(bytes: &[u8], version: u8) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, MAX_SESSION_RECORD_LEN, version)?;
        let state = |r: &mut Reader<'_>| -> Result<SessionState, DecodeError> {
            let mut sr = Reader::new(r.var_bytes(MAX_STATE_LEN)?);
            let s = SessionState::decode(&mut sr)?;
            sr.finish()?;
            Ok(s)
        };
        let current = if r.bool()? {
            Some(state(&mut r)?)
        } else {
            None
        };
        let n = r.count(MAX_ARCHIVED_STATES)?;
        let mut archived = VecDeque::with_capacity(n);
        for _ in 0..n {
            archived.push_back(state(&mut r)?);
        }
        r.finish()?;
        Ok(Self { current, archived })
    }
}
