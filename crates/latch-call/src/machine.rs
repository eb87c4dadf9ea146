//! One call's life, as a sans-I/O state machine.
//!
//! The machine does no I/O and reads no clock: the caller feeds it what happened (a signal
//! from the peer, the user's answer, the transport connecting or dropping, the time) and takes
//! from it what to do (signals to send, state changes to show) with [`Call::poll_output`], and
//! when to wake it next with [`Call::poll_timeout`]. The same machine runs in the app, the CLI
//! and the tests, and every timeout can be tested without waiting for it.
//!
//! ```text
//!  outgoing: Dialing ──ringing──▶ Ringing ──answer──▶ Connecting ──media up──▶ Connected
//!  incoming:            offer ──▶ Ringing ──accept──▶ Connecting ──media up──▶ Connected
//!                                                         Connected ◀─▶ Reconnecting
//!  any live state ──▶ Ended(reason)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::keys::Role;
use crate::signal::{CallId, CallSignal, HangupReason, MediaKind, MediaOffer};

/// How long a call rings before it counts as not answered.
pub const RING_TIMEOUT: Duration = Duration::from_secs(45);

/// How long media may take to connect after the answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a call may stay without media before it fails.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which way the call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This device called.
    Outgoing,
    /// This device is called.
    Incoming,
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The callee declined.
    Declined,
    /// The callee was in another call.
    Busy,
    /// Nobody answered in [`RING_TIMEOUT`].
    NoAnswer,
    /// The caller gave up before an answer.
    Cancelled,
    /// An answered call was hung up.
    HungUp {
        /// By the other side.
        by_peer: bool,
    },
    /// Media never connected, or was lost for good.
    Failed,
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Outgoing: the offer went out; the callee's device has not answered it yet.
    Dialing,
    /// Ringing: at the callee (outgoing) or here (incoming).
    Ringing,
    /// Answered; media is connecting.
    Connecting,
    /// Media flows.
    Connected,
    /// Media was lost and is being recovered.
    Reconnecting,
    /// Over.
    Ended(EndReason),
}

impl CallState {
    /// Whether the call is over.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Ended(_))
    }
}

/// What the machine asks its owner to do or show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutput {
    /// Send this to the peer, inside the session.
    Signal(CallSignal),
    /// The state changed.
    State(CallState),
    /// The peer sent more ICE candidates for the transport.
    RemoteCandidates(Vec<String>),
}

/// What the user asked for does not fit where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Only a ringing incoming call can be accepted or declined.
    #[error("the call is not ringing here")]
    NotRinging,
    /// Another call is in progress.
    #[error("already in a call")]
    Busy,
    /// No call with this id.
    #[error("no such call")]
    NoSuchCall,
}

/// What the chat shows once a call is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// Which way.
    pub direction: Direction,
    /// What was offered.
    pub media: MediaKind,
    /// How it ended.
    pub reason: EndReason,
    /// From media connecting to the end, for calls that connected.
    pub duration: Option<Duration>,
}

impl CallRecord {
    /// An incoming call nobody here picked up.
    pub fn is_missed(&self) -> bool {
        self.direction == Direction::Incoming
            && matches!(
                self.reason,
                EndReason::NoAnswer | EndReason::Cancelled | EndReason::Busy
            )
    }
}

/// One call.
#[derive(Debug)]
pub struct Call {
    id: CallId,
    direction: Direction,
    media: MediaKind,
    state: CallState,
    local: Option<MediaOffer>,
    remote: Option<MediaOffer>,
    remote_video: bool,
    deadline: Option<Instant>,
    connected_at: Option<Instant>,
    ended_at: Option<Instant>,
    outputs: VecDeque<CallOutput>,
}

