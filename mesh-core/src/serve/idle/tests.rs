#![allow(clippy::unwrap_used)]

use std::{
    future::poll_fn,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, advance};

use tokio::io::{AsyncRead, ReadBuf};

use super::{
    StreamIdle,
    reads::{Frames, LastRead, Opened, Watched},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A frame header of `kind` with a payload of `len` bytes, and the payload.
fn frame(kind: u8, len: usize) -> Vec<u8> {
    frame_on(kind, 0, 1, len)
}

/// A frame of `kind` with `flags` on `stream`, with a payload of `len`
/// bytes.
fn frame_on(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
    let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.resize(9 + len, 0xAA);
    bytes
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn only_data_and_headers_frames_are_request_data() {
    let mut frames = Frames::after_preface();
    assert!(!frames.read(PREFACE).data);
    let settings = frame(0x4, 18);
    let ping = frame(0x6, 8);
    let window_update = frame(0x8, 4);
    for control in [&settings, &ping, &window_update] {
        assert!(!frames.read(control).data);
    }
    assert!(frames.read(&frame(HEADERS, 40)).data, "HEADERS");
    assert!(frames.read(&frame(DATA, 1000)).data, "DATA");
    assert!(
        frames.read(&frame(DATA, 0)).data,
        "an empty DATA ending the body"
    );
    assert!(!frames.read(&ping).data);
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
            if frames.read(piece).data {
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
    let idle_bound = StreamIdle::http1(TIMEOUT, Arc::new(LastRead::now()));
    let mut clock = idle_bound.start(idle_bound.request_data());
    let start = Instant::now();
    poll_fn(|cx| clock.poll_idle(cx)).await;
    assert_eq!(start.elapsed(), TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn activity_of_the_stream_or_request_data_of_its_connection_moves_the_deadline() {
    let reads = Arc::new(LastRead::now());
    let idle_bound = StreamIdle::http1(TIMEOUT, reads.clone());
    let mut clock = idle_bound.start(idle_bound.request_data());
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
    let idle_bound = StreamIdle::http1(TIMEOUT, Arc::new(LastRead::now()));
    let mut clock = idle_bound.start(idle_bound.request_data());
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

#[tokio::test(start_paused = true)]
async fn each_stream_notes_only_its_own_request_data() {
    let mut frames = Frames::after_preface();
    frames.read(PREFACE);
    let open = |frames: &mut Frames, stream| {
        let scan = frames.read(&frame_on(HEADERS, END_HEADERS, stream, 20));
        assert_eq!(scan.len, 29, "the read ends with the header block");
        scan.opened.unwrap().unwrap()
    };
    let one = open(&mut frames, 1);
    let three = open(&mut frames, 3);
    let opened = one.get();
    advance(Duration::from_secs(5)).await;
    let scan = frames.read(&frame_on(DATA, 0, 3, 100));
    assert!(scan.data);
    assert_eq!(three.get(), Instant::now());
    assert_eq!(one.get(), opened, "stream 1 sent nothing");
    advance(Duration::from_secs(5)).await;
    frames.read(&frame_on(HEADERS, END_HEADERS | END_STREAM, 1, 10));
    assert_eq!(one.get(), Instant::now(), "its trailers");
    assert_eq!(three.get() + Duration::from_secs(5), Instant::now());
}

#[test]
fn a_read_ends_where_a_header_block_that_opens_a_stream_ends() {
    let mut frames = Frames::after_preface();
    let bytes: Vec<u8> = [
        PREFACE,
        &frame(0x4, 6),
        // A GET: no request data to come.
        &frame_on(HEADERS, END_HEADERS | END_STREAM, 1, 30),
        // A POST whose head comes in two frames, then its body.
        &frame_on(HEADERS, 0, 3, 30),
        &frame_on(CONTINUATION, END_HEADERS, 3, 10),
        &frame_on(DATA, END_STREAM, 3, 5),
        // A reset, and trailers on a stream not seen open.
        &frame_on(RST_STREAM, 0, 5, 4),
        &frame_on(HEADERS, END_HEADERS | END_STREAM, 1, 30),
    ]
    .concat();
    let mut at = 0;
    let mut cut = Vec::new();
    loop {
        let scan = frames.read(&bytes[at..]);
        at += scan.len;
        let Some(opened) = scan.opened else { break };
        cut.push((at, opened.is_some()));
    }
    assert_eq!(at, bytes.len());
    let get_end = PREFACE.len() + 15 + 39;
    assert_eq!(cut, [(get_end, false), (get_end + 39 + 19, true)]);
}

/// Reads `io` once, with room for `room` bytes: what it gave, or `None`
/// when it waits.
fn read_once<I: AsyncRead + Unpin>(io: &mut I, room: usize) -> Option<Vec<u8>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut space = vec![0; room];
    let mut buf = ReadBuf::new(&mut space);
    match std::pin::Pin::new(io).poll_read(&mut cx, &mut buf) {
        Poll::Ready(read) => {
            read.unwrap();
            Some(buf.filled().to_vec())
        }
        Poll::Pending => None,
    }
}

#[test]
fn the_reads_wait_for_each_stream_to_be_taken_or_refused() {
    let get = frame_on(HEADERS, END_HEADERS | END_STREAM, 1, 30);
    let post = frame_on(HEADERS, END_HEADERS, 3, 30);
    let refused = frame_on(HEADERS, END_HEADERS, 5, 30);
    let body = frame_on(DATA, 0, 3, 5);
    let sent: Vec<u8> = [PREFACE, &get, &post, &refused, &body].concat();
    let opened = Arc::new(Opened::default());
    let reads = Arc::new(LastRead::now());
    let mut io = Watched::http2(&sent[..], Some((reads, opened.clone())), None);

    let mut got = read_once(&mut io, 4096).unwrap();
    assert_eq!(got.len(), PREFACE.len() + get.len());
    assert!(!opened.drop_refused(), "h2 has not asked for more yet");
    assert!(
        read_once(&mut io, 4096).is_none(),
        "waits for the GET's request"
    );
    assert!(
        opened.take().unwrap().is_none(),
        "a GET has no request data"
    );

    got.extend(read_once(&mut io, 4096).unwrap());
    assert_eq!(got.len(), PREFACE.len() + get.len() + post.len());
    let post_data = opened.take().unwrap().unwrap();

    // No request takes the next stream: once the reads have waited for
    // it, the waiting connection drops it, and the reads go on.
    got.extend(read_once(&mut io, 4096).unwrap());
    assert!(read_once(&mut io, 4096).is_none());
    assert!(read_once(&mut io, 4096).is_none());
    assert!(opened.drop_refused());
    assert!(opened.take().is_none(), "the refused stream was dropped");
    let held_back = read_once(&mut io, 4).unwrap();
    assert_eq!(held_back.len(), 4, "held bytes are given as room allows");
    got.extend(held_back);
    got.extend(read_once(&mut io, 4096).unwrap());
    assert_eq!(got, sent, "every byte, in order");
    assert!(
        Arc::strong_count(&post_data) > 1,
        "still noted by the reads"
    );
}

#[test]
fn a_waiting_connection_drops_the_refused_stream_and_wakes_itself() {
    use std::{
        future::Future,
        sync::atomic::{AtomicUsize, Ordering},
        task::{Wake, Waker},
    };
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let woken = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let opened = Arc::new(Opened::default());
    let sent: Vec<u8> = [PREFACE, &frame_on(HEADERS, END_HEADERS, 1, 30)].concat();
    let mut io = Watched::http2(
        &sent[..],
        Some((Arc::new(LastRead::now()), opened.clone())),
        None,
    );
    let mut conn = Box::pin(super::reads::Handover::new(
        Waiting::default(),
        Some(opened.clone()),
        None,
    ));
    read_once(&mut io, 4096).unwrap();
    assert!(conn.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        woken.0.load(Ordering::Relaxed),
        0,
        "h2 may not have decoded it"
    );
    assert!(read_once(&mut io, 4096).is_none());
    assert!(conn.as_mut().poll(&mut cx).is_pending());
    assert_eq!(woken.0.load(Ordering::Relaxed), 1);
    assert!(opened.take().is_none());
    assert_eq!(
        read_once(&mut io, 4096).unwrap(),
        b"",
        "the end of the bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn an_http2_stream_is_timed_by_its_own_request_data_only() {
    let reads = Arc::new(LastRead::now());
    let idle_bound = StreamIdle::http2(TIMEOUT, reads.clone(), Arc::new(Opened::default()));
    let trickling_data = Arc::new(LastRead::now());
    let mut trickling = idle_bound.start(Some(trickling_data.clone()));
    let mut silent = idle_bound.start(Some(Arc::new(LastRead::now())));
    let mut no_data = idle_bound.start(None);
    // No stream handed over: timed by its connection's request data.
    let mut unknown = idle_bound.start(idle_bound.request_data());
    let start = Instant::now();
    for _ in 0..3 {
        advance(Duration::from_secs(8)).await;
        trickling_data.touch();
        reads.touch();
    }
    assert!(idle(&mut silent), "the data of other streams is not its");
    assert!(idle(&mut no_data));
    assert!(!idle(&mut trickling));
    assert!(!idle(&mut unknown));
    poll_fn(|cx| trickling.poll_idle(cx)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(34));
}

#[tokio::test]
async fn only_the_connections_task_takes_the_clock_its_call_made() {
    let tasks = Arc::new(super::task::StreamTasks::new(TIMEOUT));
    let tunnel = {
        let tasks = tasks.clone();
        // As hyper spawns a tunnel's task, from a stream's task.
        move || tokio::spawn(async move { tasks.take().is_some() })
    };
    let _clock = tasks.start(None);
    assert!(!tunnel().await.unwrap(), "another task's spawn");
    assert!(tasks.take().is_some(), "the stream's own");
    assert!(tasks.take().is_none(), "taken once");
    tasks.untimed();
    assert!(tasks.take().is_none(), "an untimed stream's task");
}

#[tokio::test(start_paused = true)]
async fn a_data_frame_is_request_data_again_when_its_last_byte_is_read() {
    let mut frames = Frames::after_preface();
    frames.read(PREFACE);
    let scan = frames.read(&frame_on(HEADERS, END_HEADERS, 1, 20));
    let one = scan.opened.unwrap().unwrap();
    let data = frame_on(DATA, 0, 1, 100);
    let (head, payload) = data.split_at(50);
    advance(Duration::from_secs(5)).await;
    assert!(frames.read(head).data, "its header");
    let started = Instant::now();
    assert_eq!(one.get(), started);
    advance(Duration::from_secs(5)).await;
    assert!(!frames.read(&payload[..10]).data, "not whole yet");
    assert_eq!(one.get(), started);
    advance(Duration::from_secs(5)).await;
    assert!(frames.read(&payload[10..]).data, "its last byte");
    assert_eq!(one.get(), Instant::now(), "when hyper hands it on");
}

/// A connection that never ends, counting the times it was asked to go
/// away.
#[derive(Default)]
struct Waiting {
    going_away: usize,
}

impl std::future::Future for Waiting {
    type Output = Result<(), hyper::Error>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

impl crate::serve::connection::Graceful for Waiting {
    fn graceful_shutdown(mut self: std::pin::Pin<&mut Self>) {
        self.going_away += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_flooded_with_premature_resets_goes_away_once() {
    use std::future::Future;

    use super::resets::{Flooded, ResetBound, Resets};
    let config = crate::serve::ServerConfig {
        http2_premature_reset_total_streams: Some(4),
        // A grace of one stream past the bound.
        http2_max_concurrent_streams: 1,
        ..crate::serve::ServerConfig::default()
    };
    let flooded = Arc::new(Flooded::default());
    let resets = Resets::new(ResetBound::of(&config).unwrap(), flooded.clone());
    let mut sent = PREFACE.to_vec();
    for stream in [1, 3] {
        sent.extend(frame_on(HEADERS, END_HEADERS | END_STREAM, stream, 20));
        sent.extend(frame_on(RST_STREAM, 0, stream, 4));
    }
    let graced = frame_on(HEADERS, END_HEADERS | END_STREAM, 5, 20);
    let late = frame_on(HEADERS, END_HEADERS | END_STREAM, 7, 20);
    let past = graced.len() + late.len();
    sent.extend(&graced);
    sent.extend(&late);
    let mut io = Watched::http2(&sent[..], None, Some(resets));
    let mut conn = Box::pin(super::reads::Handover::new(
        Waiting::default(),
        None,
        Some(flooded.clone()),
    ));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(conn.as_mut().poll(&mut cx).is_pending());
    assert_eq!(conn.as_mut().conn().going_away, 0);

    // Not handed over: a read is not cut where a header block ends.
    let mut space = vec![0; sent.len() - past];
    let mut buf = ReadBuf::new(&mut space);
    let read = std::pin::Pin::new(&mut io).poll_read(&mut cx, &mut buf);
    assert!(matches!(read, Poll::Ready(Ok(()))));
    assert_eq!(buf.filled().len(), sent.len() - past);
    assert!(flooded.is_set(), "two of four streams reset at once");
    for _ in 0..3 {
        assert!(conn.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(conn.as_mut().conn().going_away, 1, "asked once");

    // A stream opened after that, within the grace, is read by h2.
    let mut space = vec![0; graced.len()];
    let mut buf = ReadBuf::new(&mut space);
    let read = std::pin::Pin::new(&mut io).poll_read(&mut cx, &mut buf);
    assert!(matches!(read, Poll::Ready(Ok(()))), "{read:?}");
    assert_eq!(buf.filled(), &graced[..]);

    // One past the grace is never read by h2.
    let mut space = [0; 64];
    let mut buf = ReadBuf::new(&mut space);
    match std::pin::Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(error)) => {
            assert!(error.to_string().contains("rapid reset"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(buf.filled().is_empty());
}
