use super::*;

#[test]
fn reads_samples_labels_and_special_values() {
    let text = "# HELP request Total.\n# TYPE request counter\n\
                request_total{direction=\"inbound\",srv_name=\"a\\\"b\\\\c\\nd\"} 3\n\
                up 1 1700000000\n\
                lat_bucket{le=\"+Inf\"} 7 # {trace_id=\"x\"} 1.0\n\
                g -Inf\n# EOF\n";
    let scrape = Scrape::parse(text).unwrap();
    let s = scrape.samples();
    assert_eq!(s.len(), 4);
    assert_eq!(s[0].name, "request_total");
    assert_eq!(s[0].label("direction"), Some("inbound"));
    assert_eq!(s[0].label("srv_name"), Some("a\"b\\c\nd"));
    assert_eq!(s[0].value, 3.0);
    assert_eq!((s[1].name.as_str(), s[1].value), ("up", 1.0));
    assert_eq!(s[2].label("le"), Some("+Inf"));
    assert_eq!(s[2].value, 7.0);
    assert_eq!(s[3].value, f64::NEG_INFINITY);
}

#[test]
fn malformed_lines_are_named() {
    let err = Scrape::parse("ok 1\nbad{x=1} 2\n").unwrap_err();
    assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Labels));
    let err = Scrape::parse("a{x=\"1\"} one\n").unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::Value);
    let err = Scrape::parse("9lives 1\n").unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::Name);
    assert_eq!(err.to_string(), "bad metric name on line 1");
}

#[test]
fn the_text_format_may_separate_tokens_with_any_blanks_and_tabs() {
    // Prometheus' text format 0.0.4: "tokens on the same line may be
    // separated by any number of blanks and/or tabs".
    let text = "a_total{x=\"1\"}  5\n\
                b\t6\t1700000000\n\
                c {x=\"1\"} 7\n\
                d{ x = \"1\" , y=\"2\" }\t8\n";
    let scrape = Scrape::parse(text).unwrap();
    let s = scrape.samples();
    let got: Vec<_> = s.iter().map(|s| (s.name.as_str(), s.value)).collect();
    assert_eq!(got, [("a_total", 5.0), ("b", 6.0), ("c", 7.0), ("d", 8.0)]);
    assert_eq!((s[3].label("x"), s[3].label("y")), (Some("1"), Some("2")));
    assert_eq!(s[2].label("x"), Some("1"));
}

#[test]
fn a_sample_with_many_labels_is_read_in_one_pass() {
    // 200,000 labels make a line of 2 MB, well within a scrape.
    let labels: Vec<String> = (0..200_000).map(|i| format!("l{i}=\"v\"")).collect();
    let line = format!("m{{{}}} 1\n", labels.join(","));
    let scrape = Scrape::parse(&line).unwrap();
    assert_eq!(scrape.samples()[0].labels().len(), 200_000);
    let twice = format!("m{{{},l7=\"w\"}} 1\n", labels.join(","));
    let err = Scrape::parse(&twice).unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::Labels);
}

#[test]
fn labels_repeated_from_line_to_line_read_as_written() {
    // Each line repeats some of the labels of the one before, at the
    // same place or not, escaped or not.
    let text = "m{le=\"1\",a=\"x\\ny\",b=\"v\"} 1\n\
                m{le=\"2\",a=\"x\\ny\",b=\"v\"} 2\n\
                n{a=\"v\",b=\"x\\ny\"} 3\n\
                n{a=\"v\",b=\"x\\ny\",c=\"\"} 4\n\
                n{a=\"v\"} 5\n";
    let scrape = Scrape::parse(text).unwrap();
    let labels: Vec<(&str, Vec<(&str, &str)>)> = scrape
        .samples()
        .iter()
        .map(|s| (s.name.as_str(), s.labels().collect()))
        .collect();
    assert_eq!(
        labels,
        [
            ("m", vec![("le", "1"), ("a", "x\ny"), ("b", "v")]),
            ("m", vec![("le", "2"), ("a", "x\ny"), ("b", "v")]),
            ("n", vec![("a", "v"), ("b", "x\ny")]),
            ("n", vec![("a", "v"), ("b", "x\ny"), ("c", "")]),
            ("n", vec![("a", "v")]),
        ]
    );
    let values: Vec<f64> = scrape.samples().iter().map(|s| s.value).collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0]);
    // A bad label name where the line before had a good one.
    let err = Scrape::parse("a{x=\"1\"} 1\na{9x=\"1\"} 1\n").unwrap_err();
    assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Labels));
    let err = Scrape::parse("a{x=\"1\"} 1\n9a{x=\"1\"} 1\n").unwrap_err();
    assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Name));
}

#[test]
fn a_label_named_twice_or_labels_without_a_comma_are_errors() {
    let err = Scrape::parse("ok 1\na{x=\"1\",x=\"2\"} 2\n").unwrap_err();
    assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Labels));
    let err = Scrape::parse("a{x=\"1\"y=\"2\"} 2\n").unwrap_err();
    assert_eq!((err.line(), err.kind()), (1, ParseErrorKind::Labels));
    // A trailing comma is allowed.
    assert!(Scrape::parse("a{x=\"1\",} 2\n").is_ok());
}

