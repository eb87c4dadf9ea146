//! Calls: signalling carried inside the chat's 1:1 session, the one-call switchboard, and the
//! call keys handed to the media transport.
//!
//! Every call signal is an encrypted [`Content::Call`] in the session of the chat the call
//! belongs to (standard or secret), queued through the outbox like any message: the relay
//! sees an envelope, never a call. What arrives is processed after the receiving transaction
//! committed, so a crash cannot ring twice for one envelope nor lose the envelope.
//!
//! Who may ring: only accepted contacts whose current key the user has accepted. A call from
//! a message request or from a changed, unaccepted key is not rung; it shows as missed. A call
//! to such a contact does not start.
//!
//! The media transport is a separate layer: it brings its DTLS fingerprint, ICE credentials
//! and candidates ([`LocalTransport`]), takes the agreed keys ([`Engine::take_call_media`])
//! once both sides' parameters are known, and reports when media connects or drops.

use std::time::Instant;

use latch_call::{
    CallError, CallId, CallKeyPair, CallRecord, CallSignal, CallState, CallTranscript, Direction,
    DtlsFingerprint, EndReason, IceCredentials, MediaKind, MediaOffer, MediaSecrets, Switchboard,
    SwitchboardEvent,
};
use latch_store::{
    CallEvent, CallKind, CallOutcome, ContactStanding, Conversation, ConversationId,
    Direction as StoreDirection, MessageStatus, StoreError, Tx,
};

use crate::call_media::{CallDevices, MediaReport, MediaSession, default_hosts};
use crate::events::{Event, MessageView};
use crate::profile::now_ms;
use crate::wire::Content;

use super::{ClientError, Engine};

/// What this device's media transport brings to a call.
#[derive(Clone, Debug)]
pub struct LocalTransport {
    /// Its DTLS certificate's SHA-256 fingerprint.
    pub dtls: DtlsFingerprint,
    /// Its ICE credentials.
    pub ice: IceCredentials,
    /// Candidates gathered so far.
    pub candidates: Vec<String>,
}

/// What the media transport needs once a call is answered: the peer's parameters and the
/// call's frame keys. Taken once; the keys are zeroed when it is dropped.
#[derive(Debug)]
pub struct CallMedia {
    /// The call.
    pub call_id: CallId,
    /// Its chat.
    pub conversation_id: ConversationId,
    /// Caller or callee (decides the DTLS and ICE roles).
    pub direction: Direction,
    /// The peer's call key, DTLS fingerprint, ICE credentials and first candidates.
    pub remote: MediaOffer,
    /// Whether the peer sends video.
    pub remote_video: bool,
    /// The frame keys.
    pub secrets: MediaSecrets,
}

/// The engine's calls: the switchboard and what belongs to the call in progress.
#[derive(Default)]
pub(super) struct CallDesk {
    board: Switchboard<ConversationId>,
    /// This device's key pair for the current call, until the keys are agreed.
    key_pair: Option<(CallId, CallKeyPair)>,
    /// Agreed keys waiting for the transport.
    media: Option<CallMedia>,
    /// Candidates the peer trickled, waiting for the transport, and the call they belong to.
    remote_candidates: Vec<String>,
    candidates_for: Option<CallId>,
    /// The media task of the current call, when the engine runs it (see
    /// [`Engine::start_call`]), with its serial.
    session: Option<(CallId, u64, MediaSession)>,
    /// The serial of the last media task opened.
    serial: u64,
    /// When each chat last got a missed-call row, to collapse a burst of offers (a peer
    /// calling again and again while this device is busy, or a stranger's request) into one.
    last_missed: std::collections::HashMap<ConversationId, Instant>,
    /// Where calls offer host candidates (default: the default route's address and
    /// loopback).
    hosts: Option<Vec<std::net::IpAddr>>,
}

/// A signal that arrived, to hand to the switchboard once the receiving transaction committed.
pub(super) struct IncomingSignal {
    pub(super) conversation: ConversationId,
    pub(super) signal: CallSignal,
    /// Whether this contact may ring (accepted, and no unaccepted key change).
    pub(super) may_ring: bool,
}

/// Whether a contact may call or be called now.
fn call_allowed(tx: &Tx<'_>, conv: &Conversation) -> Result<bool, StoreError> {
    let Some(contact) = tx.contact(conv.contact_id)? else {
        return Ok(false);
    };
    Ok(contact.standing == ContactStanding::Accepted && !tx.key_change_pending(contact.id)?)
}

