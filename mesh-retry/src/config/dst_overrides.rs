//! A `ServiceProfile`'s `spec.dstOverrides`: Linkerd's traffic split of a
//! whole service.
//!
//! Linkerd's ServiceProfile can send every request addressed to its
//! service to other services, each in proportion to a weight: a list of
//! `{authority, weight}`, which linkerd-smi's `TrafficSplit` controller
//! writes and older Flagger canaries use. It is the split an `HTTPRoute`
//! rule writes with `backendRefs`, for the whole service, so a service's
//! overrides ([`ServiceRetryPolicy::dst_overrides`]) are served by the
//! same means.
//!
//! They are read as Linkerd reads them, so that a profile written for
//! Linkerd splits the same way here:
//!
//! - `authority` is a service's DNS name with an optional port
//!   (`emoji-v2.emojivoto.svc.cluster.local:8080`). The service is named by
//!   the host, as the rest of the reader names services: its first label
//!   is the service, the second its namespace (the profile's service's
//!   namespace when there is none). The port is not read: the service's
//!   own endpoints carry theirs. An override naming the profile's own
//!   service is that service: a canary's stable half.
//! - `weight` is a Kubernetes quantity (`1`, `0`, `500m`, `1.5`, `10k`,
//!   `1Ki`, `1e3`), as the CRD types it. Linkerd's destination controller
//!   sends the proxy each weight as a whole number of ten-thousandths
//!   (`MilliValue() * 10` in `toDstOverrides` of linkerd2's
//!   `controller/api/destination/profile_translator.go`), the thousandths
//!   rounded up; [`DstWeight`] holds the same number. The controller casts
//!   it to 32 bits, so a weight over 429496.729 would wrap around to
//!   another; it is refused here, as are negative weights and text that is
//!   no quantity.
//! - linkerd2-proxy drops an override of weight 0 (and one whose authority
//!   it cannot read) and splits among the rest (`convert_dst_override` in
//!   `linkerd/service-profiles/src/proto.rs`); with none left, the
//!   requests go to the service itself. So an empty list, or one whose
//!   weights are all 0, is no split. (An `HTTPRoute` rule whose
//!   `backendRefs` all weigh 0 is another matter: the Gateway API has its
//!   requests answered 500.)
//!
//! A malformed authority or weight is an error naming the document, the
//! entry (`spec.dstOverrides[1].weight`) and its line.

use std::{fmt, num::NonZeroU32, sync::Arc};

use mesh_core::resource::{DocumentContext, ResourceName};
use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

use super::{ServiceProfile, ServiceRetryPolicy};

/// A `dstOverrides` entry, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DstOverride {
    /// `authority`: the service the entry sends requests to.
    pub authority: DstAuthority,
    /// `weight`: its share of the service's requests.
    pub weight: DstWeight,
}

/// A `dstOverrides` entry's `authority`: a service's DNS name, with an
/// optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DstAuthority {
    /// The host, lowercase, without a trailing dot.
    host: String,
    /// The port, when written.
    port: Option<u16>,
}

impl DstAuthority {
    /// Reads `text`: a DNS name of 1 to 253 characters, dot-separated
    /// labels of 1 to 63 letters, digits or `-` (never at either end of a
    /// label), in any case and with an optional trailing dot, then an
    /// optional `:port` from 1 to 65535.
    ///
    /// # Errors
    ///
    /// [`InvalidDstAuthority`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, InvalidDstAuthority> {
        let invalid = |why: &'static str| InvalidDstAuthority {
            authority: text.to_owned(),
            why,
        };
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| invalid("its port is not a number from 1 to 65535"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err(invalid("it has no host"));
        }
        if host.contains(':') || host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
        {
            return Err(invalid("an IP address names no service"));
        }
        if host.len() > 253 {
            return Err(invalid("its host is longer than 253 characters"));
        }
        for label in host.split('.') {
            let bytes = label.as_bytes();
            if bytes.is_empty() || bytes.len() > 63 {
                return Err(invalid("each dot-separated label is 1 to 63 characters"));
            }
            if !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                || bytes.first() == Some(&b'-')
                || bytes.last() == Some(&b'-')
            {
                return Err(invalid(
                    "a label holds only letters, digits and `-`, and no `-` at either end",
                ));
            }
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host: `emoji-v2.emojivoto.svc.cluster.local`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The service the authority names, and its namespace when the host
    /// gives one: the first label and the second, as the sidecar reads
    /// `outbound.services` names (`emoji-v2`, `emoji-v2.emojivoto`,
    /// `emoji-v2.emojivoto.svc.cluster.local`).
    pub fn service(&self) -> (&str, Option<&str>) {
        let mut labels = self.host.split('.');
        let name = labels.next().unwrap_or_default();
        (name, labels.next())
    }
}