impl Call {
    fn new(id: CallId, direction: Direction, media: MediaKind, now: Instant) -> Self {
        Self {
            id,
            direction,
            media,
            state: CallState::Dialing,
            local: None,
            remote: None,
            remote_video: media == MediaKind::Video,
            deadline: Some(now + RING_TIMEOUT),
            connected_at: None,
            ended_at: None,
            outputs: VecDeque::new(),
        }
    }

    /// Places a call: the offer goes out now.
    pub fn place(
        id: CallId,
        media: MediaKind,
        local: MediaOffer,
        sent_at_ms: i64,
        now: Instant,
    ) -> Self {
        let mut call = Self::new(id, Direction::Outgoing, media, now);
        call.outputs
            .push_back(CallOutput::Signal(CallSignal::Offer {
                call_id: id,
                media,
                sent_at: sent_at_ms,
                offer: local.clone(),
            }));
        call.local = Some(local);
        call.outputs
            .push_back(CallOutput::State(CallState::Dialing));
        call
    }

    /// An offer arrived: this device rings, and tells the caller so.
    pub fn ring(id: CallId, media: MediaKind, remote: MediaOffer, now: Instant) -> Self {
        let mut call = Self::new(id, Direction::Incoming, media, now);
        call.remote = Some(remote);
        call.state = CallState::Ringing;
        call.outputs
            .push_back(CallOutput::Signal(CallSignal::Ringing { call_id: id }));
        call.outputs
            .push_back(CallOutput::State(CallState::Ringing));
        call
    }

    /// The call's id.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Which way it goes.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// This device's role in the key agreement.
    pub fn role(&self) -> Role {
        match self.direction {
            Direction::Outgoing => Role::Caller,
            Direction::Incoming => Role::Callee,
        }
    }

    /// What the caller offered.
    pub fn media(&self) -> MediaKind {
        self.media
    }

    /// Where it is.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// This device's side, once it was sent.
    pub fn local(&self) -> Option<&MediaOffer> {
        self.local.as_ref()
    }

    /// The peer's side, once it arrived.
    pub fn remote(&self) -> Option<&MediaOffer> {
        self.remote.as_ref()
    }

    /// Whether the peer sends video.
    pub fn remote_video(&self) -> bool {
        self.remote_video
    }