pub(super) fn incoming_signal(
    tx: &Tx<'_>,
    conv: &Conversation,
    signal: CallSignal,
) -> Result<IncomingSignal, StoreError> {
    Ok(IncomingSignal {
        conversation: conv.id,
        may_ring: call_allowed(tx, conv)?,
        signal,
    })
}

fn state_name(s: CallState) -> &'static str {
    match s {
        CallState::Dialing => "dialing",
        CallState::Ringing => "ringing",
        CallState::Connecting => "connecting",
        CallState::Connected => "connected",
        CallState::Reconnecting => "reconnecting",
        CallState::Ended(_) => "ended",
    }
}

/// The wire name of why a call ended.
pub(crate) fn reason_name(r: EndReason) -> &'static str {
    match r {
        EndReason::Declined => "declined",
        EndReason::Busy => "busy",
        EndReason::NoAnswer => "no_answer",
        EndReason::Cancelled => "cancelled",
        EndReason::HungUp { .. } => "hung_up",
        EndReason::Failed => "failed",
    }
}

fn media_name(m: MediaKind) -> &'static str {
    match m {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Outgoing => "outgoing",
        Direction::Incoming => "incoming",
    }
}

/// How the chat names the way a call went.
fn outcome(r: &CallRecord) -> CallOutcome {
    match (r.direction, r.reason) {
        (_, EndReason::HungUp { .. }) => CallOutcome::Completed,
        (_, EndReason::Declined) => CallOutcome::Declined,
        (_, EndReason::Failed) => CallOutcome::Failed,
        (Direction::Incoming, _) => CallOutcome::Missed,
        (Direction::Outgoing, EndReason::Busy) => CallOutcome::Busy,
        (Direction::Outgoing, EndReason::NoAnswer) => CallOutcome::NoAnswer,
        (Direction::Outgoing, EndReason::Cancelled) => CallOutcome::Cancelled,
    }
}

/// A fresh key pair for one call, and this side's offer or answer carrying its public half.
fn local_offer(transport: LocalTransport) -> Result<(CallKeyPair, MediaOffer), ClientError> {
    let pair =
        CallKeyPair::generate().map_err(|_| ClientError::Invalid("the OS random source failed"))?;
    let offer = MediaOffer {
        call_key: pair.public(),
        dtls: transport.dtls,
        ice: transport.ice,
        candidates: transport.candidates,
    };
    Ok((pair, offer))
}

/// Missed calls from one chat closer together than this leave one row.
const MISSED_CALL_COLLAPSE: std::time::Duration = std::time::Duration::from_secs(30);

fn call_error(e: CallError) -> ClientError {
    match e {
        CallError::Busy => ClientError::Invalid("already in a call"),
        CallError::NotRinging => ClientError::Invalid("the call is not ringing"),
        _ => ClientError::NotFound("call"),
    }
}

impl Engine {
    /// Offers host candidates on these addresses only (tests keep calls on loopback).
    pub fn set_call_hosts(&self, hosts: Vec<std::net::IpAddr>) {
        self.desk().hosts = Some(hosts);
    }

    async fn open_media(
        &self,
        role: latch_call::Role,
        devices: CallDevices,
    ) -> Result<(u64, MediaSession), ClientError> {
        let (hosts, serial) = {
            let mut desk = self.desk();
            desk.serial += 1;
            (
                desk.hosts.clone().unwrap_or_else(default_hosts),
                desk.serial,
            )
        };
        let reports = self.inner.media_reports_tx.clone();
        let session = MediaSession::open(role, &hosts, devices, serial, reports).await?;
        Ok((serial, session))
    }

    /// Keeps a media task for the call, unless the call already ended (then it is dropped,
    /// which stops it).
    fn keep_session(&self, id: CallId, serial: u64, session: MediaSession) {
        let mut desk = self.desk();
        if desk.board.current().is_some_and(|(_, c)| c.id() == id) {
            desk.session = Some((id, serial, session));
        }
    }

