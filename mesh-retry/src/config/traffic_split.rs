//! An SMI `TrafficSplit`: a whole service's traffic split, in the form
//! linkerd-smi reads.
//!
//! Linkerd serves a `TrafficSplit` through linkerd-smi's adaptor, which
//! writes its backends into the `dstOverrides` of the apex service's
//! ServiceProfile, creating the profile when there is none
//! (`pkg/adaptor/controller.go` in linkerd/linkerd-smi). The reader does
//! the same in one step: a `TrafficSplit` gives its apex service the
//! split a profile's `dstOverrides` give ([`ServiceRetryPolicy::dst_overrides`]),
//! so that the service is then served by its profile, or by the profile's
//! default route when it has no ServiceProfile
//! ([`ServiceRetryPolicy::served_by_profile`]).
//!
//! - `spec.service` is the apex: a Service in the split's namespace, named
//!   as routes name services. `spec.backends[].service` are Services in
//!   the same namespace; the adaptor writes each as
//!   `{service}.{namespace}.svc.cluster.local`.
//! - The weights are read as the adaptor carries them over. It reads the
//!   stored `v1alpha1` object, whose weight is a Kubernetes quantity
//!   (`1`, `500m`), and copies it into the override: so a `v1alpha1`
//!   weight is read as a `dstOverrides` weight is ([`DstWeight`]). The
//!   CRD also serves `v1alpha2`, without conversion, whose weight the
//!   CRD types as a number (`3`, `1.5`): stored as `v1alpha1`, the
//!   adaptor reads it as the quantity of the same digits (`1.5` is
//!   `1500m`). A `v1alpha2` weight written as a string (`'3'`, `500m`),
//!   which the API server refuses, is refused.
//! - A backend of weight 0 gets nothing; with none above 0 the service is
//!   not split, as with `dstOverrides`.
//! - linkerd-smi overwrites the profile's own `dstOverrides` with the
//!   split's, unless the profile carries the `smi.linkerd.io/skip`
//!   annotation, which it leaves alone: so here, with a warning either
//!   way.
//! - Two `TrafficSplit`s for one apex in one text are refused. The adaptor
//!   writes each into the one profile as it syncs it, so the one in force
//!   is whichever it synced last (and deleting either clears the
//!   overrides of both), which no file says; a creation time would not
//!   decide it either. Two in two texts joined by
//!   [`RetryResources::merge`](super::RetryResources::merge) are warned
//!   of, and the one read last is served, as for two ServiceProfiles.
//!
//! A malformed service name or weight is an error naming the document,
//! the field (`spec.backends[1].weight`) and its line.

use std::{fmt, num::NonZeroU32, sync::Arc};

use mesh_core::resource::{
    ApiVersion, Document, DocumentContext, ObjectMeta, Resource, ResourceError, ResourceErrorKind,
    ResourceName,
};
use serde::{
    Deserialize, Deserializer,
    de::{self, IntoDeserializer, Visitor},
};

use super::{DstAuthority, DstBackend, DstWeight};

/// The annotation on a ServiceProfile that linkerd-smi's adaptor leaves
/// alone: a `TrafficSplit` does not replace its `dstOverrides`.
pub(super) const SKIP_ANNOTATION: &str = "smi.linkerd.io/skip";

/// SMI's later `TrafficSplit` versions, which add `matches`: linkerd-smi's
/// CRD (`charts/linkerd-smi/templates/trafficsplit-crd.yaml`) serves
/// neither, so a cluster running Linkerd refuses them, and its adaptor
/// reads no `matches`.
const LATER_VERSIONS: [&str; 2] = ["split.smi-spec.io/v1alpha3", "split.smi-spec.io/v1alpha4"];

/// Refuses a `TrafficSplit` of a later SMI version than linkerd-smi
/// serves, saying so and what to write instead: a user coming from
/// another SMI mesh has such splits, and the bare list of the versions
/// read would not say why theirs is not one. Other versions are left to
/// [`Document::read`], which refuses them.
///
/// # Errors
///
/// `UnsupportedVersion` at `apiVersion`, for `v1alpha3` and `v1alpha4`.
pub(super) fn served_version(document: &Document<'_>) -> Result<(), ResourceError> {
    let version = document.api_version().as_str();
    if !LATER_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(document.context().error(
        ResourceErrorKind::UnsupportedVersion,
        "apiVersion",
        format!(
            "TrafficSplit is not read at apiVersion {version}: linkerd-smi's TrafficSplit CRD \
             serves split.smi-spec.io/v1alpha1 and split.smi-spec.io/v1alpha2 only, so a \
             cluster running Linkerd refuses this version; write split.smi-spec.io/v1alpha2, \
             whose spec.service and spec.backends are written the same way, without \
             spec.matches, which linkerd-smi does not read"
        ),
    ))
}

