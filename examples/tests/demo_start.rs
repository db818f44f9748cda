//! A demo mesh that cannot start all its sidecars: the ones it started
//! must stop, so that a program (or test) that runs the demo as a library
//! gets its ports and threads back. And one told to stop while starting
//! stops then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};

use mesh_examples::demo::{self, DemoConfig, DemoError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_that_cannot_start_stops_the_sidecars_it_started() {
    for _ in 0..20 {
        // vote-bot's sidecar starts last, with the admin port after
        // voting's, emoji's and web's: hold it, so the other three start
        // and the fourth fails.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let Some(base) = port.checked_sub(3).filter(|p| *p >= 1024) else {
            continue;
        };
        let config = DemoConfig {
            admin_port: base,
            ..DemoConfig::default()
        };
        let error = demo::run(&config, &mut Vec::new(), std::future::pending())
            .await
            .unwrap_err();
        let ours = format!("127.0.0.1:{port}");
        let failed_on_ours = matches!(error, DemoError::Start(..))
            && mesh_examples::causes(&error).any(|cause| cause.to_string().contains(&ours));
        if !failed_on_ours {
            // Another program held one of the other three ports.
            continue;
        }
        // The error names the sidecar that failed, not just "a sidecar":
        // four share one configuration shape, and only the port told
        // them apart.
        assert_eq!(error.to_string(), "cannot start vote-bot's sidecar");
        for started in base..port {
            assert!(
                TcpStream::connect(("127.0.0.1", started)).is_err(),
                "a sidecar of the failed mesh still serves its admin port {started}"
            );
        }
        return;
    }
    panic!("found no four free consecutive ports in 20 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_stopped_while_its_sidecars_start_ends_before_any_traffic() {
    // The stop signal was only watched once every sidecar was ready, so a
    // Ctrl-C during start-up waited out up to 10 s per sidecar, and then a
    // run with no traffic was reported.
    let mut out = Vec::new();
    let error = demo::run(&DemoConfig::default(), &mut out, std::future::ready(()))
        .await
        .unwrap_err();
    assert!(matches!(error, DemoError::Stopped), "{error}");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_whose_timers_would_panic_is_refused() {
    // A zero interval panicked in the caller's task; a zero denied_every
    // or an rps above a billion panicked in a spawned one, and the run was
    // reported as one with no denied call or no traffic.
    let cases = [
        (
            "interval",
            DemoConfig {
                interval: std::time::Duration::ZERO,
                ..DemoConfig::default()
            },
        ),
        (
            "denied_every",
            DemoConfig {
                denied_every: std::time::Duration::ZERO,
                ..DemoConfig::default()
            },
        ),
        (
            "rps",
            DemoConfig {
                rps: std::num::NonZeroU32::MAX,
                ..DemoConfig::default()
            },
        ),
        // Too long for the clock: adding it to the start, or to a tick,
        // overflowed `Instant` and panicked (`interval` and `duration` in
        // the caller's task, `denied_every` in a spawned one at its first
        // call, so the run was reported as one with no denied call).
        (
            "interval",
            DemoConfig {
                interval: std::time::Duration::MAX,
                ..DemoConfig::default()
            },
        ),
        (
            "denied_every",
            DemoConfig {
                denied_every: std::time::Duration::MAX,
                ..DemoConfig::default()
            },
        ),
        (
            "duration",
            DemoConfig {
                duration: Some(std::time::Duration::MAX),
                ..DemoConfig::default()
            },
        ),
    ];
    for (field, config) in cases {
        let config = DemoConfig {
            duration: config.duration.or(Some(std::time::Duration::from_secs(1))),
            ..config
        };
        // Spawned, so that a panic is caught and shown as this case's.
        let result = tokio::spawn(async move {
            demo::run(&config, &mut Vec::new(), std::future::pending()).await
        })
        .await;
        match result {
            Ok(Err(DemoError::Invalid(named))) => assert_eq!(named, field),
            Ok(other) => panic!("{field}: {other:?}"),
            Err(panicked) => panic!("{field}: {panicked}"),
        }
    }
}