impl fmt::Display for DstAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for DstAuthority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// A `dstOverrides` authority that names no service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDstAuthority {
    authority: String,
    why: &'static str,
}

impl fmt::Display for InvalidDstAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "authority {:?} is not a service's DNS name with an optional port, such as \
             emoji-v2.emojivoto.svc.cluster.local:8080: {}",
            self.authority, self.why
        )
    }
}

impl std::error::Error for InvalidDstAuthority {}

/// A `dstOverrides` entry's `weight`, in the unit Linkerd's destination
/// controller sends it to the proxy in: ten-thousandths, the thousandths
/// rounded up, so `1` is 10000, `500m` 5000 and `1u` 10. A weight is
/// written as a Kubernetes quantity; one that is negative, or over
/// 429496.729 (which Linkerd's 32 bits would wrap around), is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DstWeight(u32);

/// The most thousandths a weight may have: ten times as many
/// ten-thousandths still fit the 32 bits Linkerd sends a weight in.
const MAX_MILLIS: u64 = u32::MAX as u64 / 10;

impl DstWeight {
    /// Reads a Kubernetes quantity: an optional sign, a decimal number
    /// (`1`, `1.5`, `.5`), then an optional suffix: `n`, `u`, `m`, `k`,
    /// `M`, `G`, `T`, `P`, `E`; `Ki` to `Ei`; or an exponent (`e3`,
    /// `E-2`).
    ///
    /// # Errors
    ///
    /// [`InvalidDstWeight`] for text that is no quantity, a negative one,
    /// or one over 429496.729.
    pub fn parse(text: &str) -> Result<Self, InvalidDstWeight> {
        let invalid = |kind| InvalidDstWeight {
            weight: text.to_owned(),
            kind,
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(invalid(WeightError::Format));
        }
        let (exponent, binary) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            _ => {
                let exponent = suffix
                    .strip_prefix(['e', 'E'])
                    .filter(|e| {
                        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|e| e.parse::<i64>().ok())
                    .ok_or_else(|| invalid(WeightError::Format))?;
                (exponent, 0)
            }
        };
        // The digits of the number without its point, as a big number
        // (most significant first), times 1024 per binary step.
        let mut digits: Vec<u8> = whole
            .bytes()
            .chain(fraction.bytes())
            .map(|b| b - b'0')
            .collect();
        for _ in 0..binary {
            times_1024(&mut digits);
        }
        let start = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
        let digits = &digits[start..];
        if digits.is_empty() {
            return Ok(Self(0));
        }
        if negative {
            return Err(invalid(WeightError::Negative));
        }
        // The value in thousandths is the digits times 10^scale; its whole
        // part has `whole_len` digits, and any digit after them rounds it
        // up, as Kubernetes' `MilliValue` does.
        let scale = i128::from(exponent) - fraction.len() as i128 + 3;
        let whole_len = digits.len() as i128 + scale;
        let millis = if whole_len <= 0 {
            1
        } else if whole_len > 18 {
            return Err(invalid(WeightError::TooLarge));
        } else {
            let whole_len = whole_len as usize;
            let whole = (0..whole_len).fold(0_u64, |n, i| {
                n * 10 + u64::from(digits.get(i).copied().unwrap_or(0))
            });
            let rest = digits.get(whole_len..).unwrap_or_default();
            whole + u64::from(rest.iter().any(|&d| d != 0))
        };
        if millis > MAX_MILLIS {
            return Err(invalid(WeightError::TooLarge));
        }
        u32::try_from(millis * 10)
            .map(Self)
            .map_err(|_| invalid(WeightError::TooLarge))
    }

    /// The weight in ten-thousandths: 10000 for `1`.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Multiplies the decimal number `digits` (most significant first) by
/// 1024, in place.
fn times_1024(digits: &mut Vec<u8>) {
    let mut carry = 0_u32;
    for digit in digits.iter_mut().rev() {
        let n = u32::from(*digit) * 1024 + carry;
        *digit = (n % 10) as u8;
        carry = n / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

impl std::str::FromStr for DstWeight {
    type Err = InvalidDstWeight;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl<'de> Deserialize<'de> for DstWeight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WeightVisitor)
    }
}

/// Reads a weight written as the CRD allows it, a whole number or a
/// string, and a number YAML reads as a float when its value is whole
/// (`1e3`), as kubectl sends it on as one.
struct WeightVisitor;

impl Visitor<'_> for WeightVisitor {
    type Value = DstWeight;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes quantity, such as 1, 500m or \"1.5\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DstWeight, E> {
        DstWeight::parse(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<DstWeight, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<DstWeight, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<DstWeight, E> {
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e18 {
            return self.visit_str(&format!("{value:.0}"));
        }
        // Refused for what is wrong with it: a whole number too large to
        // write out (or an infinity) is no fraction.
        let kind = if value.is_nan() {
            WeightError::Format
        } else if value < 0.0 && (value.is_infinite() || value.fract() == 0.0) {
            WeightError::Negative
        } else if value.is_infinite() || value.fract() == 0.0 {
            WeightError::TooLarge
        } else {
            WeightError::Fraction
        };
        Err(E::custom(InvalidDstWeight {
            weight: value.to_string(),
            kind,
        }))
    }
}

/// A `dstOverrides` weight that is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDstWeight {
    weight: String,
    kind: WeightError,
}

