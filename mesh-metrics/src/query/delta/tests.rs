use super::*;

#[test]
fn increases_survive_resets_and_new_series() {
    let before = Scrape::parse(
        "response_total{classification=\"success\",tls=\"true\"} 10\n\
         response_total{classification=\"failure\"} 5\n",
    )
    .unwrap();
    let after = Scrape::parse(
        "response_total{classification=\"success\",tls=\"true\"} 28\n\
         response_total{classification=\"failure\"} 2\n\
         retry_requests_total{route_name=\"r\"} 4\n",
    )
    .unwrap();
    let delta = Delta::between(&before, &after, Duration::from_secs(10));
    let mut t = Totals::default();
    delta.accumulate(&mut t, |_| true);
    // 18 new successes; the failure series reset to 2; 4 new retries.
    assert_eq!(
        (t.success, t.failure, t.tls, t.retries),
        (18.0, 2.0, 18.0, 4.0)
    );
    assert_eq!(t.success_rate(), Some(0.9));
    assert_eq!(t.rps(delta.elapsed()), 2.0);
    assert_eq!(t.tls_rate(), Some(0.9));
    assert_eq!(t.retry_ratio(), Some(0.2));
    // 18 successful attempts of 20 requests + 4 retries.
    assert_eq!(t.actual_success_rate(), Some(0.75));
    assert_eq!(t.actual_rps(delta.elapsed()), 2.4);
}

#[test]
fn a_series_is_its_label_set_whatever_the_order_of_its_labels() {
    // Prometheus identifies a series by its label set; another exporter,
    // or another version of this one, may write the labels in another
    // order.
    let before =
        Scrape::parse("response_total{classification=\"success\",direction=\"inbound\"} 100\n")
            .unwrap();
    let after =
        Scrape::parse("response_total{direction=\"inbound\",classification=\"success\"} 130\n")
            .unwrap();
    let delta = Delta::between(&before, &after, Duration::from_secs(10));
    let mut t = Totals::default();
    delta.accumulate(&mut t, |_| true);
    assert_eq!(t.success, 30.0);
}

#[test]
fn series_are_matched_in_any_order_and_new_ones_count_whole() {
    // A family's series change places when its map grows, and a new
    // series may come anywhere.
    let before = Scrape::parse(
        "a_total{x=\"1\"} 10\n\
         a_total{x=\"2\"} 20\n\
         b_total{x=\"1\"} 30\n\
         b_total{x=\"2\"} 40\n",
    )
    .unwrap();
    let after = Scrape::parse(
        "a_total{x=\"2\"} 21\n\
         a_total{x=\"3\"} 5\n\
         a_total{x=\"1\"} 12\n\
         b_total{x=\"1\"} 33\n\
         b_total{x=\"2\"} 44\n\
         c_total{x=\"1\"} 7\n",
    )
    .unwrap();
    let delta = Delta::between(&before, &after, Duration::from_secs(10));
    let increases: Vec<(&str, Option<&str>, f64)> = delta
        .samples()
        .iter()
        .map(|s| (s.name.as_str(), s.label("x"), s.value))
        .collect();
    assert_eq!(
        increases,
        [
            ("a_total", Some("2"), 1.0),
            ("a_total", Some("3"), 5.0),
            ("a_total", Some("1"), 2.0),
            ("b_total", Some("1"), 3.0),
            ("b_total", Some("2"), 4.0),
            ("c_total", Some("1"), 7.0),
        ]
    );
}

#[test]
fn after_a_restart_every_counter_counts_whole() {
    // The process restarted between the scrapes: every counter began
    // again from zero, including those that have already climbed past
    // their old values. Taking those as increases would count 20 - 10
    // failures instead of 20.
    let before = Scrape::parse(
        "process_start_time_seconds 1700000000\n\
         response_total{classification=\"success\"} 1000\n\
         response_total{classification=\"failure\"} 10\n",
    )
    .unwrap();
    let after = Scrape::parse(
        "process_start_time_seconds 1700000500\n\
         response_total{classification=\"success\"} 50\n\
         response_total{classification=\"failure\"} 20\n",
    )
    .unwrap();
    let delta = Delta::between(&before, &after, Duration::from_secs(10));
    let mut t = Totals::default();
    delta.accumulate(&mut t, |_| true);
    assert_eq!((t.success, t.failure), (50.0, 20.0));

    // The same process: increases as usual.
    let same = Scrape::parse(
        "process_start_time_seconds 1700000000\n\
         response_total{classification=\"success\"} 1050\n\
         response_total{classification=\"failure\"} 30\n",
    )
    .unwrap();
    let delta = Delta::between(&before, &same, Duration::from_secs(10));
    let mut t = Totals::default();
    delta.accumulate(&mut t, |_| true);
    assert_eq!((t.success, t.failure), (50.0, 20.0));
}

