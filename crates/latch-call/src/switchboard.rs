//! One call at a time: routes signals to the call they belong to, answers a second caller
//! with busy, and settles two people calling each other at once.
//!
//! The switchboard is sans-I/O like [`Call`]. `P` names a peer (the client uses the chat a
//! call belongs to); a signal is routed only when both its call id and its peer match, so
//! nobody can end or answer someone else's call by guessing its id.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::machine::{Call, CallError, CallOutput, CallRecord, CallState, Direction, EndReason};
use crate::signal::{CallId, CallSignal, MediaKind, MediaOffer, SignalError};

/// An offer older than this (by the caller's clock against ours) is not rung: it waited in a
/// mailbox while this device was off, and the caller has long stopped ringing. The margin over
/// the ring itself allows for clocks a little apart.
pub const MAX_OFFER_AGE: Duration = Duration::from_secs(45 + 30);

/// What the switchboard asks its owner to do or show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchboardEvent<P> {
    /// Send a signal to a peer, inside its session.
    Send {
        /// To whom.
        to: P,
        /// What.
        signal: CallSignal,
    },
    /// The current call changed state.
    State {
        /// With whom.
        peer: P,
        /// Which call.
        call_id: CallId,
        /// Its new state.
        state: CallState,
    },
    /// The peer sent more ICE candidates.
    RemoteCandidates {
        /// With whom.
        peer: P,
        /// Which call.
        call_id: CallId,
        /// The candidate lines.
        candidates: Vec<String>,
    },
    /// A call is over (after its last state change); the chat shows this record.
    Ended {
        /// With whom.
        peer: P,
        /// What happened.
        record: CallRecord,
    },
}

/// At most one call, and what it has to say.
#[derive(Debug)]
pub struct Switchboard<P> {
    current: Option<(P, Call)>,
    events: VecDeque<SwitchboardEvent<P>>,
}

impl<P> Default for Switchboard<P> {
    fn default() -> Self {
        Self {
            current: None,
            events: VecDeque::new(),
        }
    }
}

impl<P: Clone + PartialEq> Switchboard<P> {
    /// An idle switchboard.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call in progress, and with whom.
    pub fn current(&self) -> Option<(&P, &Call)> {
        self.current
            .as_ref()
            .filter(|(_, c)| !c.state().is_ended())
            .map(|(p, c)| (p, c))
    }

    fn live(&mut self, id: CallId) -> Result<&mut Call, CallError> {
        match &mut self.current {
            Some((_, c)) if c.id() == id && !c.state().is_ended() => Ok(c),
            _ => Err(CallError::NoSuchCall),
        }
    }

    /// Places a call to `peer`.
    ///
    /// # Errors
    /// [`CallError::Busy`] while another call is in progress.
    pub fn place(
        &mut self,
        peer: P,
        id: CallId,
        media: MediaKind,
        local: MediaOffer,
        sent_at_ms: i64,
        now: Instant,
    ) -> Result<(), CallError> {
        if self.current().is_some() {
            return Err(CallError::Busy);
        }
        self.current = Some((peer, Call::place(id, media, local, sent_at_ms, now)));
        self.collect();
        Ok(())
    }