#[test]
fn lines_may_begin_with_blanks() {
    // Prometheus' text parser skips the blanks and tabs that begin a line
    // (expfmt's `startOfLine`), before a sample or a comment alike; an
    // indented line was read as a sample with an empty name, and failed
    // the whole scrape.
    let text = "  # HELP a_total A.\n\t# TYPE a_total counter\n  a_total{x=\"1\"} 5\n\t b 6\n";
    let scrape = Scrape::parse(text).unwrap();
    let got: Vec<_> = scrape
        .samples()
        .iter()
        .map(|s| (s.name.as_str(), s.value))
        .collect();
    assert_eq!(got, [("a_total", 5.0), ("b", 6.0)]);
    assert_eq!(scrape.samples()[0].label("x"), Some("1"));
    // A line of blanks only is an empty line.
    assert_eq!(Scrape::parse(" \t \na 1\n").unwrap().samples().len(), 1);
}

#[test]
fn nothing_may_follow_the_end_of_an_openmetrics_body() {
    // OpenMetrics ends a body with `# EOF`: a sample after it is not part
    // of the exposition, and a peer that writes one is broken or is two
    // bodies run together.
    let text = "a_total 1\n# EOF\na_total 2\n";
    let err = Scrape::parse(text).unwrap_err();
    assert_eq!(err.kind(), ParseErrorKind::AfterEof);
    assert_eq!(err.line(), 3);
    assert_eq!(err.to_string(), "text after # EOF on line 3");
    // Blank lines after it are nothing; and a body without `# EOF` (the
    // older text format) is read as ever.
    let scrape = Scrape::parse("a_total 1\n# EOF\n\n").unwrap();
    assert_eq!(scrape.samples().len(), 1);
    assert_eq!(Scrape::parse("a_total 1\n").unwrap().samples().len(), 1);
}

#[test]
fn a_body_of_more_samples_than_a_scrape_keeps_is_refused_naming_the_line() {
    // A sample takes 40 bytes however short its line: `a 1` is 4 bytes of
    // text, so a body at the size limit of shortest lines (33 million
    // samples) held ten times its size, and a delta of two such scrapes
    // gigabytes.
    let limit = MAX_SAMPLES;
    let text = "a 1\n".repeat(limit + 1);
    let error = Scrape::parse(&text).unwrap_err();
    assert_eq!(
        (error.kind(), error.line()),
        (ParseErrorKind::TooManySamples, limit + 1)
    );
    assert_eq!(
        error.to_string(),
        format!("more than {limit} samples by line {}", limit + 1)
    );
    // Up to the limit, a body is read.
    assert_eq!(Scrape::parse(&text[4..]).unwrap().samples().len(), limit);
}

#[test]
fn text_after_a_value_is_refused_naming_the_line_unless_a_timestamp_or_an_exemplar() {
    // Prometheus refuses these lines; read, they would count a value
    // whose line says something else too.
    for (line, text) in [
        (2, "ok 1\na 1 garbage\n"),
        (1, "a{x=\"1\"} 1 1700000000 extra\n"),
        (1, "a 1 # not an exemplar\n"),
        (1, "a 1 # {trace_id=\"x\"}\n"),
        (1, "a 1 # {trace_id=\"x\"} 1 2 3\n"),
        (1, "a 1 # {trace_id=x} 1\n"),
        (1, "a 1 12ab\n"),
    ] {
        let err = Scrape::parse(text).unwrap_err();
        assert_eq!(
            (err.line(), err.kind()),
            (line, ParseErrorKind::Trailing),
            "{text}"
        );
    }
    let err = Scrape::parse("ok 1\nb{x=\"1\"} 2 junk\n").unwrap_err();
    assert_eq!(err.to_string(), "text after the sample value on line 2");
    // A timestamp, in milliseconds or OpenMetrics' seconds, and an
    // exemplar with or without its own timestamp, are what may follow.
    let text = "a 1 1700000000000\n\
                b 2 1700000000.5\n\
                c_bucket{le=\"1\"} 3 # {trace_id=\"a b\",span_id=\"c\"} 0.5\n\
                d_total 4 1700000000 # {} 1 1700000000.25\n\
                e 5\t \n";
    let scrape = Scrape::parse(text).unwrap();
    let values: Vec<f64> = scrape.samples().iter().map(|s| s.value).collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn an_openmetrics_body_must_end_with_eof() {
    // Cut short, at any line: the last line it has is named.
    let err = Scrape::parse_openmetrics("a_total 1\nb_total 12").unwrap_err();
    assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::NoEof));
    assert_eq!(
        err.to_string(),
        "no # EOF after line 2, where an OpenMetrics body ends"
    );
    let err = Scrape::parse_openmetrics("").unwrap_err();
    assert_eq!((err.line(), err.kind()), (0, ParseErrorKind::NoEof));
    assert_eq!(
        err.to_string(),
        "an empty body, where an OpenMetrics body has # EOF"
    );
    // Whole, blank lines after `# EOF` and all.
    let scrape = Scrape::parse_openmetrics("a_total 1\n# EOF\n\n").unwrap();
    assert_eq!(scrape.samples().len(), 1);
    // The text format has no `# EOF`.
    assert!(Scrape::parse("a_total 1\n").is_ok());
}
