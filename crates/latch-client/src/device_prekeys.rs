//! This device's own prekeys over their life: the one-time pool (kept near a target on the
//! relay, capped and expired here) and the signed and last-resort keys (rotated on a schedule,
//! the old ones kept for a grace period so late first messages still open).
//!
//! Why the pool is bounded here and not only at the relay: every claim of one of our keys
//! makes the relay ask for more, and a stranger can claim as often as the relay lets them. So
//! the engine replenishes only up to [`ONE_TIME_PREKEY_TARGET`] keys on the relay, never holds
//! more than [`MAX_LOCAL_ONE_TIME_PREKEYS`] private keys, and drops keys that were claimed
//! long ago and never used (the relay hands out the oldest first, so every key older than the
//! newest `remaining` ones it still holds has been claimed).

use latch_protocol::{IdentityKeyPair, KemPreKeyRecord, OneTimePreKeyRecord, SignedPreKeyRecord};
use latch_store::{PreKeyKind, StoreError, Tx, UnixMillis};
use rand_core::OsRng;

/// How many one-time prekeys we want the relay to hold for us.
pub(crate) const ONE_TIME_PREKEY_TARGET: u32 = 100;

/// The most one-time private keys this device keeps. Past it the oldest go: they were
/// claimed hundreds of claims ago and their initiator never wrote.
pub(crate) const MAX_LOCAL_ONE_TIME_PREKEYS: usize = 500;

/// How long a claimed but unused one-time key is kept: longer than the relay keeps an
/// envelope (30 days), so a first message still in a mailbox can always be opened.
pub(crate) const CLAIMED_PREKEY_GRACE_MS: i64 = 35 * DAY_MS;

/// How often the signed prekey and the last-resort post-quantum key are replaced.
pub(crate) const ROTATION_INTERVAL_MS: i64 = 7 * DAY_MS;

/// How long a replaced signed or last-resort key still opens first messages that name it.
pub(crate) const ROTATED_PREKEY_GRACE_MS: i64 = 35 * DAY_MS;

const DAY_MS: i64 = 24 * 3_600 * 1_000;

/// Settings keys: the next free prekey id (one-time, signed and last-resort keys share the
/// counter, so an ML-KEM id never means two keys), the current signed and last-resort ids,
/// and when a replaced key was retired.
const SETTING_NEXT_PREKEY_ID: &str = "next_prekey_id";
const SETTING_SIGNED_ID: &str = "signed_prekey_id";
const SETTING_LAST_RESORT_ID: &str = "last_resort_prekey_id";
const RETIRED_SIGNED: &str = "retired_signed_prekey/";
const RETIRED_LAST_RESORT: &str = "retired_last_resort_prekey/";

/// The ids the first profiles used for their signed and last-resort keys, before rotation.
const FIRST_ID: u32 = 1;

/// Makes a new profile's keys: a signed prekey, a last-resort key and a first one-time pool.
///
/// # Errors
/// A database error.
pub(crate) fn create_initial(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    now: UnixMillis,
) -> Result<(), StoreError> {
    put_signed(tx, identity, FIRST_ID, now)?;
    put_last_resort(tx, identity, FIRST_ID, now)?;
    tx.set_setting(SETTING_NEXT_PREKEY_ID, &(FIRST_ID + 1).to_string())?;
    generate_one_time(tx, identity, ONE_TIME_PREKEY_TARGET, now)?;
    Ok(())
}

/// The id of the signed prekey to publish.
///
/// # Errors
/// A database error.
pub(crate) fn current_signed_id(tx: &Tx<'_>) -> Result<u32, StoreError> {
    id_setting(tx, SETTING_SIGNED_ID)
}

/// The id of the last-resort post-quantum key to publish.
///
/// # Errors
/// A database error.
pub(crate) fn current_last_resort_id(tx: &Tx<'_>) -> Result<u32, StoreError> {
    id_setting(tx, SETTING_LAST_RESORT_ID)
}

fn id_setting(tx: &Tx<'_>, key: &str) -> Result<u32, StoreError> {
    Ok(tx
        .setting(key)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(FIRST_ID))
}

