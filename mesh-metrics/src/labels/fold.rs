//! What an overflow series keeps of the label sets it folds.
//!
//! Past a family's series limit, label sets fold into an overflow series
//! (see [`Family`](crate::family)). If that series kept nothing, folded
//! traffic would drop out of every query that selects by direction, which
//! is every Linkerd query: `linkerd viz stat`, the dashboards, and our own
//! views. So it keeps the labels that come from sets of a few values: the
//! direction, and where the family has them, the classification, the
//! peer's end and the close errno.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use super::{
    CloseLabels, Direction, LatencyLabels, Peer, ResponseLabels, TargetLabels, TcpLabels,
    classification, label,
};
use crate::family::Fold;

/// What an overflow series keeps of the HTTP and transport label sets it
/// folds ([`Fold`]): the direction, which every Linkerd query selects by,
/// and where the family has them, the classification, the peer's end and
/// the close errno. Each comes from a set of a few values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Kept {
    direction: Direction,
    peer: Option<Peer>,
    success: Option<bool>,
    errno: Option<&'static str>,
}

impl Kept {
    fn direction(direction: Direction) -> Self {
        Self {
            direction,
            peer: None,
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
        Kept::direction(self.direction)
    }
}

impl Fold for ResponseLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept {
            success: Some(self.key.success),
            ..Kept::direction(self.target.direction)
        }
    }
}

impl Fold for LatencyLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept::direction(self.target.direction)
    }
}

impl Fold for TcpLabels {
    type Kept = Kept;

    fn kept(&self) -> Kept {
        Kept {
            peer: Some(self.peer),
            ..Kept::direction(self.direction)
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
