//! Client properties cannot switch Tidemark's guarantees off: every property of the worker's
//! refused table is refused by the CLI (exit 2, naming it) before anything connects, in every
//! place a property is given; TLS verification is skipped only through
//! `--insecure-skip-tls-verify`, which really connects to a broker whose certificate the
//! given CA did not sign (tansu behind a TLS terminator on loopback).

use tidemark::kafka::properties::REFUSED_PROPERTIES;
use tidemark_tests::{run_cli, CliOutput, TlsTansu};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

fn cli(args: &[&str]) -> CliOutput {
    run_cli(BIN, args, &[])
}

/// A key the table refuses, as a user would write it.
fn spelled(p: &tidemark::kafka::properties::RefusedProperty) -> String {
    if p.contains {
        format!("my.{}.path", p.key)
    } else {
        p.key.to_string()
    }
}

#[test]
fn every_refused_property_exits_2_naming_it_in_every_command() {
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf8 path");
    for p in REFUSED_PROPERTIES {
        let key = spelled(p);
        let property = format!("{key}=v");
        // An unreachable broker: a property that got through would fail with exit 5 instead.
        let offsets = cli(&[
            "offset-rollback",
            "snapshot",
            "--path",
            path,
            "--all-groups",
            "--bootstrap-servers",
            "127.0.0.1:9",
            "-X",
            &property,
        ]);
        let backup = cli(&[
            "backup",
            "--bootstrap-servers",
            "127.0.0.1:9",
            "--path",
            path,
            "--topics",
            "orders",
            "--kafka-property",
            &property,
        ]);
        for out in [offsets, backup] {
            assert_eq!(out.code, 2, "{key}: {out:?}");
            assert!(
                out.stderr.contains(&format!("Kafka property '{key}'")),
                "{key}: {}",
                out.stderr
            );
            assert!(out.stderr.contains(p.instead), "{key}: {}", out.stderr);
        }
    }
}

#[test]
fn a_restore_configuration_refuses_them_in_target_properties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("restore.yaml");
    std::fs::write(
        &config,
        format!(
            "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [127.0.0.1:9]\n  properties:\n    isolation.level: read_uncommitted\nstorage:\n  backend: filesystem\n  path: {}\n",
            dir.path().display()
        ),
    )
    .expect("write config");
    let config = config.to_str().expect("utf8");
    let out = cli(&["restore", "-c", config]);
    assert_eq!(out.code, 8, "a bad configuration file: {out:?}");
    assert!(
        out.stderr
            .contains("target.properties['isolation.level'] would let a backup store records of aborted transactions"),
        "{}",
        out.stderr
    );
    // The same property as a flag.
    let fine = config.replace("restore.yaml", "fine.yaml");
    let text = std::fs::read_to_string(config)
        .expect("read")
        .replace("  properties:\n    isolation.level: read_uncommitted\n", "");
    std::fs::write(&fine, text).expect("write");
    let out = cli(&["restore", "-c", &fine, "-X", "acks=0"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("Kafka property 'acks'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("restore.acks"), "{}", out.stderr);
}

#[test]
fn tls_verification_is_skipped_only_by_the_explicit_flag() {
    let kafka = TlsTansu::start();
    let tls = kafka.bootstrap();
    let wrong_ca = kafka.other_ca.to_str().expect("utf8");
    let list = |extra: &[&str]| {
        let mut args = vec![
            "offsets",
            "export",
            "--bootstrap-servers",
            &tls,
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            wrong_ca,
            "--request-timeout",
            "10",
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    // Verified (the default): the broker's certificate is not signed by this CA.
    let verified = list(&[]);
    assert_eq!(verified.code, 13, "{verified:?}");
    // The properties that would turn verification off are refused.
    for property in [
        "enable.ssl.certificate.verification=false",
        "ssl.endpoint.identification.algorithm=none",
    ] {
        let out = list(&["-X", property]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains("--insecure-skip-tls-verify"),
            "{}",
            out.stderr
        );
    }
    // The explicit flag connects all the same.
    let insecure = list(&["--insecure-skip-tls-verify"]);
    assert_eq!(insecure.code, 0, "{insecure:?}");
}