/// Generates `count` fresh one-time prekeys (an X25519 and an ML-KEM key under each id) and
/// returns their ids.
///
/// # Errors
/// A database error.
pub(crate) fn generate_one_time(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    count: u32,
    now: UnixMillis,
) -> Result<Vec<u32>, StoreError> {
    let ids = next_ids(tx, count)?;
    for &id in &ids {
        let x = OneTimePreKeyRecord::generate(id, &mut OsRng);
        tx.put_prekey(PreKeyKind::OneTime, id, x.to_secret_bytes().expose(), now)?;
        let kem = KemPreKeyRecord::generate(id, millis(now), false, identity, &mut OsRng);
        tx.put_prekey(
            PreKeyKind::PostQuantum,
            id,
            kem.to_secret_bytes().expose(),
            now,
        )?;
    }
    Ok(ids)
}

/// Brings the one-time pool back towards [`ONE_TIME_PREKEY_TARGET`] on the relay, which says
/// it holds `relay_holds` of ours. Expires claimed keys past their grace, keeps at most
/// [`MAX_LOCAL_ONE_TIME_PREKEYS`], and returns the ids of the fresh keys to publish (none when
/// the relay holds enough).
///
/// # Errors
/// A database error.
pub(crate) fn replenish_one_time(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    relay_holds: u32,
    now: UnixMillis,
) -> Result<Vec<u32>, StoreError> {
    let held = tx.prekey_ages(PreKeyKind::OneTime)?;
    // The relay hands out the lowest id first, so the newest `relay_holds` are still there
    // and every older one has been claimed.
    let claimed = held.len().saturating_sub(relay_holds as usize);
    let stale = now - CLAIMED_PREKEY_GRACE_MS;
    let mut kept = Vec::with_capacity(held.len());
    for (i, (id, made_at)) in held.into_iter().enumerate() {
        if i < claimed && made_at < stale {
            remove_one_time(tx, id)?;
        } else {
            kept.push(id);
        }
    }
    let want = ONE_TIME_PREKEY_TARGET.saturating_sub(relay_holds);
    if want == 0 {
        return Ok(Vec::new());
    }
    // Room under the cap, oldest first.
    let over = (kept.len() + want as usize).saturating_sub(MAX_LOCAL_ONE_TIME_PREKEYS);
    for &id in kept.iter().take(over) {
        remove_one_time(tx, id)?;
    }
    generate_one_time(tx, identity, want, now)
}

fn remove_one_time(tx: &Tx<'_>, id: u32) -> Result<(), StoreError> {
    tx.remove_prekey(PreKeyKind::OneTime, id)?;
    tx.remove_prekey(PreKeyKind::PostQuantum, id)?;
    Ok(())
}

/// Replaces the signed prekey and the last-resort key when the current ones are older than
/// [`ROTATION_INTERVAL_MS`], and deletes replaced keys whose grace has passed (with the
/// record of last-resort uses that only they needed). Returns whether new keys were made, so
/// the caller publishes them.
///
/// # Errors
/// A database error.
pub(crate) fn rotate_if_due(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let signed = current_signed_id(tx)?;
    let made_at = tx
        .prekey_ages(PreKeyKind::Signed)?
        .into_iter()
        .find(|&(id, _)| id == signed)
        .map(|(_, at)| at);
    let due = made_at.is_none_or(|at| now - at >= ROTATION_INTERVAL_MS);
    if due {
        let last_resort = current_last_resort_id(tx)?;
        let ids = next_ids(tx, 2)?;
        let (Some(&new_signed), Some(&new_last_resort)) = (ids.first(), ids.get(1)) else {
            return Err(StoreError::Invalid("no prekey ids left"));
        };
        put_signed(tx, identity, new_signed, now)?;
        put_last_resort(tx, identity, new_last_resort, now)?;
        tx.set_setting(SETTING_SIGNED_ID, &new_signed.to_string())?;
        tx.set_setting(SETTING_LAST_RESORT_ID, &new_last_resort.to_string())?;
        tx.set_setting(&format!("{RETIRED_SIGNED}{signed}"), &now.to_string())?;
        tx.set_setting(
            &format!("{RETIRED_LAST_RESORT}{last_resort}"),
            &now.to_string(),
        )?;
    }
    drop_retired(tx, RETIRED_SIGNED, now, |id| {
        tx.remove_prekey(PreKeyKind::Signed, id).map(drop)
    })?;
    drop_retired(tx, RETIRED_LAST_RESORT, now, |id| {
        tx.remove_prekey(PreKeyKind::PostQuantum, id)?;
        tx.forget_last_resort_uses(id).map(drop)
    })?;
    Ok(due)
}