#[test]
fn a_series_whose_created_time_changed_was_reset() {
    // OpenMetrics dates each counter and histogram series with a
    // `_created` sample; a new date means the series began again from
    // zero, even where its new value is past its old one.
    let before = Scrape::parse(
        "hits_total{a=\"1\"} 100\n\
         hits_created{a=\"1\"} 1000\n\
         lat_bucket{le=\"1.0\",a=\"1\"} 50\n\
         lat_count{a=\"1\"} 50\n\
         lat_created{a=\"1\"} 1000\n",
    )
    .unwrap();
    let after = Scrape::parse(
        "hits_total{a=\"1\"} 130\n\
         hits_created{a=\"1\"} 2000\n\
         lat_bucket{le=\"1.0\",a=\"1\"} 60\n\
         lat_count{a=\"1\"} 60\n\
         lat_created{a=\"1\"} 1000\n",
    )
    .unwrap();
    let delta = Delta::between(&before, &after, Duration::from_secs(10));
    let value = |name: &str| {
        delta
            .samples()
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    };
    assert_eq!(value("hits_total"), Some(130.0));
    assert_eq!(value("lat_bucket"), Some(10.0));
    assert_eq!(value("lat_count"), Some(10.0));
}

#[test]
fn a_date_that_is_not_a_number_dates_nothing() {
    // NaN differs from itself: read as a date, the same `NaN` start time
    // in both scrapes would make every window a restart, and every
    // counter count its whole life (1,000 successes here instead of 0).
    // A server that is broken or not ours gets its increases counted as
    // if it gave no date at all.
    let (_, t) = totals(
        "process_start_time_seconds NaN\n\
         response_total{classification=\"success\"} 1000\n\
         response_total{classification=\"failure\"} 0\n",
        "process_start_time_seconds NaN\n\
         response_total{classification=\"success\"} 1000\n\
         response_total{classification=\"failure\"} 10\n",
    );
    assert_eq!((t.success, t.failure), (0.0, 10.0));

    // One start time that is a number and one that is not: no restart
    // can be told, so the increases count.
    let (_, t) = totals(
        "process_start_time_seconds 1700000000\n\
         response_total{classification=\"success\"} 1000\n",
        "process_start_time_seconds +Inf\n\
         response_total{classification=\"success\"} 1004\n",
    );
    assert_eq!(t.success, 4.0);

    // A series' `_created` alike.
    let (delta, _) = totals(
        "hits_total{a=\"1\"} 100\n\
         hits_created{a=\"1\"} NaN\n",
        "hits_total{a=\"1\"} 130\n\
         hits_created{a=\"1\"} NaN\n",
    );
    let hits = delta.samples().iter().find(|s| s.name == "hits_total");
    assert_eq!(hits.map(|s| s.value), Some(30.0));
}

/// The delta of one scrape of `before` and one of `after`, 10 seconds
/// apart, summed.
fn totals(before: &str, after: &str) -> (Delta, Totals) {
    let delta = Delta::between(
        &Scrape::parse(before).unwrap(),
        &Scrape::parse(after).unwrap(),
        Duration::from_secs(10),
    );
    let mut t = Totals::default();
    delta.accumulate(&mut t, |_| true);
    (delta, t)
}

#[test]
fn a_counter_that_went_down_was_reset_and_counts_its_new_value() {
    // However little it went down: a counter only goes up, so a lower
    // value means it began again from zero, as Prometheus' `increase`
    // reads it.
    let (delta, t) = totals(
        "response_total{classification=\"success\"} 10\n\
         response_total{classification=\"failure\"} 10\n",
        "response_total{classification=\"success\"} 9.5\n\
         response_total{classification=\"failure\"} 4\n",
    );
    assert_eq!((t.success, t.failure), (9.5, 4.0));
    assert_eq!(t.rps(delta.elapsed()), 1.35);
}

