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
//! every peer accepts. So every path is followed, and the windows of those
//! that verify (checked once, at load) are merged: the chain can be
//! presented at any time one of them covers. A certificate that only
//! shares the issuer's name (another key, say) opens no path.

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;

use crate::cert::Link;

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
    /// `anchor_subjects`: of each path by name, the window in which its
    /// certificates are all valid, kept when `verifies` accepts the path's
    /// intermediates at the window's start (signatures, key usage, trust
    /// domain: everything but the time, which the window covers). When no
    /// path verifies, every window is kept, so that the chain reads by its
    /// dates; the chain check at load refuses it anyway. `None` when the
    /// leaf does not parse.
    pub(crate) fn of(
        chain: &[CertificateDer<'_>],
        anchor_subjects: &[Vec<u8>],
        verifies: impl Fn(&[CertificateDer<'_>], SystemTime) -> bool,
    ) -> Option<Self> {
        let (leaf, rest) = chain.split_first()?;
        let leaf = Link::parse(leaf)?;
        let rest: Vec<(&CertificateDer<'_>, Link)> = rest
            .iter()
            .filter_map(|cert| Some((cert, Link::parse(cert)?)))
            .collect();
        let mut paths = Vec::new();
        let mut path = Vec::new();
        walk(
            &leaf.issuer,
            (leaf.not_before, leaf.not_after),
            &rest,
            &mut path,
            anchor_subjects,
            &mut paths,
        );
        let verified: Vec<_> = paths
            .iter()
            .filter(|(window, path)| {
                let intermediates: Vec<CertificateDer<'_>> = path
                    .iter()
                    .map(|&at| CertificateDer::from(rest[at].0.as_ref()))
                    .collect();
                window.0 < window.1 && verifies(&intermediates, window.0)
            })
            .map(|(window, _)| *window)
            .collect();
        Some(Self::merged(match verified.is_empty() {
            true => paths.into_iter().map(|(window, _)| window).collect(),
            false => verified,
        }))
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

/// A path's window, and the indices in `rest` of its intermediates.
type Path = ((SystemTime, SystemTime), Vec<usize>);

/// Follows every path from a certificate issued by `issuer`, valid in
/// `window`, through the certificates of `rest` not on `path` yet, to a
/// trust anchor, pushing each path. A path that leads to no anchor and no
/// further certificate ends where it stops, as webpki's would fail there.
///
/// A path reaching a trust anchor's name also goes on through the
/// certificates of the chain with that name: the anchor may not be what
/// signed the certificate below it. A root reissued with a new key under
/// its old name, and cross-signed by the old root for peers that trust
/// only that one, is such a certificate: webpki tries the anchor, finds
/// that its key did not sign, and builds the path through the
/// cross-signature, which must then be valid too. Which of the two
/// verifies is for the check at load to say.
fn walk(
    issuer: &[u8],
    window: (SystemTime, SystemTime),
    rest: &[(&CertificateDer<'_>, Link)],
    path: &mut Vec<usize>,
    anchor_subjects: &[Vec<u8>],
    paths: &mut Vec<Path>,
) {
    if paths.len() >= MAX_PATHS {
        return;
    }
    let at_anchor = anchor_subjects.iter().any(|s| s == issuer);
    if at_anchor {
        paths.push((window, path.clone()));
    }
    let mut extended = at_anchor;
    for (at, (_, link)) in rest.iter().enumerate() {
        if path.contains(&at) || link.subject != issuer {
            continue;
        }
        extended = true;
        path.push(at);
        let narrowed = (window.0.max(link.not_before), window.1.min(link.not_after));
        walk(&link.issuer, narrowed, rest, path, anchor_subjects, paths);
        path.pop();
    }
    if !extended {
        paths.push((window, path.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
