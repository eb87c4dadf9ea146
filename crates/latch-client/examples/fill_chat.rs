//! Fills a profile with one long standard chat, for the desktop app's scrolling benchmark:
//! `cargo run --release -p latch-client --example fill_chat -- <home> <profile> <count>`.
//! Creates the profile (keys in the OS keyring) if it does not exist; the contact is a
//! made-up key, so nothing is sent anywhere.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use latch_client::Profiles;
use latch_client::profile::{DEFAULT_RELAY, KEYRING_SERVICE};
use latch_store::{ConversationKind, Direction, MessageStatus, NewMessage, OsKeyring};

/// Messages written per transaction.
const BATCH: usize = 5_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [home, name, count] = args.as_slice() else {
        eprintln!("usage: fill_chat <home> <profile> <count>");
        return ExitCode::FAILURE;
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("count must be a number");
        return ExitCode::FAILURE;
    };
    match fill(&PathBuf::from(home), name, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fill_chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fill(
    home: &std::path::Path,
    name: &str,
    count: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let profiles = Profiles::new(home, Box::new(OsKeyring::new(KEYRING_SERVICE)));
    let profile = if profiles.list()?.iter().any(|p| p == name) {
        profiles.open(name)?
    } else {
        profiles.create(name, DEFAULT_RELAY)?
    };
    let store = profile.store;
    // A contact with a made-up identity key: the chat is only ever read.
    let key = [7u8; 129];
    let conversation = store.write(|tx| {
        let (contact, _) = tx.observe_identity("pen.pal", &key, 0)?;
        match tx.standard_conversation(contact)? {
            Some(id) => Ok(id),
            None => tx.create_conversation(contact, ConversationKind::Standard, None, 0),
        }
    })?;
    let start = 1_600_000_000_000i64;
    let mut written = 0;
    while written < count {
        let n = BATCH.min(count - written);
        store.write(|tx| {
            for i in written..written + n {
                let body = format!(
                    "Message {i}: {}",
                    "the quick brown fox jumps over the lazy dog ".repeat(1 + i % 4)
                );
                let incoming = i % 3 != 0;
                tx.insert_message(&NewMessage {
                    conversation_id: conversation,
                    direction: if incoming {
                        Direction::Incoming
                    } else {
                        Direction::Outgoing
                    },
                    status: if incoming {
                        MessageStatus::Read
                    } else {
                        MessageStatus::Delivered
                    },
                    body: &body,
                    // Four minutes apart, so day separators appear every few hundred rows.
                    sent_at: start + i as i64 * 240_000,
                    received_at: incoming.then_some(start + i as i64 * 240_000),
                    expires_at: None,
                    remote_id: None,
                    expire_after_secs: None,
                })?;
            }
            Ok(())
        })?;
        written += n;
    }
    println!(
        "{written} messages in chat {} of profile {name}",
        conversation.0
    );
    Ok(())
}