    /// When [`Self::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next thing to do or show.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.outputs.pop_front()
    }

    /// The record for the chat, once the call is over.
    pub fn record(&self) -> Option<CallRecord> {
        let CallState::Ended(reason) = self.state else {
            return None;
        };
        Some(CallRecord {
            call_id: self.id,
            direction: self.direction,
            media: self.media,
            reason,
            duration: match (self.connected_at, self.ended_at) {
                (Some(from), Some(to)) => Some(to.saturating_duration_since(from)),
                _ => None,
            },
        })
    }

    fn set(&mut self, state: CallState, now: Instant) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.deadline = match state {
            CallState::Connecting => Some(now + CONNECT_TIMEOUT),
            CallState::Reconnecting => Some(now + RECONNECT_TIMEOUT),
            CallState::Dialing | CallState::Ringing => self.deadline,
            CallState::Connected | CallState::Ended(_) => None,
        };
        if state == CallState::Connected && self.connected_at.is_none() {
            self.connected_at = Some(now);
        }
        if state.is_ended() {
            self.ended_at = Some(now);
        }
        self.outputs.push_back(CallOutput::State(state));
    }

    fn end(&mut self, reason: EndReason, tell_peer: Option<HangupReason>, now: Instant) {
        if self.state.is_ended() {
            return;
        }
        if let Some(reason) = tell_peer {
            self.outputs
                .push_back(CallOutput::Signal(CallSignal::Hangup {
                    call_id: self.id,
                    reason,
                }));
        }
        self.set(CallState::Ended(reason), now);
    }

    fn is_ringing_here(&self) -> bool {
        self.direction == Direction::Incoming && self.state == CallState::Ringing
    }

    /// The user answers a ringing incoming call.
    ///
    /// # Errors
    /// [`CallError::NotRinging`].
    pub fn accept(
        &mut self,
        local: MediaOffer,
        video: bool,
        now: Instant,
    ) -> Result<(), CallError> {
        if !self.is_ringing_here() {
            return Err(CallError::NotRinging);
        }
        self.outputs
            .push_back(CallOutput::Signal(CallSignal::Answer {
                call_id: self.id,
                video,
                answer: local.clone(),
            }));
        self.local = Some(local);
        self.set(CallState::Connecting, now);
        Ok(())
    }

    /// The user declines a ringing incoming call.
    ///
    /// # Errors
    /// [`CallError::NotRinging`].
    pub fn decline(&mut self, now: Instant) -> Result<(), CallError> {
        if !self.is_ringing_here() {
            return Err(CallError::NotRinging);
        }
        self.end(EndReason::Declined, Some(HangupReason::Declined), now);
        Ok(())
    }

    /// Gives up this outgoing call because the peer's own call to this device wins (both
    /// called at once): ended as cancelled here, nothing said, since the peer drops this
    /// call's offer on its side.
    pub fn yield_to_crossing_call(&mut self, now: Instant) {
        self.end(EndReason::Cancelled, None, now);
    }

    /// The user hangs up, whatever the state (a ringing incoming call is declined).
    pub fn hang_up(&mut self, now: Instant) {
        match (self.direction, self.state) {
            (_, CallState::Ended(_)) => {}
            (Direction::Incoming, CallState::Ringing) => {
                self.end(EndReason::Declined, Some(HangupReason::Declined), now);
            }
            (Direction::Outgoing, CallState::Dialing | CallState::Ringing) => {
                self.end(EndReason::Cancelled, Some(HangupReason::Normal), now);
            }
            _ => self.end(
                EndReason::HungUp { by_peer: false },
                Some(HangupReason::Normal),
                now,
            ),
        }
    }

    /// The transport connected (or reconnected).
    pub fn media_connected(&mut self, now: Instant) {
        if matches!(self.state, CallState::Connecting | CallState::Reconnecting) {
            self.set(CallState::Connected, now);
        }
    }

    /// The transport lost the peer.
    pub fn media_lost(&mut self, now: Instant) {
        if self.state == CallState::Connected {
            self.set(CallState::Reconnecting, now);
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match (self.direction, self.state) {
            (Direction::Outgoing, CallState::Dialing | CallState::Ringing) => {
                self.end(EndReason::NoAnswer, Some(HangupReason::NoAnswer), now);
            }
            // The caller's own timer ends its side; nothing to tell it.
            (Direction::Incoming, CallState::Ringing) => self.end(EndReason::NoAnswer, None, now),
            (_, CallState::Connecting | CallState::Reconnecting) => {
                self.end(EndReason::Failed, Some(HangupReason::Failed), now);
            }
            _ => self.deadline = None,
        }
    }

    /// A signal from the peer for this call (already checked and routed by id and peer).
    /// Signals that do not fit the state (a repeated answer, a late ringing) are ignored:
    /// the relay delivers at least once, so a duplicate is normal.
    pub fn on_signal(&mut self, signal: CallSignal, now: Instant) {
        if self.state.is_ended() || signal.call_id() != self.id {
            return;
        }
        let outgoing = self.direction == Direction::Outgoing;
        let before_answer = matches!(self.state, CallState::Dialing | CallState::Ringing);
        match signal {
            CallSignal::Offer { .. } => {}
            CallSignal::Ringing { .. } => {
                if outgoing && self.state == CallState::Dialing {
                    self.set(CallState::Ringing, now);
                }
            }
            CallSignal::Answer { video, answer, .. } => {
                if outgoing && before_answer {
                    self.remote = Some(answer);
                    self.remote_video = video;
                    self.set(CallState::Connecting, now);
                }
            }
            CallSignal::Candidates { candidates, .. } => {
                if !candidates.is_empty() {
                    self.outputs
                        .push_back(CallOutput::RemoteCandidates(candidates));
                }
            }
            CallSignal::Busy { .. } => {
                if outgoing && before_answer {
                    self.end(EndReason::Busy, None, now);
                }
            }
            CallSignal::Hangup { reason, .. } => {
                let ended = match (reason, before_answer) {
                    (HangupReason::Declined, true) if outgoing => EndReason::Declined,
                    (HangupReason::NoAnswer, true) => EndReason::NoAnswer,
                    (HangupReason::Failed, _) => EndReason::Failed,
                    (_, true) => EndReason::Cancelled,
                    (_, false) => EndReason::HungUp { by_peer: true },
                };
                self.end(ended, None, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::signal::test_side as side;

    fn drain(c: &mut Call) -> Vec<CallOutput> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    fn signals(out: &[CallOutput]) -> Vec<&'static str> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Signal(s) => Some(s.name()),
                _ => None,
            })
            .collect()
    }

    /// Runs both machines against each other, passing signals across, until quiet.
    fn exchange(a: &mut Call, b: &mut Call, now: Instant) {
        loop {
            let (oa, ob) = (drain(a), drain(b));
            if oa.is_empty() && ob.is_empty() {
                return;
            }
            for o in oa {
                if let CallOutput::Signal(s) = o {
                    b.on_signal(s, now);
                }
            }
            for o in ob {
                if let CallOutput::Signal(s) = o {
                    a.on_signal(s, now);
                }
            }
        }
    }

    fn placed(now: Instant) -> (Call, Call) {
        let id = CallId([1; 16]);
        let mut caller = Call::place(id, MediaKind::Video, side(1), 0, now);
        let out = drain(&mut caller);
        let Some(CallOutput::Signal(CallSignal::Offer { media, offer, .. })) = out.first().cloned()
        else {
            panic!("no offer first: {out:?}");
        };
        let callee = Call::ring(id, media, offer, now);
        (caller, callee)
    }

    #[test]
    fn a_call_rings_connects_and_hangs_up_with_its_duration() {
        let t0 = Instant::now();
        let (mut a, mut b) = placed(t0);
        exchange(&mut a, &mut b, t0);
        assert_eq!(
            (a.state(), b.state()),
            (CallState::Ringing, CallState::Ringing)
        );
        b.accept(side(2), false, t0).unwrap();
        exchange(&mut a, &mut b, t0);
        assert_eq!(a.state(), CallState::Connecting);
        assert_eq!(a.remote(), Some(&side(2)));
        assert!(!a.remote_video());
        a.media_connected(t0);
        b.media_connected(t0);
        let t1 = t0 + Duration::from_secs(192);
        b.hang_up(t1);
        exchange(&mut a, &mut b, t1);
        assert_eq!(
            a.state(),
            CallState::Ended(EndReason::HungUp { by_peer: true })
        );
        assert_eq!(
            b.state(),
            CallState::Ended(EndReason::HungUp { by_peer: false })
        );
        let rec = a.record().unwrap();
        assert_eq!(rec.duration, Some(Duration::from_secs(192)));
        assert!(!rec.is_missed());
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn decline_cancel_and_busy_end_both_sides_with_the_right_reason() {
        let t = Instant::now();
        let (mut a, mut b) = placed(t);
        b.decline(t).unwrap();
        exchange(&mut a, &mut b, t);
        assert_eq!(a.state(), CallState::Ended(EndReason::Declined));
        assert_eq!(b.state(), CallState::Ended(EndReason::Declined));
        assert!(!b.record().unwrap().is_missed());

        let (mut a, mut b) = placed(t);
        a.hang_up(t);
        exchange(&mut a, &mut b, t);
        assert_eq!(a.state(), CallState::Ended(EndReason::Cancelled));
        assert_eq!(b.state(), CallState::Ended(EndReason::Cancelled));
        assert!(b.record().unwrap().is_missed());

        let (mut a, _) = placed(t);
        a.on_signal(CallSignal::Busy { call_id: a.id() }, t);
        assert_eq!(a.state(), CallState::Ended(EndReason::Busy));
        // Only a ringing incoming call can be accepted.
        assert_eq!(a.accept(side(3), true, t), Err(CallError::NotRinging));
    }

    #[test]
    fn nobody_answering_ends_both_sides_at_the_ring_timeout_and_not_before() {
        let t = Instant::now();
        let (mut a, mut b) = placed(t);
        exchange(&mut a, &mut b, t);
        let almost = t + RING_TIMEOUT - Duration::from_millis(1);
        a.handle_timeout(almost);
        b.handle_timeout(almost);
        assert_eq!(
            (a.state(), b.state()),
            (CallState::Ringing, CallState::Ringing)
        );
        assert_eq!(a.poll_timeout(), Some(t + RING_TIMEOUT));
        a.handle_timeout(t + RING_TIMEOUT);
        b.handle_timeout(t + RING_TIMEOUT);
        let out = drain(&mut a);
        assert_eq!(signals(&out), ["hangup"]);
        assert_eq!(a.state(), CallState::Ended(EndReason::NoAnswer));
        assert_eq!(b.state(), CallState::Ended(EndReason::NoAnswer));
        assert!(b.record().unwrap().is_missed());
        // The callee's own timer needs no signal.
        assert!(signals(&drain(&mut b)).iter().all(|s| *s == "ringing"));
    }

    #[test]
    fn media_that_never_connects_or_stays_lost_fails_the_call() {
        let t = Instant::now();
        let (mut a, mut b) = placed(t);
        b.accept(side(2), true, t).unwrap();
        exchange(&mut a, &mut b, t);
        a.handle_timeout(t + CONNECT_TIMEOUT);
        exchange(&mut a, &mut b, t + CONNECT_TIMEOUT);
        assert_eq!(a.state(), CallState::Ended(EndReason::Failed));
        assert_eq!(b.state(), CallState::Ended(EndReason::Failed));

        let (mut a, mut b) = placed(t);
        b.accept(side(2), true, t).unwrap();
        exchange(&mut a, &mut b, t);
        a.media_connected(t);
        let lost = t + Duration::from_secs(60);
        a.media_lost(lost);
        assert_eq!(a.state(), CallState::Reconnecting);
        // Coming back in time keeps the call and its start.
        a.media_connected(lost + Duration::from_secs(3));
        assert_eq!(a.state(), CallState::Connected);
        a.media_lost(lost + Duration::from_secs(10));
        a.handle_timeout(lost + Duration::from_secs(10) + RECONNECT_TIMEOUT);
        assert_eq!(a.state(), CallState::Ended(EndReason::Failed));
        assert_eq!(
            a.record().unwrap().duration,
            Some(Duration::from_secs(70) + RECONNECT_TIMEOUT)
        );
    }

    #[test]
    fn duplicates_and_out_of_place_signals_change_nothing() {
        let t = Instant::now();
        let (mut a, mut b) = placed(t);
        b.accept(side(2), false, t).unwrap();
        exchange(&mut a, &mut b, t);
        a.media_connected(t);
        drain(&mut a);
        // A redelivered answer, a late ringing, another call's hangup.
        a.on_signal(
            CallSignal::Answer {
                call_id: a.id(),
                video: true,
                answer: side(9),
            },
            t,
        );
        a.on_signal(CallSignal::Ringing { call_id: a.id() }, t);
        a.on_signal(
            CallSignal::Hangup {
                call_id: CallId([7; 16]),
                reason: HangupReason::Normal,
            },
            t,
        );
        a.on_signal(CallSignal::Busy { call_id: a.id() }, t);
        assert_eq!(a.state(), CallState::Connected);
        assert_eq!(a.remote(), Some(&side(2)));
        assert!(drain(&mut a).is_empty());
    }
}