    /// Calls the contact of a chat with this device's media: binds the call's sockets,
    /// sends the offer, and once answered connects and plays through `devices`.
    ///
    /// # Errors
    /// As [`Engine::place_call`]; `Invalid` when no socket could be bound.
    pub async fn start_call(
        &self,
        conversation: ConversationId,
        media: MediaKind,
        devices: CallDevices,
    ) -> Result<CallId, ClientError> {
        let (serial, session) = self.open_media(latch_call::Role::Caller, devices).await?;
        let id = self.place_call(conversation, media, session.local())?;
        self.keep_session(id, serial, session);
        self.calls_changed();
        Ok(id)
    }

    /// Answers the ringing call with this device's media.
    ///
    /// # Errors
    /// As [`Engine::accept_call`]; `Invalid` when no socket could be bound.
    pub async fn answer_call(
        &self,
        id: CallId,
        video: bool,
        devices: CallDevices,
    ) -> Result<(), ClientError> {
        let (serial, session) = self.open_media(latch_call::Role::Callee, devices).await?;
        self.accept_call(id, video, session.local())?;
        self.keep_session(id, serial, session);
        // The keys were agreed while accepting: hand them to the task now.
        self.calls_changed();
        Ok(())
    }

    /// Mutes or unmutes this device's microphone in the call it runs the media of.
    ///
    /// # Errors
    /// `NotFound` when this engine runs no media for that call.
    pub fn set_call_muted(&self, id: CallId, muted: bool) -> Result<(), ClientError> {
        match self.desk().session.as_ref() {
            Some((call, _, session)) if *call == id => {
                session.mute(muted);
                Ok(())
            }
            _ => Err(ClientError::NotFound("call")),
        }
    }

    /// Feeds the media tasks' reports to the call (part of the timer task).
    fn on_media_report(&self, serial: u64, report: MediaReport) {
        let id = match self.desk().session.as_ref() {
            Some((id, s, _)) if *s == serial => *id,
            _ => return,
        };
        match report {
            MediaReport::Connected | MediaReport::Reconnected => self.call_media_connected(id),
            MediaReport::Lost => self.call_media_lost(id),
        }
    }