#[test]
fn a_negative_counter_value_is_left_out_rather_than_subtracted() {
    // 10 then -5: no counter reads -5, so no increase can be taken from it;
    // counted as a decrease of 5, it made 10 successes of 5 responses, a
    // success rate of 200%.
    let (delta, t) = totals(
        "response_total{classification=\"success\"} 10\n\
         response_total{classification=\"failure\"} 10\n",
        "response_total{classification=\"success\"} 20\n\
         response_total{classification=\"failure\"} -5\n",
    );
    assert_eq!((t.success, t.failure), (10.0, 0.0));
    assert_eq!(t.success_rate(), Some(1.0));
    assert_eq!(t.rps(delta.elapsed()), 1.0);
    let names: Vec<_> = delta
        .samples()
        .iter()
        .map(|s| s.label("classification"))
        .collect();
    assert_eq!(names, [Some("success")]);

    // Nor from -5 to 3: how much of 3 came in the window is not known.
    let (_, t) = totals(
        "response_total{classification=\"failure\"} -5\n",
        "response_total{classification=\"failure\"} 3\n",
    );
    assert_eq!(t.failure, 0.0);

    // A restart does not make -5 a count either.
    let (_, t) = totals(
        "process_start_time_seconds 1\nresponse_total{classification=\"failure\"} 1\n",
        "process_start_time_seconds 2\nresponse_total{classification=\"failure\"} -5\n",
    );
    assert_eq!(t.failure, 0.0);
}

#[test]
fn whatever_two_scrapes_say_success_is_a_share_and_rps_not_negative() {
    // Every pair of values each of two series may take, in and out of
    // order, negative ones included.
    const VALUES: [f64; 6] = [-5.0, -0.5, 0.0, 3.0, 10.0, 12.5];
    for (ok_before, ok_after, fail_before, fail_after) in VALUES.iter().flat_map(|a| {
        VALUES.iter().flat_map(move |b| {
            VALUES
                .iter()
                .flat_map(move |c| VALUES.iter().map(move |d| (*a, *b, *c, *d)))
        })
    }) {
        let (delta, t) = totals(
            &format!(
                "response_total{{classification=\"success\"}} {ok_before}\n\
                 response_total{{classification=\"failure\"}} {fail_before}\n"
            ),
            &format!(
                "response_total{{classification=\"success\"}} {ok_after}\n\
                 response_total{{classification=\"failure\"}} {fail_after}\n"
            ),
        );
        let case = (ok_before, ok_after, fail_before, fail_after);
        assert!(delta.samples().iter().all(|s| s.value >= 0.0), "{case:?}");
        if let Some(rate) = t.success_rate() {
            assert!((0.0..=1.0).contains(&rate), "{rate} of {case:?}");
        }
        assert!(t.rps(delta.elapsed()) >= 0.0, "{case:?}");
    }
}

#[test]
fn nan_and_infinite_counter_values_are_left_out() {
    // Neither has an increase: NaN less anything is NaN, and +Inf less
    // anything is +Inf or NaN; summed into a row, either makes every
    // figure of it NaN or infinite.
    let (delta, t) = totals(
        "response_total{classification=\"success\",route=\"a\"} 10\n\
         response_total{classification=\"success\",route=\"b\"} NaN\n\
         response_total{classification=\"success\",route=\"c\"} +Inf\n\
         response_total{classification=\"failure\",route=\"a\"} 10\n\
         response_latency_ms_bucket{le=\"10\"} 0\n\
         response_latency_ms_bucket{le=\"+Inf\"} 0\n",
        "response_total{classification=\"success\",route=\"a\"} 30\n\
         response_total{classification=\"success\",route=\"b\"} 40\n\
         response_total{classification=\"success\",route=\"c\"} 50\n\
         response_total{classification=\"success\",route=\"d\"} NaN\n\
         response_total{classification=\"failure\",route=\"a\"} +Inf\n\
         response_total{classification=\"failure\",route=\"b\"} -Inf\n\
         response_latency_ms_bucket{le=\"10\"} NaN\n\
         response_latency_ms_bucket{le=\"+Inf\"} 20\n",
    );
    let kept: Vec<_> = delta
        .samples()
        .iter()
        .map(|s| (s.name.as_str(), s.label("route").or(s.label("le")), s.value))
        .collect();
    assert_eq!(
        kept,
        [
            ("response_total", Some("a"), 20.0),
            ("response_latency_ms_bucket", Some("+Inf"), 20.0),
        ]
    );
    assert_eq!((t.success, t.failure), (20.0, 0.0));
    assert_eq!(t.success_rate(), Some(1.0));
    assert_eq!(t.rps(delta.elapsed()), 2.0);
}

