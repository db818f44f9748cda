#![allow(clippy::unwrap_used)]

use std::{
    future::poll_fn,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, advance};

use super::{StreamIdle, reads::Frames, reads::LastRead};

const TIMEOUT: Duration = Duration::from_secs(10);

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// A frame header of `kind` with a payload of `len` bytes, and the payload.
fn frame(kind: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        kind,
        0,
        0,
        0,
        0,
        1,
    ];
    bytes.resize(9 + len, 0xAA);
    bytes
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn only_data_and_headers_frames_are_request_data() {
    let mut frames = Frames::after_preface();
    assert!(!frames.carry_request_data(PREFACE));
    let settings = frame(0x4, 18);
    let ping = frame(0x6, 8);
    let window_update = frame(0x8, 4);
    for control in [&settings, &ping, &window_update] {
        assert!(!frames.carry_request_data(control));
    }
    assert!(frames.carry_request_data(&frame(0x1, 40)), "HEADERS");
    assert!(frames.carry_request_data(&frame(0x0, 1000)), "DATA");
    assert!(
        frames.carry_request_data(&frame(0x0, 0)),
        "an empty DATA ending the body"
    );
    assert!(!frames.carry_request_data(&ping));
}

#[test]
fn frames_split_across_reads_anywhere_are_followed() {
    // A ping whose payload is full of DATA-looking bytes, then a DATA
    // frame, then another ping: read one byte at a time, and in reads
    // that cut headers and payloads at every place.
    let mut ping = frame(0x6, 8);
    ping[9..].fill(0);
    let stream: Vec<u8> = [PREFACE, &ping, &frame(0x0, 300), &ping].concat();
    let data_at = PREFACE.len() + ping.len();
    for chunk in 1..=stream.len() {
        let mut frames = Frames::after_preface();
        let mut seen = Vec::new();
        for (i, piece) in stream.chunks(chunk).enumerate() {
            if frames.carry_request_data(piece) {
                seen.push(i * chunk);
            }
        }
        assert_eq!(seen.len(), 1, "read by {chunk}: {seen:?}");
        // The read that completes the DATA frame's header.
        let start = seen[0];
        let last_header_byte = data_at + 8;
        assert!(
            (start..start + chunk).contains(&last_header_byte),
            "read by {chunk}: seen in the read at {start}"
        );
    }
}

/// Polls `clock` once.
fn idle(clock: &mut super::StreamClock) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    clock.poll_idle(&mut cx).is_ready()
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_is_idle_after_the_timeout() {
    let idle_bound = StreamIdle::new(TIMEOUT, Arc::new(LastRead::now()));
    let mut clock = idle_bound.start(peer());
    let start = Instant::now();
    poll_fn(|cx| clock.poll_idle(cx)).await;
    assert_eq!(start.elapsed(), TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn activity_of_the_stream_or_request_data_of_its_connection_moves_the_deadline() {
    let reads = Arc::new(LastRead::now());
    let idle_bound = StreamIdle::new(TIMEOUT, reads.clone());
    let mut clock = idle_bound.start(peer());
    let start = Instant::now();
    advance(Duration::from_secs(6)).await;
    clock.touch();
    advance(Duration::from_secs(6)).await;
    assert!(!idle(&mut clock), "6 s after the stream's last frame");
    reads.touch();
    advance(Duration::from_secs(6)).await;
    assert!(
        !idle(&mut clock),
        "6 s after the connection's last request data"
    );
    poll_fn(|cx| clock.poll_idle(cx)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(22));
}

#[tokio::test(start_paused = true)]
async fn a_busy_stream_moves_its_timer_once_per_timeout_not_once_per_frame() {
    let idle_bound = StreamIdle::new(TIMEOUT, Arc::new(LastRead::now()));
    let mut clock = idle_bound.start(peer());
    let first = clock.timer.deadline();
    for _ in 0..100 {
        advance(Duration::from_millis(50)).await;
        clock.touch();
    }
    assert_eq!(clock.timer.deadline(), first, "frames only note their time");
    advance(Duration::from_secs(5)).await;
    assert!(!idle(&mut clock));
    assert_eq!(
        clock.timer.deadline(),
        clock.last + TIMEOUT,
        "pushed back when it fired"
    );
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert_eq!(clock.poll_idle(&mut cx), Poll::Pending);
}
