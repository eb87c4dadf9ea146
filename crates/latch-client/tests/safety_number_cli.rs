//! Runs the real `latch` binary on Signal's fingerprint test vector.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const ALICE: &str = "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868";
const BOB: &str = "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b";

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn safety_number_matches_signal_vector() {
    for (version, scannable) in [
        (
            None,
            "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
        ),
        (
            Some("1"),
            "080112220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
        ),
    ] {
        let mut args = vec![
            "--json",
            "fingerprint",
            "--local-id",
            "+14152222222",
            "--local-key",
            ALICE,
            "--remote-id",
            "+14153333333",
            "--remote-key",
            BOB,
            "--iterations",
            "5200",
        ];
        if let Some(v) = version {
            args.extend(["--version", v]);
        }
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1);
        let expected = format!(
            "{{\"digits\":\"300354477692869396892869876765458257569162576843440918079131\",\"scannable\":\"{scannable}\"}}\n"
        );
        assert_eq!(stdout, expected);
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = run(&[
        "fingerprint",
        "--local-id",
        "a",
        "--local-key",
        "zz",
        "--remote-id",
        "b",
        "--remote-key",
        BOB,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid hex"));
    let out = run(&[
        "fingerprint",
        "--local-id",
        "a",
        "--local-key",
        ALICE,
        "--remote-id",
        "b",
        "--remote-key",
        BOB,
        "--iterations",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