/// An SMI `TrafficSplit` (`split.smi-spec.io/v1alpha1` or `v1alpha2`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplit {
    /// The `apiVersion`, which says how the weights are written.
    pub api_version: ApiVersion,
    /// Always `TrafficSplit`.
    pub kind: String,
    /// The split's name and namespace: the namespace of its services.
    pub metadata: ObjectMeta,
    /// The split.
    pub spec: TrafficSplitSpec,
}

impl Resource for TrafficSplit {
    const KIND: &'static str = "TrafficSplit";
    const API_VERSIONS: &'static [&'static str] =
        &["split.smi-spec.io/v1alpha1", "split.smi-spec.io/v1alpha2"];
}

/// `spec` of a [`TrafficSplit`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TrafficSplitSpec {
    /// `service`: the apex service, whose requests are split.
    pub service: String,
    /// `backends`: the services they are split between.
    pub backends: Vec<TrafficSplitBackend>,
}

/// A `backends` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TrafficSplitBackend {
    /// `service`: a Service in the split's namespace.
    pub service: String,
    /// `weight`, as written: read by the split's `apiVersion`.
    pub weight: SplitWeight,
}

/// A backend's `weight` as written, before the split's `apiVersion`
/// says how to read it: a quantity for `v1alpha1`, a whole number for
/// `v1alpha2`.
#[derive(Clone, Debug, PartialEq)]
pub enum SplitWeight {
    /// A whole number.
    Integer(i128),
    /// A number with a fraction or an exponent.
    Number(f64),
    /// A string, such as `500m`.
    Text(String),
}

impl fmt::Display for SplitWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(n) => write!(f, "{n}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(text) => write!(f, "{text:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for SplitWeight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SplitWeightVisitor)
    }
}

struct SplitWeightVisitor;

