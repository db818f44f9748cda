use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const NEW: SpanId = SpanId([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

fn trace_id(text: &str) -> TraceId {
    TraceId(lower_hex::<16>(text.as_bytes()).unwrap())
}

fn span_id(text: &str) -> SpanId {
    SpanId(lower_hex::<8>(text.as_bytes()).unwrap())
}

#[test]
fn traceparent_is_read_and_only_its_parent_is_rewritten() {
    let value = format!("00-{TRACE}-{PARENT}-01");
    let mut h = headers(&[("traceparent", &value), ("tracestate", "congo=t61rcWkgMzE")]);
    let ctx = TraceContext::read(&h).unwrap();
    assert_eq!(ctx.trace_id, trace_id(TRACE));
    assert_eq!(ctx.parent, span_id(PARENT));
    assert!(ctx.sampled);

    propagate(&mut h, NEW);
    assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-01"));
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");
}

#[test]
fn the_sampled_flag_is_bit_zero_of_the_flags() {
    for (flags, sampled) in [("00", false), ("01", true), ("02", false), ("03", true)] {
        let h = headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-{flags}"))]);
        assert_eq!(TraceContext::read(&h).unwrap().sampled, sampled, "{flags}");
    }
}

#[test]
fn flags_no_version_defines_are_cleared_on_the_way_out() {
    for (flags, sent) in [("ff", "03"), ("05", "01"), ("02", "02"), ("00", "00")] {
        let mut h = headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-{flags}"))]);
        propagate(&mut h, NEW);
        let expected = format!("00-{TRACE}-1122334455667788-{sent}");
        assert_eq!(h["traceparent"], expected.as_str(), "{flags}");
    }
}

#[test]
fn invalid_traceparents_are_ignored_and_left_alone() {
    let zero_trace = format!("00-{}-{PARENT}-01", "0".repeat(32));
    let zero_parent = format!("00-{TRACE}-{}-01", "0".repeat(16));
    let upper = format!("00-{}-{PARENT}-01", TRACE.to_uppercase());
    let short = format!("00-{}-{PARENT}-01", &TRACE[1..]);
    let ff = format!("ff-{TRACE}-{PARENT}-01");
    let v00_longer = format!("00-{TRACE}-{PARENT}-01-extra");
    let no_dashes = format!("00_{TRACE}_{PARENT}_01");
    for bad in [
        zero_trace,
        zero_parent,
        upper,
        short,
        ff,
        v00_longer,
        no_dashes,
    ] {
        let mut h = headers(&[("traceparent", &bad)]);
        assert_eq!(TraceContext::read(&h), None, "{bad}");
        propagate(&mut h, NEW);
        assert_eq!(h["traceparent"], bad.as_str());
    }
}

#[test]
fn a_later_traceparent_version_is_read_by_the_fields_version_00_defines() {
    let later = format!("01-{TRACE}-{PARENT}-01-what-comes-next");
    let mut h = headers(&[("traceparent", &later)]);
    assert!(TraceContext::read(&h).unwrap().sampled);
    propagate(&mut h, NEW);
    assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-01"));
}

#[test]
fn b3_single_keeps_its_trace_id_width_and_names_the_caller_as_parent() {
    let mut h = headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3ac9a4f6e3b90")]);
    let ctx = TraceContext::read(&h).unwrap();
    assert_eq!(ctx.trace_id, trace_id("0000000000000000a3ce929d0e0e4736"));
    assert_eq!(ctx.parent, span_id(PARENT));
    assert!(ctx.sampled);
    propagate(&mut h, NEW);
    assert_eq!(
        h["b3"],
        "a3ce929d0e0e4736-1122334455667788-1-00f067aa0ba902b7"
    );

    let mut h = headers(&[("b3", &format!("{TRACE}-{PARENT}"))]);
    assert!(!TraceContext::read(&h).unwrap().sampled);
    propagate(&mut h, NEW);
    assert_eq!(h["b3"], format!("{TRACE}-1122334455667788"));
}

#[test]
fn b3_single_sampling_states() {
    for (state, sampled) in [
        ("1", Some(true)),
        ("d", Some(true)),
        ("0", Some(false)),
        ("x", None),
    ] {
        let h = headers(&[("b3", &format!("{TRACE}-{PARENT}-{state}"))]);
        assert_eq!(
            TraceContext::read(&h).map(|c| c.sampled),
            sampled,
            "{state}"
        );
    }
    // Only a sampling decision: nothing to join.
    assert_eq!(TraceContext::read(&headers(&[("b3", "1")])), None);
}

#[test]
fn b3_multi_moves_the_callers_span_to_the_parent() {
    let mut h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", PARENT),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
    ]);
    let ctx = TraceContext::read(&h).unwrap();
    assert_eq!(ctx.parent, span_id(PARENT));
    assert!(ctx.sampled);
    propagate(&mut h, NEW);
    assert_eq!(h["x-b3-spanid"], "1122334455667788");
    assert_eq!(h["x-b3-parentspanid"], PARENT);
    assert_eq!(h["x-b3-traceid"], TRACE);
}

