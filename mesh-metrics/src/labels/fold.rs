//! What an overflow series keeps of the label sets it folds.
//!
//! Past a family's series limit, label sets fold into an overflow series
//! (see [`Family`](crate::family)). If that series kept nothing, folded
//! traffic would drop out of every query that selects by direction, which
//! is every Linkerd query: `linkerd viz stat`, the dashboards, and our own
//! views. So it keeps the labels that come from sets of a few values: the
//! direction, the `tls` status (without the peer's identity, so that the
//! share of traffic on mutual TLS stays right), and where the family has
//! them, the classification, the peer's end and the close errno. TLS from
//! a peer without a certificate is `tls="true"` as mutual TLS is, told
//! apart by its empty identity (`client_id=""`): that empty label is kept
//! too, or the traffic would fold into mutual TLS's.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use super::{
    CloseLabels, Direction, LatencyLabels, Peer, ResponseLabels, TargetLabels, TcpLabels,
    TlsLabels, classification, label,
};
use crate::family::Fold;

/// What an overflow series keeps of the HTTP and transport label sets it
/// folds ([`Fold`]): the direction, which every Linkerd query selects by,
/// the `tls` label's value, and where the family has them, the
/// classification, the peer's end and the close errno. Each comes from a
/// set of a few values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Kept {
    direction: Direction,
    peer: Option<Peer>,
    tls: Option<&'static str>,
    /// TLS whose peer showed no identity: its identity label, written
    /// empty.
    anonymous: bool,
    success: Option<bool>,
    errno: Option<&'static str>,
}

impl Kept {
    fn of(direction: Direction, tls: &TlsLabels) -> Self {
        Self {
            direction,
            peer: None,
            tls: tls.status(),
            anonymous: matches!(tls, TlsLabels::Tls(None)),
            success: None,
            errno: None,
        }
    }
}

impl EncodeLabelSet for Kept {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "direction", self.direction.as_label())?;
        if let Some(peer) = self.peer {
            label(enc, "peer", peer.as_label())?;
        }
        if let Some(tls) = self.tls {
            label(enc, "tls", tls)?;
        }
        if self.anonymous {
            label(enc, self.direction.peer_id_label(), "")?;
        }
        if let Some(success) = self.success {
            label(enc, "classification", classification(success))?;
        }
        if let Some(errno) = self.errno {
            label(enc, "errno", errno)?;
        }
        Ok(())
    }
}

impl Fold for TargetLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept::of(self.direction, &self.tls)
    }
}

impl Fold for ResponseLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept {
            success: Some(self.key.success),
            ..self.target.kept()
        }
    }
}

impl Fold for LatencyLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        self.target.kept()
    }
}

impl Fold for TcpLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept {
            peer: Some(self.peer),
            ..Kept::of(self.direction, &self.tls)
        }
    }
}

impl Fold for CloseLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept {
            errno: Some(self.errno),
            ..self.conn.kept()
        }
    }
}
