use http::{HeaderValue, StatusCode};

use super::*;

#[test]
fn grpc_codes_have_the_upper_case_names_metrics_label_them_with() {
    for code in 0..=16 {
        let code = GrpcCode::from_u16(code);
        let upper = code.upper_name().unwrap();
        assert_eq!(
            upper,
            code.name().unwrap().to_ascii_uppercase().replace('-', "_")
        );
        assert_eq!(GrpcCode::from_name(upper), Some(code));
    }
    assert_eq!(
        GrpcCode::DEADLINE_EXCEEDED.upper_name(),
        Some("DEADLINE_EXCEEDED")
    );
    assert_eq!(GrpcCode::from_u16(17).upper_name(), None);
}

#[test]
fn grpc_codes_parse_from_names_and_numbers() {
    let names = [
        (1, "cancelled"),
        (2, "unknown"),
        (3, "invalid-argument"),
        (4, "deadline-exceeded"),
        (5, "not-found"),
        (6, "already-exists"),
        (7, "permission-denied"),
        (8, "resource-exhausted"),
        (9, "failed-precondition"),
        (10, "aborted"),
        (11, "out-of-range"),
        (12, "unimplemented"),
        (13, "internal"),
        (14, "unavailable"),
        (15, "data-loss"),
        (16, "unauthenticated"),
    ];
    for (n, name) in names {
        let code: GrpcCode = name.parse().unwrap();
        assert_eq!(code.as_u16(), n);
        assert_eq!(code.name(), Some(name));
        assert_eq!(code.to_string(), name);
        assert_eq!(n.to_string().parse::<GrpcCode>(), Ok(code));
    }
    assert_eq!("DEADLINE_EXCEEDED".parse(), Ok(GrpcCode::DEADLINE_EXCEEDED));
    assert_eq!("ok".parse(), Ok(GrpcCode::OK));
    assert_eq!("".parse::<GrpcCode>(), Err(InvalidGrpcCode::Empty));
    assert_eq!("17".parse::<GrpcCode>(), Err(InvalidGrpcCode::Unknown));
    assert_eq!("+4".parse::<GrpcCode>(), Err(InvalidGrpcCode::Unknown));
    assert_eq!(
        "deadline".parse::<GrpcCode>(),
        Err(InvalidGrpcCode::Unknown)
    );
    assert_eq!(GrpcCode::from_u16(42).to_string(), "42");
}

#[test]
fn grpc_status_header_values_are_decimal() {
    let h = |s: &str| GrpcCode::from_header(&HeaderValue::from_str(s).unwrap());
    assert_eq!(h("0"), Some(GrpcCode::OK));
    assert_eq!(h("14"), Some(GrpcCode::UNAVAILABLE));
    assert_eq!(h("65535"), Some(GrpcCode::from_u16(65535)));
    assert_eq!(h("65536"), None);
    assert_eq!(h(""), None);
    assert_eq!(h("1 4"), None);
    assert_eq!(h("-1"), None);
}

#[test]
fn grpc_code_lists_parse_and_display() {
    let codes: GrpcCodes = "cancelled, deadline-exceeded,internal,resource-exhausted,unavailable"
        .parse()
        .unwrap();
    assert!(codes.contains(GrpcCode::RESOURCE_EXHAUSTED));
    assert!(!codes.contains(GrpcCode::UNKNOWN));
    assert_eq!(
        codes.to_string(),
        "cancelled,deadline-exceeded,resource-exhausted,internal,unavailable"
    );
    assert_eq!(codes.to_string().parse(), Ok(codes));
    assert_eq!("".parse::<GrpcCodes>(), Err(InvalidGrpcCode::Empty));
    assert_eq!(
        "internal,,".parse::<GrpcCodes>(),
        Err(InvalidGrpcCode::Empty)
    );
    assert_eq!(
        "internal,nope".parse::<GrpcCodes>(),
        Err(InvalidGrpcCode::Unknown)
    );
    assert!(!GrpcCodes::all_errors().contains(GrpcCode::OK));
    assert_eq!(GrpcCodes::all_errors().iter().count(), 16);
    assert!(!GrpcCodes::all_errors().contains(GrpcCode::from_u16(17)));
}

