//! Kubernetes label selectors, as `podSelector` and `server.selector` use
//! them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A Kubernetes `LabelSelector`: `matchLabels` and `matchExpressions`, all
/// of which must hold. An empty selector selects everything, as in
/// Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values. A label
    /// written twice is an error ([`unique_labels`]).
    #[serde(default, deserialize_with = "unique_labels")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, ANDed.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `matchLabels`, each label written once.
///
/// A map read through serde keeps the last of two values of one key and
/// says nothing, so `{app: web, app: api}` would select the `api` pods:
/// a Server would take another workload's port and leave its own to the
/// default policy. kubectl refuses a repeated key (strict field
/// validation, its default), and `metadata.labels` are read so too.
fn unique_labels<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Unique;

    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of strings")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut labels = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if labels.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate field `{key}`"
                    )));
                }
                labels.insert(key, value);
            }
            Ok(labels)
        }
    }

    deserializer.deserialize_map(Unique)
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LabelSelectorRequirement {
    /// The label's key.
    pub key: String,
    /// How the label is compared.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`; empty for `Exists` and
    /// `DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum SelectorOperator {
    /// The label is present with one of the values.
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }

    /// Whether every pod that `pods` selects by its `matchLabels` surely
    /// satisfies this selector: each requirement must follow from the
    /// labels those `matchLabels` pin. A pod may carry any label they
    /// leave free, so a requirement that such a label be absent, or not
    /// have some value, is not met; matching the `matchLabels` as if they
    /// were a pod's labels would read a label they do not name as absent.
    pub(crate) fn holds_for_pods_of(&self, pods: &LabelSelector) -> bool {
        let pinned = &pods.match_labels;
        self.match_labels
            .iter()
            .all(|(k, v)| pinned.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = pinned.get(&e.key);
                match e.operator {
                    SelectorOperator::In => value.is_some_and(|v| e.values.contains(v)),
                    SelectorOperator::NotIn => value.is_some_and(|v| !e.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => false,
                }
            })
    }

    /// The field path (from the selector) of the first requirement that
    /// Kubernetes would reject, and why: `In` and `NotIn` need values,
    /// `Exists` and `DoesNotExist` take none.
    pub fn invalid(&self) -> Option<(String, &'static str)> {
        self.match_expressions
            .iter()
            .enumerate()
            .find_map(|(i, e)| {
                let needs_values =
                    matches!(e.operator, SelectorOperator::In | SelectorOperator::NotIn);
                match (needs_values, e.values.is_empty()) {
                    // The values are missing: point at the expression.
                    (true, true) => Some((
                        format!("matchExpressions[{i}]"),
                        "operators In and NotIn need at least one value",
                    )),
                    (false, false) => Some((
                        format!("matchExpressions[{i}].values"),
                        "operators Exists and DoesNotExist take no values",
                    )),
                    _ => None,
                }
            })
    }
}

impl LabelSelectorRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}