/// Deletes the keys retired under `prefix` more than [`ROTATED_PREKEY_GRACE_MS`] ago.
fn drop_retired(
    tx: &Tx<'_>,
    prefix: &str,
    now: UnixMillis,
    mut delete: impl FnMut(u32) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (key, value) in tx.settings_with_prefix(prefix)? {
        let id = key
            .strip_prefix(prefix)
            .and_then(|id| id.parse::<u32>().ok());
        let retired_at = value.parse::<i64>().ok();
        match (id, retired_at) {
            (Some(id), Some(at)) if at < now - ROTATED_PREKEY_GRACE_MS => {
                delete(id)?;
                tx.delete_setting(&key)?;
            }
            (Some(_), Some(_)) => {}
            // Unreadable bookkeeping: nothing to keep it for.
            _ => {
                tx.delete_setting(&key)?;
            }
        }
    }
    Ok(())
}

fn put_signed(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    id: u32,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let record = SignedPreKeyRecord::generate(id, millis(now), identity, &mut OsRng);
    tx.put_prekey(
        PreKeyKind::Signed,
        id,
        record.to_secret_bytes().expose(),
        now,
    )
}

fn put_last_resort(
    tx: &Tx<'_>,
    identity: &IdentityKeyPair,
    id: u32,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let record = KemPreKeyRecord::generate(id, millis(now), true, identity, &mut OsRng);
    tx.put_prekey(
        PreKeyKind::PostQuantum,
        id,
        record.to_secret_bytes().expose(),
        now,
    )
}

/// Takes `count` ids from the shared counter.
fn next_ids(tx: &Tx<'_>, count: u32) -> Result<Vec<u32>, StoreError> {
    let first: u32 = tx
        .setting(SETTING_NEXT_PREKEY_ID)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(FIRST_ID + 1);
    let end = first
        .checked_add(count)
        .ok_or(StoreError::Invalid("no prekey ids left"))?;
    tx.set_setting(SETTING_NEXT_PREKEY_ID, &end.to_string())?;
    Ok((first..end).collect())
}

