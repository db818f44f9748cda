//! A gauge family of balancers' endpoints by state, counted when scraped.
//!
//! # Why
//!
//! An operator asks of a service: how many endpoints does it have, how
//! many are out for failing, and is any being probed back? Linkerd's proxy
//! answers with `outbound_http_balancer_endpoints{endpoint_state}`; this
//! is the same gauge, with the [states](EndpointState) our failure accrual
//! has.
//!
//! # How
//!
//! Counting as states change would put a gauge update on the request path
//! (every failure, every probe). Instead, [`EndpointGauges`] is a
//! prometheus-client [`Collector`]: it holds a [`BalancerView`] of each
//! balancer it reports, and reads their endpoints' states when the
//! registry is encoded. Requests pay nothing.
//!
//! A proxy that runs one balancer per runtime for the same target adds
//! each under the same labels. They are counted as one: each endpoint
//! address once, in the worst state any of them holds it in (`failing`
//! over `pending` over `probing` over `ready`). An endpoint one runtime has taken out for
//! failing is failing, even while another, which has not sent it enough
//! requests to notice, still draws it. So the states add up to the
//! target's endpoints, whatever the number of runtimes.
//!
//! Views whose balancers are gone are dropped at the next scrape; labels
//! left with none are no longer reported.
//!
//! ```
//! use mesh_core::proxy::{EndpointGauges, EndpointSet};
//! use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};
//!
//! #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
//! struct Service {
//!     service: String,
//! }
//!
//! let mut registry = Registry::default();
//! let gauges = EndpointGauges::new("balancer_endpoints", "Endpoints by state.");
//! registry.register_collector(Box::new(gauges.clone()));
//!
//! let emoji = EndpointSet::new(["10.0.0.1:8080".parse()?, "10.0.0.2:8080".parse()?])?;
//! gauges.add(Service { service: "emoji".into() }, emoji.view());
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry)?;
//! assert!(text.contains("balancer_endpoints{service=\"emoji\",endpoint_state=\"ready\"} 2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    collections::HashMap,
    fmt,
    hash::Hash,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder},
    metrics::{MetricType, gauge::ConstGauge},
};

use super::state::{BalancerView, EndpointState};

/// A gauge family of the endpoints of the balancers added to it, by
/// [state](EndpointState) and the labels `L` each was added under. See
/// the [module docs](self).
///
/// Register a clone with
/// [`Registry::register_collector`](prometheus_client::registry::Registry::register_collector)
/// and keep adding balancers to the original: clones share them.
pub struct EndpointGauges<L> {
    name: String,
    help: String,
    balancers: Arc<Mutex<Vec<(L, BalancerView)>>>,
}

/// How many endpoints are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounts([usize; 4]);

impl EndpointCounts {
    /// The endpoints in `state`.
    pub fn get(&self, state: EndpointState) -> usize {
        self.0.get(state as usize).copied().unwrap_or(0)
    }

    /// Every endpoint, whatever its state.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

impl<L> EndpointGauges<L>
where
    L: EncodeLabelSet + Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
{
    /// A family called `name` (under the prefix of the registry it is
    /// registered in), described by `help` as given (a registry's
    /// `register` would end it with a period; a collector's text is its
    /// own), reporting no balancer yet.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            balancers: Arc::default(),
        }
    }

    /// Reports `balancer` under `labels`, with any other already added
    /// under equal labels: see the [module docs](self).
    pub fn add(&self, labels: L, balancer: BalancerView) {
        self.lock().push((labels, balancer));
    }

    /// Each label set's endpoints by state now, in the order the labels
    /// were first added.
    pub fn counts(&self) -> Vec<(L, EndpointCounts)> {
        let mut targets: Vec<(L, HashMap<SocketAddr, EndpointState>)> = Vec::new();
        let mut index_of: HashMap<L, usize> = HashMap::new();
        let mut balancers = self.lock();
        balancers.retain(|(labels, view)| {
            let Some(endpoints) = view.endpoints() else {
                return false;
            };
            let index = *index_of.entry(labels.clone()).or_insert_with(|| {
                targets.push((labels.clone(), HashMap::new()));
                targets.len() - 1
            });
            if let Some((_, states)) = targets.get_mut(index) {
                for (addr, state) in endpoints {
                    let worst = states.entry(addr).or_insert(state);
                    *worst = (*worst).max(state);
                }
            }
            true
        });
        drop(balancers);
        targets
            .into_iter()
            .map(|(labels, states)| {
                let mut counts = EndpointCounts::default();
                for state in states.into_values() {
                    if let Some(count) = counts.0.get_mut(state as usize) {
                        *count += 1;
                    }
                }
                (labels, counts)
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(L, BalancerView)>> {
        self.balancers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<L> Clone for EndpointGauges<L> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            help: self.help.clone(),
            balancers: self.balancers.clone(),
        }
    }
}

impl<L> fmt::Debug for EndpointGauges<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let balancers = self.balancers.lock().map_or(0, |balancers| balancers.len());
        f.debug_struct("EndpointGauges")
            .field("name", &self.name)
            .field("balancers", &balancers)
            .finish()
    }
}

impl<L> Collector for EndpointGauges<L>
where
    L: EncodeLabelSet + Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let counts = self.counts();
        let mut family =
            encoder.encode_descriptor(&self.name, &self.help, None, MetricType::Gauge)?;
        for (labels, counts) in &counts {
            for state in EndpointState::ALL {
                let labels = StateLabels { labels, state };
                let gauge = ConstGauge::new(i64::try_from(counts.get(state)).unwrap_or(i64::MAX));
                gauge.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A balancer's labels, then `endpoint_state`.
struct StateLabels<'a, L> {
    labels: &'a L,
    state: EndpointState,
}

impl<L: EncodeLabelSet> EncodeLabelSet for StateLabels<'_, L> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.labels.encode(encoder)?;
        ("endpoint_state", self.state).encode(encoder.encode_label())
    }
}

#[cfg(test)]
mod tests;