/// What is wrong with a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightError {
    Format,
    Negative,
    TooLarge,
    Fraction,
}

impl fmt::Display for InvalidDstWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let weight = &self.weight;
        match self.kind {
            WeightError::Format => write!(
                f,
                "weight {weight:?} is not a Kubernetes quantity, such as 1, 0, 500m, 1.5 or 10k"
            ),
            WeightError::Negative => {
                write!(f, "weight {weight} is negative; a weight is 0 or more")
            }
            WeightError::TooLarge => write!(
                f,
                "weight {weight} is over 429496.729, the most Linkerd carries: it sends a weight \
                 as a 32-bit count of ten-thousandths, and a larger one would wrap around"
            ),
            WeightError::Fraction => write!(
                f,
                "weight {weight} is a fraction written as a number, which the ServiceProfile \
                 schema refuses (it takes a whole number or a string): write \"{weight}\" or in \
                 thousandths, such as 1500m"
            ),
        }
    }
}

impl std::error::Error for InvalidDstWeight {}

/// One of a service's `dstOverrides` with a weight above 0: the service
/// it sends requests to, and its share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DstBackend {
    /// The service's name: the first label of the authority's host.
    pub name: String,
    /// Its namespace: the host's second label, else the namespace of the
    /// profile's service; `None` when neither names one.
    pub namespace: Option<String>,
    /// The authority, as read.
    pub authority: DstAuthority,
    /// Its share, in ten-thousandths ([`DstWeight`]).
    pub weight: NonZeroU32,
    /// Where it is written, as a [`ConfigWarning`](super::ConfigWarning)
    /// names a place: `profile.yaml: document 2 (ServiceProfile
    /// emojivoto/emoji.emojivoto.svc.cluster.local): spec.dstOverrides[1]`
    /// (without `emojivoto/` for a profile written without a namespace).
    pub source: String,
}

impl ServiceProfile {
    /// The profile's `dstOverrides` with a weight above 0, each resolved
    /// to the service it names; empty when there are none, and the
    /// service's requests are not split. `context` is the profile's
    /// document.
    pub(super) fn dst_backends(&self, context: &DocumentContext<'_>) -> Arc<[DstBackend]> {
        let (_, namespace) = self.service();
        // Named as a warning about the same document names it.
        let profile = ResourceName::new(
            Some(context.kind()),
            context.namespace(),
            Some(&self.metadata.name),
        );
        self.spec
            .dst_overrides
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| {
                let weight = NonZeroU32::new(entry.weight.get())?;
                let (name, own) = entry.authority.service();
                Some(DstBackend {
                    name: name.to_owned(),
                    namespace: own.map(str::to_owned).or_else(|| namespace.clone()),
                    authority: entry.authority.clone(),
                    weight,
                    source: format!(
                        "{}: document {} ({profile}): spec.dstOverrides[{i}]",
                        context.origin(),
                        context.index(),
                    ),
                })
            })
            .collect()
    }
}

impl ServiceRetryPolicy {
    /// Where every request addressed to the service goes, and in what
    /// shares: its ServiceProfile's `dstOverrides` of weight above 0.
    /// Empty for a service without them, whose requests go where its
    /// routes send them. Of two profiles for the service, those of the
    /// one in force (see [`merge`](Self::merge)).
    ///
    /// Linkerd's proxy serves a service whose profile has overrides (or
    /// routes) by the profile alone, in place of its `HTTPRoute`s
    /// (`should_override_policy` in linkerd2-proxy's
    /// `linkerd/app/outbound/src/http/logical/profile.rs`). So the
    /// overrides take every request of the service:
    /// those of its ServiceProfile routes and those no route matches, once
    /// its `HTTPRoute` and `GRPCRoute` rules are set aside by
    /// [`set_aside_for_profile`](Self::set_aside_for_profile), which
    /// [`load`](super::load) leaves to its caller.
    ///
    /// A `TrafficSplit` whose apex is the service replaces them with its
    /// backends, as linkerd-smi writes them over the profile's (see
    /// [`TrafficSplit`](super::TrafficSplit)), but for a profile with the
    /// `smi.linkerd.io/skip` annotation.
    pub fn dst_overrides(&self) -> &[DstBackend] {
        if let Some(split) = self.split_in_force() {
            return &split.backends;
        }
        self.profile
            .as_deref()
            .map(|profile| &*profile.dst_overrides)
            .unwrap_or_default()
    }

