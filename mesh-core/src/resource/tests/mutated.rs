//! Mutated fixtures: whatever a text holds, reading it does not panic, and
//! a refusal names the document it is about.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;

/// Pieces of YAML that change how what follows them is read.
const PIECES: &[&str] = &[
    "---",
    "...",
    "\n---\n",
    "\n...\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    ": ",
    "- ",
    "? ",
    "&a ",
    "*a",
    "!tag ",
    "!!str ",
    "|",
    ">-",
    "'",
    "\"",
    "\\",
    "#",
    "\t",
    "\r\n",
    "\r",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "\0",
    "é",
    "0",
    "-1",
    "99999999999999999999",
    "1e309",
    "null",
    "~",
    "true",
    "<<: *a",
    "%YAML 1.1\n",
    "@",
    "`",
    "  ",
    "\n  ",
    "\n",
    "é\u{301}",
    "999999h",
    "0s",
    "2024-02-30T00:00:00Z",
    "9999-12-31T23:59:60+23:59",
];

fn fixtures() -> Vec<String> {
    let grpc = GRPC_ROUTE.to_owned();
    let routes = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books
  namespace: shop
  annotations: { retry.linkerd.io/http: 5xx }
spec:
  parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]
  hostnames: [books.shop]
  rules:
    - matches:
        - path: { type: PathPrefix, value: /b }
          method: GET
          headers: [{ name: x-a, value: "1" }]
          queryParams: [{ type: Exact, name: v, value: "2" }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /c } }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-b, value: "2" }], remove: [server] }
      timeouts: { request: 1h2m3s4ms, backendRequest: 500ms }
      retry: { codes: [503], attempts: 2, backoff: 100ms }
    - matches: [{ path: { type: RegularExpression, value: "/x/[0-9]+" } }]
"#;
    vec![
        GUIDE_POLICY.to_owned(),
        GUIDE_RETRIES.to_owned(),
        grpc,
        routes.to_owned(),
    ]
}

fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut text = text.to_owned();
    for _ in 0..rng.usize(1..4) {
        let mut at = rng.usize(0..=text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        match rng.u8(0..4) {
            0 => text.insert_str(at, PIECES[rng.usize(0..PIECES.len())]),
            1 => {
                let mut end = (at + rng.usize(1..8)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, "");
            }
            2 => {
                // A line written again elsewhere.
                let line = text[at..].lines().next().unwrap_or("").to_owned();
                let mut to = rng.usize(0..=text.len());
                while !text.is_char_boundary(to) {
                    to -= 1;
                }
                text.insert_str(to, &format!("{line}\n"));
            }
            _ => {
                let piece = PIECES[rng.usize(0..PIECES.len())];
                text.insert_str(at, &piece.repeat(rng.usize(1..200)));
            }
        }
    }
    text
}

/// Reads `text` every way a reader does; returns the first refusal.
fn read_all(text: &str) -> Option<ResourceError> {
    for line in text.lines() {
        let value = line.rsplit(": ").next().unwrap_or(line);
        let _ = (Timestamp::parse(value), GatewayDuration::parse(value));
    }
    for document in Documents::new("m.yaml", text) {
        let document = match document {
            Ok(document) => document,
            Err(e) => return Some(e),
        };
        let _ = document.envelope().api_version.group();
        let _ = document.envelope().api_version.version();
        if document.is::<HttpRoute>() {
            let parsed = match document.read::<HttpRoute>() {
                Ok(parsed) => parsed,
                Err(e) => return Some(e),
            };
            if let Some(e) = check_route(&parsed.value, &parsed.context) {
                return Some(e);
            }
        } else if document.is::<GrpcRoute>() {
            let parsed = match document.read::<GrpcRoute>() {
                Ok(parsed) => parsed,
                Err(e) => return Some(e),
            };
            match parsed.value.to_http_route() {
                Ok(route) => {
                    if let Some(e) = check_route(&route, &parsed.context) {
                        return Some(e);
                    }
                }
                Err(e) => return Some(parsed.context.match_error(e)),
            }
        } else {
            let _ = document.into_other().to_string();
        }
    }
    None
}

fn check_route(route: &HttpRoute, context: &DocumentContext<'_>) -> Option<ResourceError> {
    let matches = match route.rule_matches() {
        Ok(matches) => matches,
        Err(e) => return Some(context.match_error(e)),
    };
    for (i, (rule, matches)) in route.spec.rules.iter().zip(&matches).enumerate() {
        if let Err(e) = rule.route_filters(matches) {
            return Some(context.filter_error(e.within(&format!("spec.rules[{i}]"))));
        }
        for timeout in rule
            .timeouts
            .iter()
            .flat_map(|t| [t.request, t.backend_request])
        {
            let _ = timeout.map(|t| t.to_string());
        }
    }
    None
}

#[test]
fn mutated_manifests_are_refused_with_their_document_never_with_a_panic() {
    let mut rng = fastrand::Rng::with_seed(2257);
    let fixtures = fixtures();
    for fixture in &fixtures {
        assert!(read_all(fixture).is_none(), "{:?}", read_all(fixture));
    }
    let mut refused = 0;
    for round in 0..1000 {
        let fixture = &fixtures[round % fixtures.len()];
        let text = mutate(&mut rng, fixture);
        let outcome = catch_unwind(AssertUnwindSafe(|| read_all(&text)));
        let Ok(outcome) = outcome else {
            panic!("reading panicked on round {round}: {text:?}");
        };
        if let Some(e) = outcome {
            refused += 1;
            let whole_text = e.kind() == ResourceErrorKind::LimitExceeded;
            assert!(
                e.document().is_some() || whole_text,
                "round {round}: {e} names no document: {text:?}"
            );
            assert!(e.to_string().starts_with("m.yaml: "), "{e}");
        }
    }
    // Most mutations break something; a test that refuses nothing is not
    // looking.
    assert!(refused > 300, "{refused}");
}
