use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::*;

/// A body that yields the frames it was given, then ends; or fails after
/// them when `fail` is set. With `waits` set, its first poll finds nothing
/// ready (as a body whose bytes are still on the network), so that
/// [`ReplayBody::try_new`] takes none of it at the start.
#[derive(Debug, Default)]
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    exact: Option<u64>,
    fail: bool,
    waits: bool,
}

#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken body")
    }
}

impl std::error::Error for Broken {}

impl Frames {
    fn chunks(chunks: &[&'static str]) -> Self {
        Self {
            frames: chunks
                .iter()
                .map(|c| Frame::data(Bytes::from_static(c.as_bytes())))
                .collect(),
            ..Self::default()
        }
    }

    fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        self.frames.push_back(Frame::trailers(trailers));
        self
    }

    fn waiting(self) -> Self {
        Self {
            waits: true,
            ..self
        }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        if std::mem::take(&mut self.waits) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None if self.fail => Poll::Ready(Some(Err(Broken))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.fail
    }

    fn size_hint(&self) -> SizeHint {
        self.exact.map_or_else(SizeHint::new, SizeHint::with_exact)
    }
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers
}

async fn collect(body: ReplayBody<Frames>) -> (Bytes, Option<HeaderMap>) {
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

/// Reads `n` frames from an attempt, then drops it, as an attempt does whose
/// connection fails part way.
async fn read_some(mut body: ReplayBody<Frames>, n: usize) -> Vec<u8> {
    let mut read = Vec::new();
    for _ in 0..n {
        let frame = body.frame().await.unwrap().unwrap();
        read.extend_from_slice(frame.data_ref().unwrap());
    }
    read
}

#[tokio::test]
async fn every_attempt_gets_the_whole_body_and_its_trailers() {
    let original = Frames::chunks(&["hello ", "replayed ", "world"]).with_trailers(trailers());
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert_eq!(
        collect(first).await,
        (Bytes::from("hello replayed world"), Some(trailers()))
    );
    assert_eq!(replay.replayable(), Replayable::Complete);
    for _ in 0..3 {
        let body = replay.next_attempt();
        // Not exact: hyper would send it with a `content-length`, and
        // HTTP/1.1 carries trailers only in a chunked body.
        assert_eq!(
            (body.size_hint().lower(), body.size_hint().exact()),
            (20, None)
        );
        assert_eq!(
            collect(body).await,
            (Bytes::from("hello replayed world"), Some(trailers()))
        );
    }
}

#[tokio::test]
async fn an_attempt_that_stops_early_leaves_the_rest_to_the_next_without_repeating_a_byte() {
    let original = Frames::chunks(&["one-", "two-", "three-", "four"]);
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert_eq!(read_some(first, 1).await, b"one-");
    assert_eq!(
        replay.replayable(),
        Replayable::Unfinished,
        "the rest is parked"
    );

    let second = replay.next_attempt();
    assert_eq!(read_some(second, 3).await, b"one-two-three-");

    let third = replay.next_attempt();
    assert_eq!(
        third.size_hint().lower(),
        14,
        "the replayed part is counted"
    );
    assert_eq!(collect(third).await.0, Bytes::from("one-two-three-four"));

    let fourth = replay.next_attempt();
    assert_eq!(collect(fourth).await.0, Bytes::from("one-two-three-four"));
}

#[tokio::test]
async fn an_attempt_that_never_polled_its_body_leaves_all_of_it() {
    let original = Frames::chunks(&["a", "b"]);
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    drop(first);
    assert_eq!(collect(replay.next_attempt()).await.0, Bytes::from("ab"));
}

#[tokio::test]
async fn a_body_that_outgrows_the_cap_is_committed_and_its_attempt_goes_on() {
    let original = Frames::chunks(&["123456", "789012", "345"]);
    let (first, replay) = ReplayBody::try_new(original, 10).unwrap();
    assert_eq!(collect(first).await.0, Bytes::from("123456789012345"));
    assert_eq!(replay.replayable(), Replayable::Committed);
    let err = replay.next_attempt().collect().await.unwrap_err();
    assert!(err.is::<ReplayUnavailable>());
}

#[tokio::test]
async fn a_body_exactly_at_the_cap_is_replayed() {
    let original = Frames::chunks(&["12345", "67890"]);
    let (first, replay) = ReplayBody::try_new(original, 10).unwrap();
    collect(first).await;
    assert_eq!(
        collect(replay.next_attempt()).await.0,
        Bytes::from("1234567890")
    );
}

#[test]
fn a_known_length_over_the_cap_is_handed_back_unrecorded() {
    let original = Frames {
        exact: Some(11),
        ..Frames::chunks(&["12345678901"])
    };
    let body = ReplayBody::try_new(original, 10).unwrap_err();
    assert_eq!(body.frames.len(), 1, "the body comes back untouched");
}

#[tokio::test]
async fn an_empty_body_needs_no_recording() {
    let (first, replay) = ReplayBody::try_new(Frames::default(), 10).unwrap();
    assert!(first.is_end_stream());
    assert!(matches!(replay.source, Source::Empty));
    assert!(replay.next_attempt().is_end_stream());
}

#[tokio::test]
async fn no_other_attempt_runs_while_one_is_sending() {
    let original = Frames::chunks(&["a", "b", "c"]);
    let (mut first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.data_ref().unwrap(), "a");
    assert_eq!(replay.replayable(), Replayable::InUse);

    let err = replay.next_attempt().collect().await.unwrap_err();
    assert!(err.is::<ReplayUnavailable>());

    // The attempt that holds the body is not disturbed.
    assert_eq!(collect(first).await.0, Bytes::from("bc"));
    assert_eq!(replay.replayable(), Replayable::Complete);
    assert_eq!(collect(replay.next_attempt()).await.0, Bytes::from("abc"));
}

#[tokio::test]
async fn a_failed_original_body_is_not_replayed() {
    let original = Frames {
        fail: true,
        ..Frames::chunks(&["a"])
    };
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    let err = first.collect().await.unwrap_err();
    assert!(err.is::<Broken>());
    assert_eq!(replay.replayable(), Replayable::Committed);
}

#[tokio::test]
async fn a_passthrough_body_streams_unchanged() {
    let body = ReplayBody::passthrough(Frames::chunks(&["x", "y"]).with_trailers(trailers()));
    assert_eq!(collect(body).await, (Bytes::from("xy"), Some(trailers())));
}

#[tokio::test]
async fn a_body_that_reports_its_end_early_is_recorded_whole_at_once() {
    // Frames says it has ended as soon as the last frame is read, so hyper
    // would never poll it again: the recording must not wait for `None`.
    let original = Frames::chunks(&["last"]);
    let (mut first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    first.frame().await.unwrap().unwrap();
    assert!(first.is_end_stream());
    assert_eq!(replay.replayable(), Replayable::Complete);
    assert_eq!(collect(replay.next_attempt()).await.0, Bytes::from("last"));
    drop(first);
}

#[test]
fn bodies_are_send_when_the_original_is() {
    fn send<T: Send + Sync>() {}
    send::<ReplayBody<Frames>>();
    send::<Replay<Frames>>();
}

#[tokio::test]
async fn a_replay_counts_down_its_size_and_ends_after_its_last_frame() {
    for with_trailers in [false, true] {
        let original = Frames::chunks(&["abc", "de"]);
        let original = if with_trailers {
            original.with_trailers(trailers())
        } else {
            original
        };
        let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
        collect(first).await;

        let mut body = replay.next_attempt();
        assert!(!body.is_end_stream());
        let hint = |body: &ReplayBody<Frames>| (body.size_hint().lower(), body.size_hint().exact());
        let mut hints = vec![hint(&body)];
        while !body.is_end_stream() {
            body.frame().await.unwrap().unwrap();
            hints.push(hint(&body));
        }
        // With trailers still to come the size is a lower bound only, so
        // that HTTP/1.1 sends the body chunked, trailers and all.
        let expected = if with_trailers {
            vec![(5, None), (2, None), (0, None), (0, Some(0))]
        } else {
            vec![(5, Some(5)), (2, Some(2)), (0, Some(0))]
        };
        assert_eq!(hints, expected, "trailers: {with_trailers}");
        assert!(body.frame().await.is_none(), "nothing after the end");
    }
}

#[tokio::test]
async fn an_attempt_that_replays_part_of_a_body_counts_what_is_left_to_replay() {
    let original = Frames::chunks(&["ab", "cd", "ef"]);
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert_eq!(read_some(first, 2).await, b"abcd");

    let mut second = replay.next_attempt();
    let mut lower = vec![second.size_hint().lower()];
    for _ in 0..3 {
        second.frame().await.unwrap().unwrap();
        lower.push(second.size_hint().lower());
    }
    assert_eq!(lower, [4, 2, 0, 0], "the unread rest's hint is 0 here");
    assert!(second.is_end_stream());
}

/// A body whose end comes after its data, on its own: HTTP/2's empty
/// `DATA` frame with `END_STREAM`, received after the last data. Until
/// `ended` is set it waits; after, it reports its end without a frame more
/// being read, so that hyper, which asks `is_end_stream` before polling,
/// never polls it again.
#[derive(Debug)]
struct LateEnd {
    frames: VecDeque<Bytes>,
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LateEnd {
    fn new(chunks: &[&'static str]) -> (Self, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let ended = std::sync::Arc::default();
        let body = Self {
            frames: chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
            ended: std::sync::Arc::clone(&ended),
        };
        (body, ended)
    }

    fn ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Body for LateEnd {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        match self.frames.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None if self.ended() => Poll::Ready(None),
            // The test never polls it here.
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.ended()
    }
}

#[tokio::test]
async fn a_first_attempt_whose_empty_body_ends_before_it_is_sent_is_recorded_whole() {
    let (original, ended) = LateEnd::new(&[]);
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    // The end arrives before the client sends the request: it sees the
    // body has ended, sends none, and drops it unpolled, as hyper does.
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(first.is_end_stream());
    drop(first);
    assert_eq!(
        replay.replayable(),
        Replayable::Complete,
        "the upstream got the whole body"
    );
    assert_eq!(collect_late(replay.next_attempt()).await, "");
}

#[tokio::test]
async fn a_replay_that_reaches_an_end_that_came_meanwhile_is_recorded_whole() {
    let (original, ended) = LateEnd::new(&["all ", "of it"]);
    let (mut first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    for _ in 0..2 {
        first.frame().await.unwrap().unwrap();
    }
    // The attempt fails before the body's end arrives.
    assert!(!first.is_end_stream());
    drop(first);
    assert_eq!(replay.replayable(), Replayable::Unfinished);
    ended.store(true, std::sync::atomic::Ordering::SeqCst);

    // The retry replays both chunks, and then the body says it has ended:
    // the client sends the end with the last chunk and polls no more.
    let mut second = replay.next_attempt();
    let mut sent = Vec::new();
    while !second.is_end_stream() {
        let frame = second.frame().await.unwrap().unwrap();
        sent.extend_from_slice(frame.data_ref().unwrap());
    }
    assert_eq!(sent, b"all of it");
    assert_eq!(
        replay.replayable(),
        Replayable::Complete,
        "known whole as soon as its last chunk is sent"
    );
    drop(second);
    assert_eq!(replay.replayable(), Replayable::Complete);
    assert_eq!(collect_late(replay.next_attempt()).await, "all of it");
}

async fn collect_late(body: ReplayBody<LateEnd>) -> Bytes {
    body.collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_body_whole_at_the_start_is_sent_again_with_no_shared_state() {
    // An in-process client's `Full`: one chunk, ready, and the end. Every
    // attempt sends that chunk, and nothing is locked or recorded.
    let original = Frames {
        exact: Some(5),
        ..Frames::chunks(&["whole"])
    };
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert!(matches!(replay.source, Source::Whole(_)));
    assert_eq!(replay.replayable(), Replayable::Complete);
    assert!(
        replay
            .poll_released(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    );
    for body in [first, replay.next_attempt(), replay.next_attempt()] {
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        assert_eq!(collect(body).await, (Bytes::from("whole"), None));
    }
    // Sent, it is over.
    let mut body = replay.next_attempt();
    body.frame().await.unwrap().unwrap();
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn a_first_chunk_ready_at_the_start_is_sent_once_then_the_rest() {
    let original = Frames::chunks(&["ready-", "later-", "last"]);
    let (mut first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert!(matches!(replay.source, Source::Shared(_)));
    assert_eq!(first.size_hint().lower(), 6, "the chunk taken is counted");
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.data_ref().unwrap(), "ready-");
    assert_eq!(replay.replayable(), Replayable::InUse);
    assert_eq!(collect(first).await.0, Bytes::from("later-last"));
    assert_eq!(
        collect(replay.next_attempt()).await.0,
        Bytes::from("ready-later-last")
    );
}

#[tokio::test]
async fn a_first_chunk_over_the_cap_is_sent_and_commits_the_body() {
    // No size hint warned of it: the chunk is taken at the start, sent
    // whole by the first attempt, and nothing can be replayed after it.
    for chunks in [&["12345678901"][..], &["12345678901", "2"]] {
        let (mut first, replay) = ReplayBody::try_new(Frames::chunks(chunks), 10).unwrap();
        assert_eq!(replay.replayable(), Replayable::InUse);
        assert!(!first.is_end_stream());
        assert_eq!(first.size_hint().lower(), 11);
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap(), "12345678901");
        assert_eq!(replay.replayable(), Replayable::Committed);
        // Sent, the chunk is held no longer.
        if let Kind::Attempt(Attempt {
            phase: Phase::Reading { reader, .. },
            ..
        }) = &first.kind
        {
            assert_eq!(reader.chunks.len(), 0);
        }
        assert_eq!(
            collect(first).await.0,
            Bytes::from(chunks.concat()[11..].to_owned())
        );
        let err = replay.next_attempt().collect().await.unwrap_err();
        assert!(err.is::<ReplayUnavailable>());
    }
}

#[tokio::test]
async fn a_first_chunk_over_the_cap_that_no_attempt_sent_goes_to_the_next() {
    // The first attempt ended before it sent anything (its connection
    // failed): the next sends the whole body, and commits it then.
    let (first, replay) = ReplayBody::try_new(Frames::chunks(&["12345678901", "2"]), 10).unwrap();
    drop(first);
    assert_eq!(replay.replayable(), Replayable::Unfinished);
    let second = replay.next_attempt();
    assert_eq!(second.size_hint().lower(), 11);
    assert_eq!(collect(second).await.0, Bytes::from("123456789012"));
    assert_eq!(replay.replayable(), Replayable::Committed);
    let err = replay.next_attempt().collect().await.unwrap_err();
    assert!(err.is::<ReplayUnavailable>());
}

#[tokio::test]
async fn a_body_of_trailers_alone_is_replayed_whole() {
    let original = Frames::default().with_trailers(trailers());
    let (first, replay) = ReplayBody::try_new(original, 10).unwrap();
    assert_eq!(replay.replayable(), Replayable::Complete);
    for body in [first, replay.next_attempt()] {
        assert!(!body.is_end_stream());
        assert_eq!(collect(body).await, (Bytes::new(), Some(trailers())));
    }
}

#[tokio::test]
async fn a_body_that_fails_at_the_start_passes_its_error_on_once() {
    let original = Frames {
        fail: true,
        ..Frames::default()
    };
    let (mut first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert_eq!(replay.replayable(), Replayable::Committed);
    assert!(!first.is_end_stream());
    let err = first.frame().await.unwrap().unwrap_err();
    assert!(err.is::<Broken>());
    assert!(first.is_end_stream());
    assert!(first.frame().await.is_none());
    let err = replay.next_attempt().collect().await.unwrap_err();
    assert!(err.is::<ReplayUnavailable>());
}

#[tokio::test]
async fn a_body_with_nothing_ready_at_the_start_is_recorded_as_it_is_read() {
    // Stopped early, then read on by the next attempt: each byte once.
    let original = Frames::chunks(&["one-", "two-", "three"]).waiting();
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert!(matches!(replay.source, Source::Shared(_)));
    assert_eq!(read_some(first, 1).await, b"one-");
    assert_eq!(replay.replayable(), Replayable::Unfinished);
    for _ in 0..2 {
        assert_eq!(
            collect(replay.next_attempt()).await.0,
            Bytes::from("one-two-three")
        );
    }

    // Outgrowing the cap commits it, and its attempt goes on.
    let original = Frames::chunks(&["123456", "789012"]).waiting();
    let (first, replay) = ReplayBody::try_new(original, 10).unwrap();
    assert_eq!(replay.replayable(), Replayable::InUse);
    assert_eq!(collect(first).await.0, Bytes::from("123456789012"));
    assert_eq!(replay.replayable(), Replayable::Committed);

    // A failure is passed on, and commits it.
    let original = Frames {
        fail: true,
        ..Frames::chunks(&["a"]).waiting()
    };
    let (first, replay) = ReplayBody::try_new(original, 1024).unwrap();
    assert!(first.collect().await.unwrap_err().is::<Broken>());
    assert_eq!(replay.replayable(), Replayable::Committed);

    // A single chunk and its end, read by the attempt: recorded whole.
    let (first, replay) = ReplayBody::try_new(Frames::chunks(&["one"]).waiting(), 10).unwrap();
    assert_eq!(collect(first).await.0, Bytes::from("one"));
    assert_eq!(replay.replayable(), Replayable::Complete);
    assert_eq!(collect(replay.next_attempt()).await.0, Bytes::from("one"));
}