impl Visitor<'_> for SplitWeightVisitor {
    type Value = SplitWeight;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a weight, such as 1 or 500m")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<SplitWeight, E> {
        Ok(SplitWeight::Integer(value.into()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<SplitWeight, E> {
        Ok(SplitWeight::Integer(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<SplitWeight, E> {
        Ok(SplitWeight::Number(value))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<SplitWeight, E> {
        Ok(SplitWeight::Text(text.to_owned()))
    }
}

impl SplitWeight {
    /// The weight in ten-thousandths, as the adaptor carries it into a
    /// `dstOverrides` entry: the quantity of the stored `v1alpha1`
    /// object. `Err` says what is wrong.
    ///
    /// A `v1alpha1` weight is a whole number or a string, as the CRD's
    /// `x-kubernetes-int-or-string` takes it, read as a quantity (`500m`).
    /// A `v1alpha2` weight is a number, as the CRD's `type: number` takes
    /// it, whole or not (`3`, `1.5`); the API server stores the object as
    /// `v1alpha1` without conversion, and the adaptor reads the number
    /// written there as the quantity of the same digits, `1.5` as `1500m`.
    fn read(&self, v1alpha2: bool) -> Result<DstWeight, String> {
        let quantity = |text: &str| {
            DstWeight::deserialize(text.into_deserializer())
                .map_err(|e: de::value::Error| e.to_string())
        };
        match self {
            Self::Integer(n) => quantity(&n.to_string()),
            Self::Text(text) if !v1alpha2 => quantity(text),
            // A fraction written as a YAML number: the v1alpha1 schema
            // refuses it, and the quantity's reader says so.
            Self::Number(n) if !v1alpha2 => DstWeight::deserialize((*n).into_deserializer())
                .map_err(|e: de::value::Error| e.to_string()),
            // As the JSON number the API server stores: its shortest
            // digits, which Kubernetes reads as a quantity.
            Self::Number(n) if n.is_finite() => quantity(&n.to_string()),
            Self::Number(_) => Err(format!(
                "weight {self} is not a number the API server stores, such as 3 or 1.5"
            )),
            // The CRD's v1alpha2 schema takes a number, and the API
            // server refuses a string: `'3'` is not read as 3.
            Self::Text(text) if text.parse::<f64>().is_ok_and(f64::is_finite) => Err(format!(
                "weight {self} is a string, not a number, which split.smi-spec.io/v1alpha2 \
                 takes: write it unquoted (weight: {text}), or use v1alpha1, which takes a \
                 quantity such as 500m"
            )),
            Self::Text(_) => Err(format!(
                "weight {self} is a string, not a number, which split.smi-spec.io/v1alpha2 \
                 takes (such as 3 or 1.5); v1alpha1 takes a quantity, such as 500m"
            )),
        }
    }
}

impl TrafficSplit {
    /// The apex service, and its namespace when the split names one.
    pub fn apex(&self) -> (&str, Option<&str>) {
        (&self.spec.service, self.metadata.namespace.as_deref())
    }

    /// The split's backends with a weight above 0, each as the
    /// `dstOverrides` entry linkerd-smi writes for it; empty when none
    /// weighs more than 0, and the service is not split. `context` is the
    /// split's document.
    ///
    /// # Errors
    ///
    /// A service that is not a Service's name (a DNS-1035 label), or a
    /// weight its `apiVersion` does not take, naming the field and its
    /// line.
    pub(super) fn dst_backends(
        &self,
        context: &DocumentContext<'_>,
    ) -> Result<Arc<[DstBackend]>, ResourceError> {
        let invalid = |field: &str, message: String| {
            context.error(ResourceErrorKind::InvalidValue, field, message)
        };
        service_name(&self.spec.service).map_err(|why| invalid("spec.service", why))?;
        let v1alpha2 = self.api_version.as_str().ends_with("/v1alpha2");
        let namespace = self.metadata.namespace.as_deref();
        // Named as a warning about the same document names it.
        let split = ResourceName::new(
            Some(context.kind()),
            context.namespace(),
            Some(&self.metadata.name),
        );
        let mut backends = Vec::with_capacity(self.spec.backends.len());
        for (i, backend) in self.spec.backends.iter().enumerate() {
            let field = format!("spec.backends[{i}]");
            service_name(&backend.service)
                .map_err(|why| invalid(&format!("{field}.service"), why))?;
            let weight = backend
                .weight
                .read(v1alpha2)
                .map_err(|why| invalid(&format!("{field}.weight"), why))?;
            let Some(weight) = NonZeroU32::new(weight.get()) else {
                continue;
            };
            // As the adaptor writes it, in the split's namespace.
            let host = match namespace {
                Some(namespace) => format!("{}.{namespace}.svc.cluster.local", backend.service),
                None => backend.service.clone(),
            };
            let authority = DstAuthority::parse(&host)
                .map_err(|e| invalid(&format!("{field}.service"), e.to_string()))?;
            backends.push(DstBackend {
                name: backend.service.clone(),
                namespace: namespace.map(str::to_owned),
                authority,
                weight,
                source: format!(
                    "{}: document {} ({split}): {field}",
                    context.origin(),
                    context.index(),
                ),
            });
        }
        Ok(backends.into())
    }
}

/// Checks that `name` is a Service's name: a DNS-1035 label, 1 to 63
/// lowercase letters, digits and `-`, starting with a letter and ending
/// with a letter or digit.
fn service_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let fits = (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Service's name: 1 to 63 lowercase letters, digits and `-`, \
             starting with a letter and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn weights_are_read_by_the_splits_version() {
        let v1 = |w: SplitWeight| w.read(false).map(DstWeight::get);
        let v2 = |w: SplitWeight| w.read(true).map(DstWeight::get);
        assert_eq!(v1(SplitWeight::Text("500m".into())), Ok(5_000));
        assert_eq!(v1(SplitWeight::Integer(3)), Ok(30_000));
        assert_eq!(v1(SplitWeight::Text("1.5".into())), Ok(15_000));
        assert_eq!(v2(SplitWeight::Integer(3)), Ok(30_000));
        assert_eq!(v2(SplitWeight::Integer(0)), Ok(0));
        // A fractional number, as the adaptor reads the stored object.
        assert_eq!(v2(SplitWeight::Number(1.5)), Ok(15_000));
        assert_eq!(v2(SplitWeight::Number(0.0001)), Ok(10));
        assert_eq!(v2(SplitWeight::Number(2.0)), Ok(20_000));
        for (weight, says) in [
            (SplitWeight::Integer(-1), "negative"),
            (SplitWeight::Integer(500_000), "429496.729"),
            (SplitWeight::Number(1.5), "write \"1.5\""),
            (SplitWeight::Text("ten".into()), "not a Kubernetes quantity"),
        ] {
            let error = v1(weight.clone()).unwrap_err();
            assert!(error.contains(says), "{weight}: {error}");
        }
        for (weight, says) in [
            (SplitWeight::Text("500m".into()), "not a number"),
            (
                SplitWeight::Text("1.5".into()),
                "write it unquoted (weight: 1.5)",
            ),
            (SplitWeight::Number(-1.5), "negative"),
            (SplitWeight::Number(1e300), "429496.729"),
            (SplitWeight::Number(f64::NAN), "not a number"),
        ] {
            let error = v2(weight.clone()).unwrap_err();
            assert!(error.contains(says), "{weight}: {error}");
        }
        assert!(
            v2(SplitWeight::Integer(-2))
                .unwrap_err()
                .contains("negative")
        );
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        for good in ["emoji", "emoji-v2", "a", &"a".repeat(63)] {
            assert!(service_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Emoji",
            "2emoji",
            "emoji-",
            "emoji.emojivoto",
            &"a".repeat(64),
        ] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
    }
}
