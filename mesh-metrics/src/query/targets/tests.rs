use super::*;

/// What `--admin` is told to take, which every refusal repeats.
const EXPECTED: &str = "expected HOST:PORT or NAME=HOST:PORT";

fn refused(item: &str) -> InvalidTarget {
    item.parse::<Target>().unwrap_err()
}

#[test]
fn an_address_with_a_scheme_is_refused_naming_it() {
    // Accepted, it failed only at the scrape, with a DNS error for the
    // host `http`.
    for item in [
        "http://127.0.0.1:4191",
        "web=https://127.0.0.1:4191",
        "http://a:1/?x=y",
    ] {
        let error = refused(item);
        assert_eq!(
            (error.kind(), error.item()),
            (InvalidTargetKind::Scheme, item)
        );
        let message = error.to_string();
        assert!(message.contains(&format!("`{item}`")), "{message}");
        assert!(message.contains("scheme"), "{message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
}

#[test]
fn the_refusal_of_a_url_says_what_to_write_instead() {
    assert_eq!(
        Target::parse_list("web=127.0.0.1:4191,http://127.0.0.1:4192")
            .unwrap_err()
            .to_string(),
        "admin target `http://127.0.0.1:4192` has a scheme; \
         expected HOST:PORT or NAME=HOST:PORT"
    );
}

#[test]
fn an_address_with_a_path_is_refused_naming_it() {
    for item in ["127.0.0.1:4191/metrics", "web=a:1/", "web=a/b:1"] {
        assert_eq!(refused(item).kind(), InvalidTargetKind::Path, "{item}");
        let message = refused(item).to_string();
        assert!(message.contains(&format!("`{item}`")), "{message}");
        assert!(message.contains("path"), "{message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
}

#[test]
fn an_ipv6_address_parses_in_brackets() {
    let target: Target = "[::1]:4191".parse().unwrap();
    assert_eq!(
        (target.name.as_str(), target.addr.as_str()),
        ("[::1]:4191", "[::1]:4191")
    );
    let target: Target = "web=[fe80::1]:4191".parse().unwrap();
    assert_eq!(
        (target.name.as_str(), target.addr.as_str()),
        ("web", "[fe80::1]:4191")
    );
    // Out of brackets, `::1:4191` may be an address with no port.
    for item in ["::1:4191", "web=[::1:4191", "web=[nope]:4191"] {
        assert_eq!(refused(item).kind(), InvalidTargetKind::Ipv6, "{item}");
        let message = refused(item).to_string();
        assert!(message.contains("brackets"), "{message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
}

#[test]
fn names_paths_and_ports_are_checked() {
    let ok: Target = "deploy/web=a:1".parse().unwrap();
    assert_eq!((ok.name.as_str(), ok.addr.as_str()), ("deploy/web", "a:1"));
    for (item, kind, says) in [
        ("=a:1", InvalidTargetKind::Name, "empty name"),
        ("web=nowhere", InvalidTargetKind::Port, "port"),
        ("web=a:99999", InvalidTargetKind::Port, "port"),
        ("web=:4191", InvalidTargetKind::Host, "host"),
    ] {
        assert_eq!(refused(item).kind(), kind, "{item}");
        let message = refused(item).to_string();
        assert!(message.contains(&format!("`{item}`")), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
}

#[test]
fn an_empty_item_of_a_list_is_refused_by_its_place() {
    for (list, place) in [("a:1,,b:2", 2), ("a:1,", 2), (",a:1", 1), ("a:1, ,b:2", 2)] {
        let error = Target::parse_list(list).unwrap_err();
        assert_eq!(
            (error.kind(), error.place(), error.item()),
            (InvalidTargetKind::Empty, Some(place), ""),
            "{list}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("item {place} ")),
            "{list}: {message}"
        );
        assert!(message.contains("empty"), "{list}: {message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
    // A list of nothing names no target, which the views refuse by name.
    assert_eq!(Target::parse_list("").unwrap(), []);
    let targets = Target::parse_list(" web=a:1 , [::1]:2").unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(
        (targets[1].name.as_str(), targets[1].addr.as_str()),
        ("[::1]:2", "[::1]:2")
    );
}

#[test]
fn a_host_no_name_or_address_can_be_is_refused_naming_the_item() {
    // Accepted, each failed only at the scrape, as a DNS error for a host
    // that cannot exist, far from the flag that was mistyped.
    for item in [
        "web=a=b:1",
        "web==a:1",
        "web=a b:1",
        "web=admin@a:1",
        "web=a?b:1",
    ] {
        let message = match item.parse::<Target>() {
            Ok(target) => panic!("{item} was taken as {target:?}"),
            Err(error) => error.to_string(),
        };
        assert!(message.contains(&format!("`{item}`")), "{message}");
        assert!(message.contains("host"), "{message}");
        assert!(message.ends_with(EXPECTED), "{message}");
    }
    for item in [
        "web=emoji-svc.emojivoto.svc.cluster.local:4191",
        "web=my_host:1",
        "10.0.0.1:4191",
    ] {
        assert!(item.parse::<Target>().is_ok(), "{item}");
    }
}