    fn desk(&self) -> std::sync::MutexGuard<'_, CallDesk> {
        // A panic while the desk was held cannot leave it half-updated in a way that matters
        // more than losing the call: recover the guard rather than fail every later call.
        self.inner
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls the contact of a chat. The offer goes out through the outbox; events report
    /// the call's progress.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` when already in a call, the contact is not accepted, their new
    /// key is not accepted, or there is no session yet in this chat.
    pub fn place_call(
        &self,
        conversation: ConversationId,
        media: MediaKind,
        transport: LocalTransport,
    ) -> Result<CallId, ClientError> {
        let id =
            CallId::random().map_err(|_| ClientError::Invalid("the OS random source failed"))?;
        let (pair, local) = local_offer(transport)?;
        self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            Self::refuse_unless_accepted(&contact)?;
            if tx.key_change_pending(contact.id)? {
                return Err(StoreError::Invalid(
                    "the contact's safety number changed: accept the new key before calling",
                ));
            }
            let address = super::session_address(&contact.address, super::thread_of(tx, &conv)?);
            if tx.session_devices(&address)?.is_empty() {
                return Err(StoreError::Invalid(
                    "no session with the contact in this chat yet: send a message first",
                ));
            }
            Ok(())
        })?;
        {
            let mut desk = self.desk();
            desk.board
                .place(conversation, id, media, local, now_ms(), Instant::now())
                .map_err(call_error)?;
            desk.key_pair = Some((id, pair));
        }
        self.calls_changed();
        Ok(id)
    }

    /// Answers the ringing call, with or without this device's camera.
    ///
    /// # Errors
    /// `NotFound` or `Invalid` when it is not ringing.
    pub fn accept_call(
        &self,
        id: CallId,
        video: bool,
        transport: LocalTransport,
    ) -> Result<(), ClientError> {
        let (pair, local) = local_offer(transport)?;
        {
            let mut desk = self.desk();
            desk.board
                .accept(id, local, video, Instant::now())
                .map_err(call_error)?;
            // Only now, under the same lock: a second answer (a double click) fails above and
            // must not replace the key whose public half the first answer sent.
            desk.key_pair = Some((id, pair));
        }
        self.calls_changed();
        Ok(())
    }

    /// Declines the ringing call.
    ///
    /// # Errors
    /// `NotFound` or `Invalid` when it is not ringing.
    pub fn decline_call(&self, id: CallId) -> Result<(), ClientError> {
        self.desk()
            .board
            .decline(id, Instant::now())
            .map_err(call_error)?;
        self.calls_changed();
        Ok(())
    }

    /// Hangs up (or cancels, or declines) the current call.
    ///
    /// # Errors
    /// `NotFound` when there is no such call.
    pub fn hang_up_call(&self, id: CallId) -> Result<(), ClientError> {
        self.desk()
            .board
            .hang_up(id, Instant::now())
            .map_err(call_error)?;
        self.calls_changed();
        Ok(())
    }

    /// The transport connected (or reconnected) the call's media.
    pub fn call_media_connected(&self, id: CallId) {
        self.desk().board.media_connected(id, Instant::now());
        self.calls_changed();
    }

    /// The transport lost the call's media.
    pub fn call_media_lost(&self, id: CallId) {
        self.desk().board.media_lost(id, Instant::now());
        self.calls_changed();
    }

    /// Sends candidates the transport gathered after the offer or answer (trickle ICE).
    ///
    /// # Errors
    /// `NotFound` when there is no such call.
    pub fn send_call_candidates(
        &self,
        id: CallId,
        candidates: Vec<String>,
    ) -> Result<(), ClientError> {
        let conversation = {
            let desk = self.desk();
            match desk.board.current() {
                Some((conv, call)) if call.id() == id => *conv,
                _ => return Err(ClientError::NotFound("call")),
            }
        };
        let signal = CallSignal::Candidates {
            call_id: id,
            candidates,
        };
        signal
            .check()
            .map_err(|_| ClientError::Invalid("malformed ICE candidates"))?;
        self.send_signal(conversation, &signal)?;
        Ok(())
    }

    /// The agreed keys and the peer's parameters of an answered call, once.
    pub fn take_call_media(&self, id: CallId) -> Option<CallMedia> {
        let mut desk = self.desk();
        match desk.media.take() {
            Some(m) if m.call_id == id => Some(m),
            other => {
                desk.media = other;
                None
            }
        }
    }

    /// Candidates the peer of this call trickled since the last time.
    pub fn take_remote_candidates(&self, id: CallId) -> Vec<String> {
        let mut desk = self.desk();
        if desk.candidates_for == Some(id) {
            std::mem::take(&mut desk.remote_candidates)
        } else {
            Vec::new()
        }
    }

    /// Hands a signal that arrived to the switchboard (after its envelope committed).
    pub(super) fn on_call_signal(&self, incoming: IncomingSignal) {
        let IncomingSignal {
            conversation,
            signal,
            may_ring,
        } = incoming;
        let result = {
            let mut desk = self.desk();
            if !may_ring && matches!(signal, CallSignal::Offer { .. }) {
                // Not rung: a request, or a key the user has not accepted. Shown as missed.
                if let CallSignal::Offer { call_id, media, .. } = signal {
                    drop(desk);
                    // The ended event first, then the row, as for every other call.
                    self.emit(Event::Call {
                        call_id: hex::encode(call_id.0),
                        conversation_id: conversation.0,
                        direction: "incoming",
                        media: media_name(media),
                        state: "ended",
                        reason: Some("not_allowed"),
                        remote_video: false,
                    });
                    self.record_call(
                        conversation,
                        Direction::Incoming,
                        media,
                        CallOutcome::Missed,
                        None,
                    );
                }
                return;
            }
            desk.board
                .receive(conversation, signal, now_ms(), Instant::now())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "refused a call signal");
            self.emit(Event::ReceiveFailed {
                reason: format!("call signal refused: {e}"),
            });
        }
        self.calls_changed();
    }

    /// Fires the switchboard's timers; returns when it must run next.
    pub(super) fn call_timers(&self) -> Option<Instant> {
        self.desk().board.handle_timeout(Instant::now());
        self.pump_calls();
        self.desk().board.poll_timeout()
    }

    fn send_signal(
        &self,
        conversation: ConversationId,
        signal: &CallSignal,
    ) -> Result<(), ClientError> {
        let content = Content::Call(signal.clone());
        self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            // Ignoring "no session": the peer could not have sent what this answers.
            self.queue_content(tx, &contact, &conv, &content, None, now_ms())?;
            Ok(())
        })?;
        self.inner.outbox_changed.notify_one();
        Ok(())
    }

    /// Acts on everything the switchboard has to say: sends signals, agrees keys once both
    /// sides are known, tells the UI, and wakes the timer task.
    fn pump_calls(&self) {
        loop {
            let next = self.desk().board.poll_event();
            let Some(event) = next else { break };
            match event {
                SwitchboardEvent::Send { to, signal } => {
                    if let Err(e) = self.send_signal(to, &signal) {
                        tracing::warn!(error = %e, signal = signal.name(), "could not send a call signal");
                    }
                }
                SwitchboardEvent::State {
                    peer,
                    call_id,
                    state,
                } => {
                    if state == CallState::Connecting {
                        self.agree_call_keys(peer, call_id);
                    }
                    let (direction, media, remote_video) = {
                        let desk = self.desk();
                        match desk.board.current() {
                            Some((_, c)) if c.id() == call_id => {
                                (c.direction(), c.media(), c.remote_video())
                            }
                            _ => continue,
                        }
                    };
                    self.emit(Event::Call {
                        call_id: hex::encode(call_id.0),
                        conversation_id: peer.0,
                        direction: direction_name(direction),
                        media: media_name(media),
                        state: state_name(state),
                        reason: None,
                        remote_video,
                    });
                }
                SwitchboardEvent::RemoteCandidates {
                    call_id,
                    candidates,
                    ..
                } => {
                    let mut desk = self.desk();
                    // Candidates belong to one call: a new call's start the list afresh, so
                    // none of an earlier peer's addresses reach a later call's transport.
                    if desk.candidates_for != Some(call_id) {
                        desk.candidates_for = Some(call_id);
                        desk.remote_candidates.clear();
                    }
                    let room = latch_call::signal::MAX_CANDIDATES * 4;
                    let take = room.saturating_sub(desk.remote_candidates.len());
                    desk.remote_candidates
                        .extend(candidates.into_iter().take(take));
                }
                SwitchboardEvent::Ended { peer, record } => {
                    {
                        let mut desk = self.desk();
                        if desk
                            .key_pair
                            .as_ref()
                            .is_some_and(|(id, _)| *id == record.call_id)
                        {
                            desk.key_pair = None;
                        }
                        if desk
                            .media
                            .as_ref()
                            .is_some_and(|m| m.call_id == record.call_id)
                        {
                            desk.media = None;
                        }
                        if desk.candidates_for == Some(record.call_id) {
                            desk.candidates_for = None;
                            desk.remote_candidates.clear();
                        }
                        // Dropping the session stops its task and closes its sockets.
                        if desk
                            .session
                            .as_ref()
                            .is_some_and(|(id, _, _)| *id == record.call_id)
                        {
                            desk.session = None;
                        }
                    }
                    self.emit(Event::Call {
                        call_id: hex::encode(record.call_id.0),
                        conversation_id: peer.0,
                        direction: direction_name(record.direction),
                        media: media_name(record.media),
                        state: "ended",
                        reason: Some(reason_name(record.reason)),
                        remote_video: false,
                    });
                    self.record_call(
                        peer,
                        record.direction,
                        record.media,
                        outcome(&record),
                        record.duration,
                    );
                }
            }
        }
    }

    /// Pumps the switchboard after a change from outside the timer task, and re-arms it.
    fn calls_changed(&self) {
        self.pump_calls();
        self.feed_media_session();
        self.inner.calls_changed.notify_one();
    }

    /// Hands the engine-run media task what it waits for: the agreed keys and trickled
    /// candidates of its call.
    fn feed_media_session(&self) {
        let mut desk = self.desk();
        let Some(id) = desk.session.as_ref().map(|(id, _, _)| *id) else {
            return;
        };
        let media = match desk.media.take() {
            Some(m) if m.call_id == id => Some(m),
            other => {
                desk.media = other;
                None
            }
        };
        let candidates = if desk.candidates_for == Some(id) {
            std::mem::take(&mut desk.remote_candidates)
        } else {
            Vec::new()
        };
        if let Some((_, _, session)) = desk.session.as_ref() {
            if let Some(m) = media {
                session.connect(m);
            }
            if !candidates.is_empty() {
                session.remote_candidates(candidates);
            }
        }
    }

    /// Writes a call into its chat, following the chat's disappearing timer: an unread
    /// missed call's timer starts when it is read, as a message's does.
    fn record_call(
        &self,
        conversation: ConversationId,
        direction: Direction,
        media: MediaKind,
        outcome: CallOutcome,
        duration: Option<std::time::Duration>,
    ) {
        if outcome == CallOutcome::Missed {
            let mut desk = self.desk();
            let now = Instant::now();
            desk.last_missed
                .retain(|_, at| now.duration_since(*at) < MISSED_CALL_COLLAPSE);
            if desk.last_missed.contains_key(&conversation) {
                return;
            }
            desk.last_missed.insert(conversation, now);
        }
        let event = CallEvent {
            kind: match media {
                MediaKind::Audio => CallKind::Voice,
                MediaKind::Video => CallKind::Video,
            },
            outcome,
            duration_ms: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        let now = now_ms();
        let written = self.write(|tx| {
            let Some(conv) = tx.conversation(conversation)? else {
                return Ok(None);
            };
            let unread = outcome == CallOutcome::Missed;
            let timer = conv.disappear_after_secs;
            let (expires_at, expire_after_secs) = match timer {
                Some(_) if unread => (Some(now + super::UNREAD_DISAPPEARING_LIMIT_MS), timer),
                Some(secs) => (Some(now + i64::from(secs) * 1_000), None),
                None => (None, None),
            };
            let (dir, status) = match (direction, unread) {
                (Direction::Incoming, true) => (StoreDirection::Incoming, MessageStatus::Received),
                (Direction::Incoming, false) => (StoreDirection::Incoming, MessageStatus::Read),
                (Direction::Outgoing, _) => (StoreDirection::Outgoing, MessageStatus::Read),
            };
            let id = tx.insert_call_event(
                conv.id,
                dir,
                status,
                now,
                expires_at,
                expire_after_secs,
                event,
            )?;
            tx.message(id)
        });
        match written {
            Ok(Some(m)) => self.emit(Event::Message {
                message: MessageView::from(&m),
            }),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "a call could not be written into its chat"),
        }
    }

    /// Derives the call's frame keys from both sides' parameters, bound to both identities.
    fn agree_call_keys(&self, conversation: ConversationId, call_id: CallId) {
        let peer_identity = match self.write(|tx| {
            Self::conversation_and_contact(tx, conversation).map(|(_, c)| c.identity_key)
        }) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "no contact for a call");
                return;
            }
        };
        let own_identity = self.inner.profile.identity.public().to_bytes();
        let mut desk = self.desk();
        let Some((_, call)) = desk.board.current().filter(|(_, c)| c.id() == call_id) else {
            return;
        };
        let (Some(local), Some(remote)) = (call.local().cloned(), call.remote().cloned()) else {
            return;
        };
        let (direction, remote_video, role) = (call.direction(), call.remote_video(), call.role());
        let Some((_, pair)) = desk.key_pair.take().filter(|(id, _)| *id == call_id) else {
            return;
        };
        let (caller_identity, callee_identity, caller, callee) = match direction {
            Direction::Outgoing => (&own_identity[..], &peer_identity[..], &local, &remote),
            Direction::Incoming => (&peer_identity[..], &own_identity[..], &remote, &local),
        };
        let transcript = CallTranscript {
            call_id,
            caller_identity,
            callee_identity,
            caller,
            callee,
        };
        match pair.agree(role, &transcript) {
            Ok(secrets) => {
                desk.media = Some(CallMedia {
                    call_id,
                    conversation_id: conversation,
                    direction,
                    remote,
                    remote_video,
                    secrets,
                });
            }
            Err(e) => {
                // A peer that sends an unusable call key gets no call.
                tracing::warn!(error = %e, "call keys could not be agreed");
                let _ = desk.board.hang_up(call_id, Instant::now());
            }
        }
    }

    /// Runs the switchboard's timers until shutdown.
    pub(super) async fn calls_loop(&self) {
        let mut stop = self.inner.shutdown.subscribe();
        let mut reports = self.inner.media_reports.lock().await;
        loop {
            self.feed_media_session();
            let next = self.call_timers();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.inner.calls_changed.notified() => {}
                Some((serial, report)) = reports.recv() => self.on_media_report(serial, report),
                _ = stop.changed() => break,
            }
        }
    }
}
