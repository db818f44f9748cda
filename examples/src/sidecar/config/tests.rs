use std::time::Duration;

use super::parse_duration;

#[test]
fn durations_add_their_parts() {
    let cases = [
        ("0s", Duration::ZERO),
        ("10s", Duration::from_secs(10)),
        ("500ms", Duration::from_millis(500)),
        ("1m30s", Duration::from_secs(90)),
        ("1h", Duration::from_secs(3600)),
        ("01h", Duration::from_secs(3600)),
        ("00060m", Duration::from_secs(3600)),
        ("1h30m30s500ms", Duration::from_millis(5_430_500)),
        ("1h1h", Duration::from_secs(7200)),
        ("99999h", Duration::from_secs(99_999 * 3600)),
        ("1ms1s", Duration::from_millis(1001)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn durations_outside_the_format_are_rejected() {
    for text in [
        "",
        "10",
        "s",
        "1.5s",
        "-1s",
        "+1s",
        "10 s",
        " 10s",
        "10s ",
        "1d",
        "1us",
        "1ns",
        "100000s",
        "1h1m1s1ms1h",
        "1S",
        "1sm",
        "10sec",
        "1m s",
        "١s",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?}");
    }
}

#[test]
fn invalid_duration_says_what_was_expected() {
    let message = parse_duration("10x").unwrap_err().to_string();
    assert!(message.starts_with("expected"), "{message}");
    assert!(message.contains("1m30s"), "{message}");
}