#[test]
fn b3_multi_sampling_comes_from_sampled_or_the_debug_flag() {
    let with = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("x-b3-traceid", TRACE), ("x-b3-spanid", PARENT)];
        pairs.extend_from_slice(extra);
        TraceContext::read(&headers(&pairs)).unwrap().sampled
    };
    assert!(with(&[("x-b3-sampled", "1")]));
    assert!(with(&[("x-b3-sampled", "true")]));
    assert!(with(&[("x-b3-flags", "1")]));
    assert!(!with(&[("x-b3-sampled", "0")]));
    assert!(!with(&[]));
}

#[test]
fn w3c_comes_first_and_every_format_present_is_rewritten() {
    let mut h = headers(&[
        ("traceparent", &format!("00-{TRACE}-{PARENT}-00")),
        ("b3", &format!("{TRACE}-05e3ac9a4f6e3b90-1")),
    ]);
    let ctx = TraceContext::read(&h).unwrap();
    assert_eq!(ctx.parent, span_id(PARENT));
    assert!(!ctx.sampled);
    propagate(&mut h, NEW);
    assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-00"));
    assert_eq!(
        h["b3"],
        format!("{TRACE}-1122334455667788-1-05e3ac9a4f6e3b90")
    );
}

#[test]
fn a_repeated_trace_header_is_ignored_and_every_value_passes_on() {
    let other = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01";
    for (name, first, second) in [
        ("traceparent", format!("00-{TRACE}-{PARENT}-01"), other),
        ("b3", format!("{TRACE}-{PARENT}-1"), "05e3ac9a4f6e3b90"),
    ] {
        let mut h = HeaderMap::new();
        h.append(HeaderName::from_static(name), first.parse().unwrap());
        h.append(HeaderName::from_static(name), second.parse().unwrap());
        let before = h.clone();
        assert_eq!(TraceContext::read(&h), None, "{name}");
        propagate(&mut h, NEW);
        assert_eq!(h, before, "{name}");
    }
}

#[test]
fn b3_multi_headers_count_their_first_value_and_go_on_sampled_1_not_true() {
    let mut h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", PARENT),
        ("x-b3-spanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "true"),
    ]);
    let ctx = TraceContext::read(&h).unwrap();
    assert_eq!(ctx.parent, span_id(PARENT));
    assert!(ctx.sampled);
    propagate(&mut h, NEW);
    let values = |name| h.get_all(name).iter().cloned().collect::<Vec<_>>();
    assert_eq!(values("x-b3-spanid"), ["1122334455667788"]);
    assert_eq!(values("x-b3-parentspanid"), [PARENT]);
    assert_eq!(values("x-b3-sampled"), ["1"]);

    let mut h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", PARENT),
        ("x-b3-sampled", "false"),
    ]);
    propagate(&mut h, NEW);
    assert_eq!(h["x-b3-sampled"], "0");
}

#[test]
fn b3_deny_in_the_single_header_overrides_the_multi_headers() {
    let mut pairs = vec![
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", PARENT),
        ("x-b3-sampled", "1"),
    ];
    pairs.push(("b3", "0"));
    let ctx = TraceContext::read(&headers(&pairs)).unwrap();
    assert!(!ctx.sampled);
    assert_eq!(ctx.parent, span_id(PARENT));
    pairs[2] = ("x-b3-sampled", "0");
    pairs[3] = ("b3", "d");
    assert!(TraceContext::read(&headers(&pairs)).unwrap().sampled);
}

#[test]
fn no_headers_no_context() {
    assert_eq!(TraceContext::read(&HeaderMap::new()), None);
    let h = headers(&[("x-b3-traceid", TRACE)]);
    assert_eq!(TraceContext::read(&h), None);
}
