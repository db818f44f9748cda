//! What a tap reports of each request: three events, as Linkerd's tap
//! does.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::printable::{Printable, escape_json_string};

/// One event of a tapped request. `/tap` sends each as a line of JSON;
/// [`Display`](fmt::Display) writes the line `linkerd viz tap` prints,
/// each text one word, its blanks and control characters escaped
/// (`\u{20}`, `\u{1b}`):
///
/// ```text
/// req id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true :method=GET :authority=web:80 :path=/api/list
/// rsp id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true :status=200 latency=1204µs
/// end id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true duration=37µs response-length=2161B
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapEvent {
    /// The request's number in this proxy: its three events share it.
    pub id: u64,
    /// `in` or `out`.
    pub proxy: Proxy,
    /// Where the request came from: the client's address.
    pub src: String,
    /// Where it went: inbound, the address the proxy accepted it on;
    /// outbound, the authority it was addressed to.
    pub dst: String,
    /// Inbound, the connection's TLS: `true` for mutual TLS, else why
    /// not (`no_identity`, `no_tls_from_remote`, ...). Outbound, not
    /// given: the routes decide TLS per service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: TapEventKind,
}

impl TapEvent {
    /// The event as one line of JSON, as `/tap` sends it (without the
    /// newline). DEL and C1 controls are escaped (`\u009b`) as JSON
    /// escapes C0: the line may be printed as it is, and a terminal reads
    /// them as escape sequences.
    pub fn to_json(&self) -> String {
        // Every field is a string, a number or an option of one: encoding
        // cannot fail, but an empty object is an answer that parses.
        serde_json::to_string(self).map_or_else(|_| String::from("{}"), escape_json_string)
    }
}

/// Which side of the proxy a tapped request is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proxy {
    /// Inbound.
    In,
    /// Outbound.
    Out,
}

/// The three events of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TapEventKind {
    /// The request arrived.
    Req {
        /// Its method.
        method: String,
        /// Its authority, from the URI or the `host` header; empty without.
        authority: String,
        /// Its path, without the query.
        path: String,
    },
    /// The response head arrived.
    Rsp {
        /// Its status.
        status: u16,
        /// Microseconds from the request to the response head.
        latency_us: u64,
    },
    /// The exchange ended: the response's last frame, or a failure.
    End {
        /// The gRPC status, from the trailers or a trailers-only head.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grpc_status: Option<u16>,
        /// Microseconds from the response head to the end; from the
        /// request when no response head came.
        duration_us: u64,
        /// The bytes of response body sent.
        response_bytes: u64,
        /// Why the exchange ended early: `cancel` when the client went
        /// away, else the failure's kind (`timeout`, `connect`, `reset`,
        /// `other`). A body that ended short of its `content-length` is a
        /// `reset`: its client got an incomplete message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl fmt::Display for TapEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            TapEventKind::Req { .. } => "req",
            TapEventKind::Rsp { .. } => "rsp",
            TapEventKind::End { .. } => "end",
        };
        let proxy = match self.proxy {
            Proxy::In => "in ",
            Proxy::Out => "out",
        };
        // Every text is one word, its blanks and control characters
        // escaped: the authority, the path and (from a `/tap` server that
        // is not ours) anything else may hold what would forge a word or a
        // line, or act on the terminal.
        let word = Printable::word;
        write!(
            f,
            "{name} id={} proxy={proxy} src={} dst={}",
            self.id,
            word(&self.src),
            word(&self.dst)
        )?;
        if let Some(tls) = &self.tls {
            write!(f, " tls={}", word(tls))?;
        }
        match &self.kind {
            TapEventKind::Req {
                method,
                authority,
                path,
            } => write!(
                f,
                " :method={} :authority={} :path={}",
                word(method),
                word(authority),
                word(path)
            ),
            TapEventKind::Rsp { status, latency_us } => {
                write!(f, " :status={status} latency={latency_us}µs")
            }
            TapEventKind::End {
                grpc_status,
                duration_us,
                response_bytes,
                error,
            } => {
                if let Some(code) = grpc_status {
                    write!(f, " grpc-status={}", grpc_name(*code))?;
                }
                write!(
                    f,
                    " duration={duration_us}µs response-length={response_bytes}B"
                )?;
                if let Some(error) = error {
                    write!(f, " error={}", word(error))?;
                }
                Ok(())
            }
        }
    }
}