#[test]
fn grpcs_http_mapping_differs_from_linkerds_default_in_two_codes() {
    let linkerd = GrpcCodes::linkerd_failures();
    assert_eq!(Classify::default().grpc_failures(), linkerd);
    let mapping = GrpcCodes::server_errors();
    assert_eq!(
        mapping,
        "unknown,deadline-exceeded,unimplemented,internal,unavailable,data-loss"
            .parse::<GrpcCodes>()
            .unwrap()
    );
    assert_eq!(
        linkerd,
        "unknown,deadline-exceeded,permission-denied,internal,unavailable,data-loss"
            .parse::<GrpcCodes>()
            .unwrap()
    );
    assert!(linkerd.contains(GrpcCode::PERMISSION_DENIED));
    assert!(!mapping.contains(GrpcCode::PERMISSION_DENIED));
    assert!(mapping.contains(GrpcCode::UNIMPLEMENTED));
    assert!(!linkerd.contains(GrpcCode::UNIMPLEMENTED));
    let shared = linkerd.iter().filter(|c| mapping.contains(*c)).count();
    assert_eq!((linkerd.iter().count(), shared), (6, 5));
}

#[test]
fn status_ranges_parse_every_form() {
    let parse = |s: &str| s.parse::<StatusRanges>().unwrap();
    let codes = |r: StatusRanges| -> Vec<u16> {
        (100..=999)
            .filter(|&n| r.contains(StatusCode::from_u16(n).unwrap()))
            .collect()
    };
    assert_eq!(codes(parse("503")), [503]);
    assert_eq!(codes(parse("500-504")), [500, 501, 502, 503, 504]);
    assert_eq!(codes(parse("gateway-error")), [502, 503, 504]);
    assert_eq!(codes(parse("Gateway-Error")), [502, 503, 504]);
    assert_eq!(codes(parse("5xx")), (500..=599).collect::<Vec<_>>());
    assert_eq!(codes(parse("4XX")), (400..=499).collect::<Vec<_>>());
    assert_eq!(codes(parse(" 429 , 500 - 501 ")), [429, 500, 501]);
    assert_eq!(parse("5xx"), StatusRanges::server_errors());
    assert_eq!(parse("502-504"), StatusRanges::gateway_errors());
    assert_eq!(parse("100-999").ranges().collect::<Vec<_>>(), [100..=999]);
}

#[test]
fn status_ranges_display_in_their_parse_form() {
    for (input, shown) in [
        ("5xx", "5xx"),
        ("gateway-error,429", "429,502-504"),
        ("500-504,505-599", "5xx"),
        ("503", "503"),
        ("100-999", "100-999"),
        ("4xx,5xx", "400-599"),
    ] {
        let ranges: StatusRanges = input.parse().unwrap();
        assert_eq!(ranges.to_string(), shown, "{input}");
        assert_eq!(shown.parse(), Ok(ranges), "{input}");
    }
}

#[test]
fn bad_status_ranges_say_what_is_wrong() {
    for (input, err) in [
        ("", InvalidStatusRange::Empty),
        ("500,", InvalidStatusRange::Empty),
        ("abc", InvalidStatusRange::NotAStatus),
        ("0xx", InvalidStatusRange::NotAStatus),
        ("5x", InvalidStatusRange::NotAStatus),
        ("500-", InvalidStatusRange::NotAStatus),
        ("-500", InvalidStatusRange::NotAStatus),
        ("+500", InvalidStatusRange::NotAStatus),
        ("5.0", InvalidStatusRange::NotAStatus),
        ("99", InvalidStatusRange::OutOfRange(99)),
        ("1000", InvalidStatusRange::OutOfRange(1000)),
        ("500-1000", InvalidStatusRange::OutOfRange(1000)),
        ("99999999999", InvalidStatusRange::OutOfRange(u32::MAX)),
        (
            "504-500",
            InvalidStatusRange::Reversed {
                start: 504,
                end: 500,
            },
        ),
    ] {
        assert_eq!(input.parse::<StatusRanges>(), Err(err), "{input:?}");
    }
    assert_eq!(
        StatusRanges::empty().with_range(600..=1000),
        Err(InvalidStatusRange::OutOfRange(1000))
    );
}

#[test]
fn status_ranges_build_in_code() {
    let r = StatusRanges::empty()
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_range(500..=502)
        .unwrap();
    assert_eq!(r.to_string(), "429,500-502");
    assert!(StatusRanges::empty().is_empty());
    assert!(!r.is_empty());
    assert_eq!(format!("{r:?}"), "StatusRanges(429,500-502)");
}