fn millis(now: UnixMillis) -> u64 {
    u64::try_from(now).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use latch_store::MemoryKeyStore;

    use super::*;
    use crate::profile::{OpenProfile, Profiles};

    /// Any time after the profile was made (profiles are made at the wall clock's time).
    const T0: UnixMillis = 1_800_000_000_000;

    fn profile(home: &std::path::Path) -> OpenProfile {
        Profiles::new(home, Box::new(MemoryKeyStore::new()))
            .create("ada", "ws://127.0.0.1:7878")
            .unwrap()
    }

    fn one_time_ids(p: &OpenProfile) -> Vec<u32> {
        p.store
            .write(|tx| tx.prekey_ids(PreKeyKind::OneTime))
            .unwrap()
    }

    fn replenish(p: &OpenProfile, relay_holds: u32, now: UnixMillis) -> Vec<u32> {
        p.store
            .write(|tx| replenish_one_time(tx, &p.identity, relay_holds, now))
            .unwrap()
    }

    #[test]
    fn a_claim_flood_never_grows_the_local_pool_past_its_cap() {
        let home = tempfile::tempdir().unwrap();
        let p = profile(home.path());
        // A relay (or a stranger claiming through it) that always says none are left.
        for round in 0..7 {
            let fresh = replenish(&p, 0, T0 + round);
            assert_eq!(fresh.len(), ONE_TIME_PREKEY_TARGET as usize);
            let held = one_time_ids(&p);
            assert!(
                held.len() <= MAX_LOCAL_ONE_TIME_PREKEYS,
                "{} held",
                held.len()
            );
            // The fresh keys are the ones kept; the oldest went first.
            assert!(fresh.iter().all(|id| held.contains(id)));
            let kem = p
                .store
                .write(|tx| tx.prekey_ids(PreKeyKind::PostQuantum))
                .unwrap();
            // One-time ML-KEM keys go with their X25519 halves (plus the last-resort key).
            assert_eq!(kem.len(), held.len() + 1);
        }
    }

    #[test]
    fn replenishing_tops_up_to_the_target_and_no_further() {
        let home = tempfile::tempdir().unwrap();
        let p = profile(home.path());
        assert_eq!(one_time_ids(&p).len(), ONE_TIME_PREKEY_TARGET as usize);
        assert_eq!(replenish(&p, ONE_TIME_PREKEY_TARGET - 5, T0).len(), 5);
        assert!(replenish(&p, ONE_TIME_PREKEY_TARGET, T0).is_empty());
        assert!(replenish(&p, u32::MAX, T0).is_empty());
    }

    #[test]
    fn claimed_keys_expire_after_their_grace_and_keys_still_on_the_relay_stay() {
        let home = tempfile::tempdir().unwrap();
        let p = profile(home.path());
        let first = one_time_ids(&p);
        let made_at = p
            .store
            .write(|tx| tx.prekey_ages(PreKeyKind::OneTime))
            .unwrap()[0]
            .1;
        // Within the grace nothing that may still be used goes.
        replenish(&p, 40, made_at + CLAIMED_PREKEY_GRACE_MS - 1);
        assert!(first.iter().all(|id| one_time_ids(&p).contains(id)));
        // Long after, the relay holds the newest 40 of the first batch plus the 60 made above;
        // the other 60 of the first batch were claimed and never used.
        replenish(&p, 100, made_at + CLAIMED_PREKEY_GRACE_MS + 1);
        let held = one_time_ids(&p);
        let (claimed, on_relay) = first.split_at(60);
        assert!(claimed.iter().all(|id| !held.contains(id)));
        assert!(on_relay.iter().all(|id| held.contains(id)));
    }

    #[test]
    fn signed_and_last_resort_keys_rotate_and_old_ones_go_after_their_grace() {
        let home = tempfile::tempdir().unwrap();
        let p = profile(home.path());
        let made_at = p
            .store
            .write(|tx| tx.prekey_ages(PreKeyKind::Signed))
            .unwrap()[0]
            .1;
        let rotate = |now| {
            p.store
                .write(|tx| rotate_if_due(tx, &p.identity, now))
                .unwrap()
        };
        let current = || {
            p.store
                .write(|tx| Ok((current_signed_id(tx)?, current_last_resort_id(tx)?)))
                .unwrap()
        };
        let (signed, last_resort) = current();
        assert!(!rotate(made_at + ROTATION_INTERVAL_MS - 1));
        assert_eq!(current(), (signed, last_resort));

        let rotated_at = made_at + ROTATION_INTERVAL_MS;
        assert!(rotate(rotated_at));
        let (new_signed, new_last_resort) = current();
        assert!(new_signed != signed && new_last_resort != last_resort);
        let base_key = [7u8; 32];
        p.store
            .write(|tx| tx.record_last_resort_use(last_resort, &base_key, rotated_at))
            .unwrap();
        // During the grace the old keys still open first messages that name them (the keys
        // rotate again meanwhile, every interval).
        let has = |kind, id| p.store.write(|tx| tx.prekey(kind, id)).unwrap().is_some();
        assert!(rotate(rotated_at + ROTATED_PREKEY_GRACE_MS - 1));
        assert!(has(PreKeyKind::Signed, signed) && has(PreKeyKind::PostQuantum, last_resort));

        rotate(rotated_at + ROTATED_PREKEY_GRACE_MS + 1);
        assert!(!has(PreKeyKind::Signed, signed));
        assert!(!has(PreKeyKind::PostQuantum, last_resort));
        assert!(has(PreKeyKind::Signed, new_signed));
        let used = p
            .store
            .write(|tx| tx.last_resort_used(last_resort, &base_key))
            .unwrap();
        assert!(!used, "uses of a deleted last-resort key are pruned");
    }
}