/// gRPC's name for a status code, as `linkerd viz tap` prints it.
fn grpc_name(code: u16) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(usize::from(code))
        .map_or_else(|| code.to_string(), |name| (*name).to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event(kind: TapEventKind) -> TapEvent {
        TapEvent {
            id: 4,
            proxy: Proxy::In,
            src: "10.0.0.7:51324".into(),
            dst: "10.0.0.9:4143".into(),
            tls: Some("true".into()),
            kind,
        }
    }

    #[test]
    fn events_print_as_linkerd_tap_lines_and_read_back_from_json() {
        let events = [
            event(TapEventKind::Req {
                method: "GET".into(),
                authority: "web:80".into(),
                path: "/api/list".into(),
            }),
            event(TapEventKind::Rsp {
                status: 200,
                latency_us: 1204,
            }),
            event(TapEventKind::End {
                grpc_status: Some(14),
                duration_us: 37,
                response_bytes: 2161,
                error: None,
            }),
        ];
        let lines: Vec<String> = events.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "req id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true :method=GET :authority=web:80 :path=/api/list",
                "rsp id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true :status=200 latency=1204µs",
                "end id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true grpc-status=Unavailable duration=37µs response-length=2161B",
            ]
        );
        let json = serde_json::to_string(&events[1]).unwrap();
        assert_eq!(
            json,
            r#"{"id":4,"proxy":"in","src":"10.0.0.7:51324","dst":"10.0.0.9:4143","tls":"true","event":"rsp","status":200,"latency_us":1204}"#
        );
        for e in &events {
            let back: TapEvent = serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap();
            assert_eq!(&back, e);
        }
    }

    #[test]
    fn what_a_peer_wrote_prints_as_one_word_of_plain_text() {
        // The authority comes from the `host` header, which may hold
        // blanks; the path may hold C1 controls (UTF-8 is allowed in it);
        // and a `/tap` server that is not ours may send anything at all.
        let mut e = event(TapEventKind::Req {
            method: "GET".into(),
            authority: "web:80 :path=/admin".into(),
            path: "/a\u{9b}2J\u{1b}]0;x\u{7}".into(),
        });
        e.src = "10.0.0.7:1\nreq id=5".into();
        let line = e.to_string();
        assert!(
            !line.contains(['\u{1b}', '\u{7}', '\u{9b}', '\n']),
            "{line:?}"
        );
        assert_eq!(
            line,
            r"req id=4 proxy=in  src=10.0.0.7:1\u{a}req\u{20}id=5 dst=10.0.0.9:4143 tls=true :method=GET :authority=web:80\u{20}:path=/admin :path=/a\u{9b}2J\u{1b}]0;x\u{7}"
        );
        let mut e = event(TapEventKind::End {
            grpc_status: None,
            duration_us: 5,
            response_bytes: 0,
            error: Some("cancel\u{1b}[2J".into()),
        });
        e.tls = Some("true false".into());
        assert_eq!(
            e.to_string(),
            r"end id=4 proxy=in  src=10.0.0.7:51324 dst=10.0.0.9:4143 tls=true\u{20}false duration=5µs response-length=0B error=cancel\u{1b}[2J"
        );
    }

    #[test]
    fn an_event_in_json_escapes_del_and_c1_controls() {
        // The line is printed as it is (`sidecar tap -o json`, `curl` of
        // `/tap`), and JSON itself escapes C0 only.
        let e = event(TapEventKind::Req {
            method: "GET".into(),
            authority: "web:80".into(),
            path: "/a\u{9b}2J\u{85}\u{7f}".into(),
        });
        let json = e.to_json();
        assert!(
            json.contains(r#""path":"/a\u009b2J\u0085\u007f""#),
            "{json}"
        );
        let back: TapEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn an_outbound_failure_prints_its_error_and_no_tls() {
        let mut e = event(TapEventKind::End {
            grpc_status: None,
            duration_us: 5,
            response_bytes: 0,
            error: Some("cancel".into()),
        });
        e.proxy = Proxy::Out;
        e.tls = None;
        e.dst = "emoji:8080".into();
        assert_eq!(
            e.to_string(),
            "end id=4 proxy=out src=10.0.0.7:51324 dst=emoji:8080 duration=5µs response-length=0B error=cancel"
        );
        assert_eq!(grpc_name(99), "99");
    }
}