    /// A signal arrived from `peer`. `now_ms` is this device's wall clock, to age offers.
    ///
    /// # Errors
    /// [`SignalError`] for a signal that breaks a bound; it is dropped.
    pub fn receive(
        &mut self,
        peer: P,
        signal: CallSignal,
        now_ms: i64,
        now: Instant,
    ) -> Result<(), SignalError> {
        signal.check()?;
        if let CallSignal::Offer {
            call_id,
            media,
            sent_at,
            offer,
        } = signal
        {
            self.offer(peer, call_id, media, sent_at, offer, now_ms, now);
        } else if let Some((p, call)) = &mut self.current
            && *p == peer
            && call.id() == signal.call_id()
        {
            call.on_signal(signal, now);
        }
        self.collect();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the offer's fields, taken apart once
    fn offer(
        &mut self,
        peer: P,
        id: CallId,
        media: MediaKind,
        sent_at: i64,
        offer: MediaOffer,
        now_ms: i64,
        now: Instant,
    ) {
        let missed = |peer: P, reason| SwitchboardEvent::Ended {
            peer,
            record: CallRecord {
                call_id: id,
                direction: Direction::Incoming,
                media,
                reason,
                duration: None,
            },
        };
        let age_ms = now_ms.saturating_sub(sent_at);
        if age_ms > MAX_OFFER_AGE.as_millis() as i64 {
            self.events.push_back(missed(peer, EndReason::NoAnswer));
            return;
        }
        if let Some((p, call)) = self.current.as_ref().filter(|(_, c)| !c.state().is_ended()) {
            if call.id() == id {
                return; // a redelivered offer
            }
            let glare = *p == peer
                && call.direction() == Direction::Outgoing
                && matches!(call.state(), CallState::Dialing | CallState::Ringing);
            if glare {
                // Both called each other at once. Both sides compare ids the same way: the
                // lower id is the call that goes on; the other side drops its own offer (its
                // peer ignores it, so nothing needs saying) and rings.
                if call.id() < id {
                    return;
                }
                // Ours ends here first (its state and record go out like any ended call's),
                // so whoever follows it can let go of it.
                if let Some((_, own)) = &mut self.current {
                    own.yield_to_crossing_call(now);
                }
                self.collect();
            } else {
                self.events.push_back(SwitchboardEvent::Send {
                    to: peer.clone(),
                    signal: CallSignal::Busy { call_id: id },
                });
                self.events.push_back(missed(peer, EndReason::Busy));
                return;
            }
        }
        self.current = Some((peer, Call::ring(id, media, offer, now)));
    }

    /// The user accepts the ringing call.
    ///
    /// # Errors
    /// [`CallError::NoSuchCall`] or [`CallError::NotRinging`].
    pub fn accept(
        &mut self,
        id: CallId,
        local: MediaOffer,
        video: bool,
        now: Instant,
    ) -> Result<(), CallError> {
        let r = self.live(id)?.accept(local, video, now);
        self.collect();
        r
    }

    /// The user declines the ringing call.
    ///
    /// # Errors
    /// [`CallError::NoSuchCall`] or [`CallError::NotRinging`].
    pub fn decline(&mut self, id: CallId, now: Instant) -> Result<(), CallError> {
        let r = self.live(id)?.decline(now);
        self.collect();
        r
    }

    /// The user hangs up.
    ///
    /// # Errors
    /// [`CallError::NoSuchCall`].
    pub fn hang_up(&mut self, id: CallId, now: Instant) -> Result<(), CallError> {
        self.live(id)?.hang_up(now);
        self.collect();
        Ok(())
    }

    /// The call's transport connected.
    pub fn media_connected(&mut self, id: CallId, now: Instant) {
        if let Ok(c) = self.live(id) {
            c.media_connected(now);
        }
        self.collect();
    }

    /// The call's transport lost the peer.
    pub fn media_lost(&mut self, id: CallId, now: Instant) {
        if let Ok(c) = self.live(id) {
            c.media_lost(now);
        }
        self.collect();
    }

    /// When [`Self::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().and_then(|(_, c)| c.poll_timeout())
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, c)) = &mut self.current {
            c.handle_timeout(now);
        }
        self.collect();
    }

    /// The next thing to do or show.
    pub fn poll_event(&mut self) -> Option<SwitchboardEvent<P>> {
        self.events.pop_front()
    }

    /// Moves the call's outputs into the event queue; forgets a call once it is over.
    fn collect(&mut self) {
        let Some((peer, call)) = &mut self.current else {
            return;
        };
        while let Some(out) = call.poll_output() {
            let peer = peer.clone();
            let call_id = call.id();
            self.events.push_back(match out {
                CallOutput::Signal(signal) => SwitchboardEvent::Send { to: peer, signal },
                CallOutput::State(state) => SwitchboardEvent::State {
                    peer,
                    call_id,
                    state,
                },
                CallOutput::RemoteCandidates(candidates) => SwitchboardEvent::RemoteCandidates {
                    peer,
                    call_id,
                    candidates,
                },
            });
        }
        if let Some(record) = call.record() {
            self.events.push_back(SwitchboardEvent::Ended {
                peer: peer.clone(),
                record,
            });
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::HangupReason;

    use crate::signal::test_side as side;

    fn offer(id: u8, sent_at: i64) -> CallSignal {
        CallSignal::Offer {
            call_id: CallId([id; 16]),
            media: MediaKind::Audio,
            sent_at,
            offer: side(id),
        }
    }

    fn drain(s: &mut Switchboard<&'static str>) -> Vec<SwitchboardEvent<&'static str>> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn sent(ev: &[SwitchboardEvent<&'static str>]) -> Vec<(&'static str, &'static str)> {
        ev.iter()
            .filter_map(|e| match e {
                SwitchboardEvent::Send { to, signal } => Some((*to, signal.name())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_second_caller_gets_busy_and_the_first_call_goes_on() {
        let t = Instant::now();
        let mut s = Switchboard::new();
        s.receive("bob", offer(1, 0), 0, t).unwrap();
        drain(&mut s);
        s.receive("carol", offer(2, 0), 0, t).unwrap();
        let ev = drain(&mut s);
        assert_eq!(sent(&ev), [("carol", "busy")]);
        assert!(ev.iter().any(|e| matches!(e,
            SwitchboardEvent::Ended { peer: "carol", record } if record.is_missed())));
        assert_eq!(
            s.current().map(|(p, c)| (*p, c.id())),
            Some(("bob", CallId([1; 16])))
        );
        // And this device cannot place a second call either.
        assert_eq!(
            s.place("dave", CallId([3; 16]), MediaKind::Audio, side(3), 0, t),
            Err(CallError::Busy)
        );
    }

    #[test]
    fn only_the_calls_own_peer_can_end_it() {
        let t = Instant::now();
        let mut s = Switchboard::new();
        s.receive("bob", offer(1, 0), 0, t).unwrap();
        let hangup = CallSignal::Hangup {
            call_id: CallId([1; 16]),
            reason: HangupReason::Normal,
        };
        s.receive("mallory", hangup.clone(), 0, t).unwrap();
        assert!(s.current().is_some());
        s.receive("bob", hangup, 0, t).unwrap();
        assert!(s.current().is_none());
        let ev = drain(&mut s);
        assert!(
            matches!(ev.last(), Some(SwitchboardEvent::Ended { peer: "bob", record })
            if record.reason == EndReason::Cancelled)
        );
    }

    #[test]
    fn a_stale_offer_is_a_missed_call_not_a_ring() {
        let t = Instant::now();
        let mut s = Switchboard::new();
        let now_ms = 10_000_000;
        s.receive(
            "bob",
            offer(1, now_ms - MAX_OFFER_AGE.as_millis() as i64 - 1),
            now_ms,
            t,
        )
        .unwrap();
        assert!(s.current().is_none());
        let ev = drain(&mut s);
        assert_eq!(sent(&ev), []);
        assert!(matches!(&ev[..], [SwitchboardEvent::Ended { record, .. }] if record.is_missed()));
        // Just inside the limit it rings.
        s.receive(
            "bob",
            offer(2, now_ms - MAX_OFFER_AGE.as_millis() as i64),
            now_ms,
            t,
        )
        .unwrap();
        assert!(s.current().is_some());
    }

    #[test]
    fn two_people_calling_each_other_end_up_in_one_call() {
        let t = Instant::now();
        let (low, high) = (CallId([1; 16]), CallId([2; 16]));
        let mut alice = Switchboard::new();
        let mut bob = Switchboard::new();
        alice
            .place("bob", low, MediaKind::Audio, side(1), 0, t)
            .unwrap();
        bob.place("alice", high, MediaKind::Audio, side(2), 0, t)
            .unwrap();
        let a_offer = drain(&mut alice);
        let b_offer = drain(&mut bob);
        for e in b_offer {
            if let SwitchboardEvent::Send { signal, .. } = e {
                alice.receive("bob", signal, 0, t).unwrap();
            }
        }
        for e in a_offer {
            if let SwitchboardEvent::Send { signal, .. } = e {
                bob.receive("alice", signal, 0, t).unwrap();
            }
        }
        // Alice's lower id wins: her call goes on, Bob's device now rings with it.
        assert_eq!(alice.current().map(|(_, c)| c.id()), Some(low));
        let (_, bobs) = bob.current().unwrap();
        assert_eq!((bobs.id(), bobs.direction()), (low, Direction::Incoming));
        assert!(sent(&drain(&mut alice)).is_empty(), "no busy either way");
        let bob_events = drain(&mut bob);
        assert_eq!(sent(&bob_events), [("alice", "ringing")]);
        // Bob's own call ended visibly (so its media and keys can go), before the ring.
        let ended = bob_events
            .iter()
            .position(
                |e| matches!(e, SwitchboardEvent::Ended { record, .. } if record.call_id == high),
            )
            .expect("Bob's own call ends");
        let rings = bob_events
            .iter()
            .position(|e| matches!(e, SwitchboardEvent::State { call_id, state: CallState::Ringing, .. } if *call_id == low))
            .unwrap();
        assert!(ended < rings);
    }

    #[test]
    fn hostile_signals_are_refused_and_change_nothing() {
        let t = Instant::now();
        let mut s = Switchboard::new();
        let mut bad = side(1);
        bad.ice.pwd = "short".into();
        let signal = CallSignal::Offer {
            call_id: CallId([1; 16]),
            media: MediaKind::Video,
            sent_at: 0,
            offer: bad,
        };
        assert!(s.receive("bob", signal, 0, t).is_err());
        assert!(s.current().is_none());
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn the_ended_event_follows_the_last_state_and_frees_the_line() {
        let t = Instant::now();
        let mut s = Switchboard::new();
        s.place("bob", CallId([1; 16]), MediaKind::Video, side(1), 0, t)
            .unwrap();
        s.handle_timeout(t + crate::machine::RING_TIMEOUT);
        let ev = drain(&mut s);
        let n = ev.len();
        assert!(matches!(
            ev[n - 2],
            SwitchboardEvent::State {
                state: CallState::Ended(EndReason::NoAnswer),
                ..
            }
        ));
        assert!(matches!(ev[n - 1], SwitchboardEvent::Ended { .. }));
        assert!(s.current().is_none());
        assert!(
            s.place("bob", CallId([2; 16]), MediaKind::Audio, side(1), 0, t)
                .is_ok()
        );
    }
}
