//! When a local chain verifies: the spans of time in which some path from
//! its leaf to a trust anchor has every certificate valid.
//!
//! A chain file can send two certificates of one issuer: the issuer was
//! reissued (same name, same key, new dates) and the old certificate left
//! beside the new one. webpki builds the path by name and passes over a
//! certificate that is not valid at the time of the check, so such a chain
//! verifies through the old certificate while it is valid and through the
//! new one after. One window read from one path, at the time the
//! credentials load, would say that the chain expires with the old
//! certificate, and the workload would refuse to present a certificate
//! every peer accepts. So every path is followed, and the windows are
//! merged: the chain can be presented at any time one of them covers.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509CertificateParser;
use x509_parser::nom::Parser;

/// At most this many paths are followed: a chain holds a few certificates,
/// and a file that holds many copies of each is not worth a search.
const MAX_PATHS: usize = 64;

/// The merged spans of time in which the chain verifies, earliest first;
/// never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainValidity {
    spans: Vec<(SystemTime, SystemTime)>,
}

/// Where `now` falls against a [`ChainValidity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// Inside a span, which ends at this time.
    Valid { until: SystemTime },
    /// Before the first span, or between two: the next one starts then.
    NotYetValid { from: SystemTime },
    /// After the last span, which ended then.
    Expired { at: SystemTime },
}

impl ChainValidity {
    /// The spans of `chain` (leaf first) to the anchors named
    /// `anchor_subjects`. `None` when the leaf does not parse.
    pub(crate) fn of(chain: &[CertificateDer<'_>], anchor_subjects: &[Vec<u8>]) -> Option<Self> {
        let (leaf, rest) = chain.split_first()?;
        let leaf = Link::parse(leaf)?;
        let rest: Vec<Link> = rest.iter().filter_map(Link::parse).collect();
        let mut windows = Vec::new();
        let mut used = vec![false; rest.len()];
        walk(
            &leaf.issuer,
            (leaf.not_before, leaf.not_after),
            &rest,
            &mut used,
            anchor_subjects,
            &mut windows,
        );
        Some(Self::merged(windows))
    }

    /// `windows` merged, earliest first. Windows that are never valid
    /// (ending before they begin) are left out, unless all are: then the
    /// earliest stays, so that the chain reads as expired (or not valid
    /// yet) by its own dates.
    fn merged(mut windows: Vec<(SystemTime, SystemTime)>) -> Self {
        windows.sort();
        let never = windows.first().copied();
        let mut spans: Vec<(SystemTime, SystemTime)> = Vec::with_capacity(windows.len());
        for (from, until) in windows.into_iter().filter(|(from, until)| from < until) {
            match spans.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(until),
                _ => spans.push((from, until)),
            }
        }
        if spans.is_empty() {
            spans.extend(never);
        }
        if spans.is_empty() {
            // Not reached: `of` always yields the leaf's window. A chain
            // without one reads as expired since the epoch.
            spans.push((SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH));
        }
        Self { spans }
    }

    /// Where `now` falls.
    pub(crate) fn at(&self, now: SystemTime) -> At {
        for &(from, until) in &self.spans {
            if now < from {
                return At::NotYetValid { from };
            }
            if now < until {
                return At::Valid { until };
            }
        }
        let end = self.spans.last().map_or(SystemTime::UNIX_EPOCH, |s| s.1);
        At::Expired { at: end }
    }

    /// When the chain stops verifying for good: the end of the last span.
    pub(crate) fn last_not_after(&self) -> SystemTime {
        self.spans.last().map_or(SystemTime::UNIX_EPOCH, |s| s.1)
    }
}

/// Follows every path from a certificate issued by `issuer`, valid in
/// `window`, through the unused certificates of `rest`, to a trust anchor,
/// pushing each path's window. A path that leads to no anchor and no
/// further certificate ends where it stops, as webpki's would fail there;
/// the chain check at load refuses a chain none of whose paths verify.
fn walk(
    issuer: &[u8],
    window: (SystemTime, SystemTime),
    rest: &[Link],
    used: &mut [bool],
    anchor_subjects: &[Vec<u8>],
    windows: &mut Vec<(SystemTime, SystemTime)>,
) {
    if windows.len() >= MAX_PATHS {
        return;
    }
    if anchor_subjects.iter().any(|s| s == issuer) {
        windows.push(window);
        return;
    }
    let mut extended = false;
    for at in 0..rest.len() {
        let link = &rest[at];
        if used[at] || link.subject != issuer {
            continue;
        }
        extended = true;
        used[at] = true;
        let narrowed = (window.0.max(link.not_before), window.1.min(link.not_after));
        walk(&link.issuer, narrowed, rest, used, anchor_subjects, windows);
        used[at] = false;
    }
    if !extended {
        windows.push(window);
    }
}

/// The names and dates of one certificate.
struct Link {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Link {
    fn parse(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, x509) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(cert.as_ref())
            .ok()?;
        let validity = x509.validity();
        Some(Self {
            subject: x509.subject().as_raw().to_vec(),
            issuer: x509.issuer().as_raw().to_vec(),
            not_before: unix(validity.not_before.timestamp()),
            not_after: unix(validity.not_after.timestamp()),
        })
    }
}

fn unix(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn overlapping_windows_merge_and_a_gap_stays() {
        let v = ChainValidity::merged(vec![(t(10), t(20)), (t(0), t(12)), (t(30), t(40))]);
        assert_eq!(v.spans, vec![(t(0), t(20)), (t(30), t(40))]);
        assert_eq!(v.at(t(15)), At::Valid { until: t(20) });
        assert_eq!(v.at(t(20)), At::NotYetValid { from: t(30) });
        assert_eq!(v.at(t(40)), At::Expired { at: t(40) });
        assert_eq!(v.last_not_after(), t(40));
    }

    #[test]
    fn a_chain_never_valid_reads_by_its_own_dates() {
        let v = ChainValidity::merged(vec![(t(20), t(10))]);
        assert_eq!(v.at(t(5)), At::NotYetValid { from: t(20) });
        assert_eq!(v.at(t(25)), At::Expired { at: t(10) });
    }
}