    /// Whether [`dst_overrides`](Self::dst_overrides) are the backends of
    /// a `TrafficSplit` rather than the profile's own: a message about
    /// one of them then names the split, which is where the user wrote
    /// it, not `dstOverrides`, which the user never wrote.
    pub fn dst_overrides_from_traffic_split(&self) -> bool {
        self.split_in_force().is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn weights_are_read_as_linkerd_sends_them() {
        for (text, weight) in [
            ("0", 0),
            ("-0", 0),
            ("0.000", 0),
            ("1", 10_000),
            ("+1", 10_000),
            ("10", 100_000),
            ("500m", 5_000),
            ("100m", 1_000),
            ("900m", 9_000),
            ("1.5", 15_000),
            (".5", 5_000),
            ("5.", 50_000),
            ("10k", 100_000_000),
            ("1Ki", 10_240_000),
            ("1e3", 10_000_000),
            ("1E3", 10_000_000),
            ("15e-1", 15_000),
            ("0.5Ki", 5_120_000),
            // Thousandths round up, as Kubernetes' MilliValue does.
            ("1u", 10),
            ("1n", 10),
            ("1.0001", 10_010),
            ("0.0000000000000000000000001", 10),
            ("429496.729", 4_294_967_290),
            ("429496729m", 4_294_967_290),
        ] {
            assert_eq!(DstWeight::parse(text).unwrap().get(), weight, "{text}");
        }
    }

    #[test]
    fn weights_that_are_no_quantity_negative_or_would_wrap_are_refused() {
        for (text, kind) in [
            ("", WeightError::Format),
            ("one", WeightError::Format),
            (".", WeightError::Format),
            ("1.2.3", WeightError::Format),
            ("1K", WeightError::Format),
            ("1 ", WeightError::Format),
            ("1e1.5", WeightError::Format),
            ("1e", WeightError::Format),
            ("1mi", WeightError::Format),
            ("50%", WeightError::Format),
            ("-1", WeightError::Negative),
            ("-500m", WeightError::Negative),
            ("429496.7291", WeightError::TooLarge),
            ("500k", WeightError::TooLarge),
            ("1Ei", WeightError::TooLarge),
            ("1e999999999999", WeightError::TooLarge),
        ] {
            let err = DstWeight::parse(text).unwrap_err();
            assert_eq!(err.kind, kind, "{text}: {err}");
        }
    }

    #[test]
    fn a_weight_yaml_reads_as_a_float_is_refused_for_what_is_wrong_with_it() {
        let read = |text| serde_yaml_ng::from_str::<DstWeight>(text);
        assert_eq!(read("1e3").unwrap().get(), 10_000_000);
        assert_eq!(read("-0.0").unwrap().get(), 0);
        for (text, kind) in [
            ("1.5", WeightError::Fraction),
            ("1e20", WeightError::TooLarge),
            ("1e18", WeightError::TooLarge),
            (".inf", WeightError::TooLarge),
            ("-1e20", WeightError::Negative),
            ("-.inf", WeightError::Negative),
            (".nan", WeightError::Format),
        ] {
            let err = read(text).unwrap_err().to_string();
            let says = match kind {
                WeightError::Fraction => "is a fraction written as a number",
                WeightError::TooLarge => "is over 429496.729",
                WeightError::Negative => "is negative",
                WeightError::Format => "is not a Kubernetes quantity",
            };
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn authorities_name_a_service_by_the_first_two_labels_of_their_host() {
        let a = DstAuthority::parse("Emoji-V2.emojivoto.svc.cluster.local.:8080").unwrap();
        assert_eq!(a.host(), "emoji-v2.emojivoto.svc.cluster.local");
        assert_eq!(a.port(), Some(8080));
        assert_eq!(a.service(), ("emoji-v2", Some("emojivoto")));
        assert_eq!(a.to_string(), "emoji-v2.emojivoto.svc.cluster.local:8080");
        let short = DstAuthority::parse("emoji-v2").unwrap();
        assert_eq!(short.service(), ("emoji-v2", None));
        assert_eq!(short.port(), None);
        for bad in [
            "",
            ":8080",
            "emoji:",
            "emoji:0",
            "emoji:65536",
            "emoji:+80",
            "10.0.0.1:80",
            "[::1]:80",
            "emoji v2",
            "-emoji",
            "emoji..emojivoto",
            "emoji_v2",
            "http://emoji",
        ] {
            assert!(DstAuthority::parse(bad).is_err(), "{bad}");
        }
    }
}