#[test]
fn a_share_of_sums_past_the_range_of_f64_is_not_computed() {
    // Each value is a finite count, but their sum is +Inf: 1e308 of +Inf
    // read as a success rate of 0%.
    let (_, t) = totals(
        "",
        "response_total{classification=\"success\"} 1e308\n\
         response_total{classification=\"failure\"} 1e308\n",
    );
    assert_eq!(t.responses(), f64::INFINITY);
    assert_eq!(t.success_rate(), None);
    assert_eq!(t.tls_rate(), None);
    assert_eq!(t.actual_success_rate(), None);
}

#[test]
fn a_bucket_bound_of_nan_is_no_bucket() {
    // A bound that is NaN equals no other: kept, each such sample would
    // be a bucket of its own, and bound none.
    let mut after = String::new();
    for i in 0..MAX_BOUNDS {
        after += &format!("response_latency_ms_bucket{{le=\"NaN\",i=\"{i}\"}} 1\n");
    }
    after += "response_latency_ms_bucket{le=\"10\"} 4\n\
              response_latency_ms_bucket{le=\"+Inf\"} 4\n";
    let (_, t) = totals("", &after);
    assert_eq!(t.buckets, [(10.0, 4.0), (f64::INFINITY, 4.0)]);
    assert_eq!(t.latency_ms(0.5), Some(5.0));
}

#[test]
fn responses_over_no_time_are_no_rate() {
    // Responses counted over a window of zero have no rate; shown as 0 rps
    // they read as no traffic at all. Without responses the rate is 0.
    let t = Totals {
        success: 5.0,
        retries: 1.0,
        ..Totals::default()
    };
    assert!(!t.rps(Duration::ZERO).is_finite());
    assert!(!t.actual_rps(Duration::ZERO).is_finite());
    assert_eq!(Totals::default().rps(Duration::ZERO), 0.0);
    assert_eq!(Totals::default().actual_rps(Duration::ZERO), 0.0);
    assert_eq!(t.rps(Duration::from_secs(5)), 1.0);
}

#[test]
fn a_series_written_twice_counts_once() {
    // Prometheus keeps one value of a series per scrape (a second one at
    // the same time is a duplicate it drops); summing both counted the
    // series' traffic twice. The first written counts, in either scrape,
    // in any label order.
    let (delta, t) = totals(
        "response_total{classification=\"success\",route=\"a\"} 10\n\
         response_total{route=\"a\",classification=\"success\"} 10\n",
        "response_total{classification=\"success\",route=\"a\"} 15\n\
         response_total{classification=\"failure\"} 1\n\
         response_total{route=\"a\",classification=\"success\"} 18\n\
         response_total{classification=\"failure\"} 1\n",
    );
    assert_eq!((t.success, t.failure), (5.0, 1.0));
    assert_eq!(delta.samples().len(), 2);
}

#[test]
fn a_series_of_many_labels_in_another_order_is_matched_in_one_pass() {
    // The scraped server decides how many labels a series has and in which
    // order it writes them. Matched label by label, each looked up by a
    // scan of the other's, 200,000 labels (a line of 2 MB, well within a
    // scrape) took 2 × 10^10 comparisons: minutes of a view's time, in
    // either scrape, for one line of each.
    let labels: Vec<String> = (0..200_000).map(|i| format!("l{i}=\"v\"")).collect();
    let reversed: Vec<String> = labels.iter().rev().cloned().collect();
    let (forward, backward) = (labels.join(","), reversed.join(","));
    let before = format!("m_total{{{forward}}} 10\n");
    let after = format!("m_total{{{backward}}} 25\nm_total{{{forward}}} 99\n");
    let (delta, _) = totals(&before, &after);
    // One series: its first value counts, less the earlier one.
    assert_eq!(delta.samples().len(), 1);
    assert_eq!(delta.samples()[0].value, 15.0);
}

#[test]
fn a_series_written_twice_in_the_earlier_scrape_is_its_first_value_wherever_it_is_matched() {
    // The later scrape names another series first, so `x` is looked up
    // where the last match left off: at its second, dropped value, which
    // read as a counter gone down from 100 to 7 (a reset, 7 new) rather
    // than up from 5 (2 new).
    let (delta, _) = totals(
        "x_total 5\n\
         w_total 1\n\
         x_total 100\n",
        "w_total 2\n\
         x_total 7\n",
    );
    let increases: Vec<(&str, f64)> = delta
        .samples()
        .iter()
        .map(|s| (s.name.as_str(), s.value))
        .collect();
    assert_eq!(increases, [("w_total", 1.0), ("x_total", 2.0)]);
}
