//! The parts every Kubernetes-style resource shares: `apiVersion`, `kind`
//! and `metadata`.

use std::{collections::BTreeMap, fmt};

use serde::Deserialize;

/// A resource's `apiVersion`: a group and a version (`policy.linkerd.io/v1beta3`),
/// or a version alone for the core group (`v1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct ApiVersion(String);

impl ApiVersion {
    /// The `apiVersion` as written.
    pub fn new(api_version: impl Into<String>) -> Self {
        Self(api_version.into())
    }

    /// The group: the part before `/`, or `""` for the core group.
    pub fn group(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(group, _)| group)
    }

    /// The version: the part after `/`, or all of it for the core group.
    pub fn version(&self) -> &str {
        self.0
            .rsplit_once('/')
            .map_or(&*self.0, |(_, version)| version)
    }

    /// The `apiVersion` as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a document says about itself, read before the rest of it: enough
/// to pick the type to read it as, and to name it in errors and warnings.
///
/// Only `apiVersion` and `kind` are required here; a resource type that
/// needs a name requires it when the document is read as that type.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// The `kind`, such as `Server` or `HTTPRoute`.
    pub kind: String,
    /// `metadata.name` and `metadata.namespace`, when present.
    #[serde(default)]
    pub metadata: EnvelopeMeta,
}

/// The part of `metadata` an [`Envelope`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct EnvelopeMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.namespace`; `""` reads as unset, as kubectl reads it.
    #[serde(default, deserialize_with = "empty_is_unset")]
    pub namespace: Option<String>,
}

/// A resource's `metadata`, as configuration reads it.
///
/// The name must be a DNS-1123 subdomain (`books`, `books.shop`) and the
/// namespace a DNS-1123 label (`shop`), as Kubernetes requires of every
/// resource a mesh reads: the API server refuses any other, and a
/// reference or a workload's namespace could never equal it (`Books` is
/// not `books`), so reading refuses it too, naming the field.
///
/// Fields that the Kubernetes API server writes and that never carry
/// configuration (`uid`, `resourceVersion`, `managedFields`, ...) are
/// accepted without a warning, so that the output of `kubectl get -o yaml`
/// reads cleanly; see [`SERVER_SET_FIELDS`](super::SERVER_SET_FIELDS). Any
/// other field of `metadata` is reported as ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ObjectMeta {
    /// `metadata.name`. Required: a DNS-1123 subdomain.
    #[serde(deserialize_with = "subdomain")]
    pub name: String,
    /// `metadata.namespace`: a DNS-1123 label. When absent (or `""`, which
    /// kubectl reads as unset), the resource belongs to the namespace the
    /// reader applies it to, as with `kubectl apply -n`.
    #[serde(default, deserialize_with = "namespace")]
    pub namespace: Option<String>,
    /// `metadata.labels`. A key written twice is an error.
    #[serde(default, deserialize_with = "unique_keys")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, such as Linkerd's `retry.linkerd.io/http`.
    /// A key written twice is an error.
    #[serde(default, deserialize_with = "unique_keys")]
    pub annotations: BTreeMap<String, String>,
}

/// A map of strings in which each key is written once.
///
/// YAML forbids a repeated key, but a map read through serde keeps the
/// last value and says nothing: two `retry.linkerd.io/http` annotations
/// would configure whichever came second. kubectl refuses such a manifest
/// (strict field validation, its default), and so does the mesh, with a
/// [`DuplicateField`](super::ResourceErrorKind::DuplicateField) error
/// that names the key.
fn unique_keys<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Unique;

    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of strings")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate field `{key}`"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(Unique)
}

/// An optional string where `""` means the same as no value: kubectl
/// applies a resource whose `metadata.namespace` is `""` to the current
/// namespace, so reading it as a namespace named `""` would make the
/// resource select nothing.
fn empty_is_unset<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.is_empty()))
}

/// The longest name: a DNS-1123 subdomain's limit.
const MAX_NAME_LEN: usize = 253;

/// The longest namespace: a DNS-1123 label's limit.
const MAX_NAMESPACE_LEN: usize = 63;

/// `metadata.name`, which Kubernetes requires to be a DNS-1123 subdomain:
/// at most 253 characters, lowercase letters, digits, `-` and `.`, each
/// part between dots starting and ending with a letter or digit.
fn subdomain<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: serde::Deserializer<'de>,
{
    super::scalar::parse_str(deserializer, "a name", |name| {
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is longer than 253 characters")
        } else {
            name.split('.').find_map(label_problem)
        };
        match problem {
            None => Ok(name.to_owned()),
            Some(problem) => Err(format!(
                "invalid name {name:?}: {problem}; a name is lowercase letters, digits, '-' \
                 and '.', at most 253 characters (a DNS-1123 subdomain, as Kubernetes requires)"
            )),
        }
    })
}

/// `metadata.namespace`, which Kubernetes requires to be a DNS-1123
/// label: at most 63 characters, lowercase letters, digits and `-`,
/// starting and ending with a letter or digit. `""` reads as unset, as
/// kubectl reads it: the resource is applied to the current namespace,
/// and reading it as a namespace named `""` would make it select nothing.
fn namespace<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Namespace(Option<String>);

    impl<'de> Deserialize<'de> for Namespace {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::scalar::parse_str(deserializer, "a namespace", |namespace| {
                let problem = if namespace.is_empty() {
                    return Ok(Self(None));
                } else if namespace.len() > MAX_NAMESPACE_LEN {
                    Some("it is longer than 63 characters")
                } else {
                    label_problem(namespace)
                };
                match problem {
                    None => Ok(Self(Some(namespace.to_owned()))),
                    Some(problem) => Err(format!(
                        "invalid namespace {namespace:?}: {problem}; a namespace is lowercase \
                         letters, digits and '-', at most 63 characters (a DNS-1123 label, as \
                         Kubernetes requires)"
                    )),
                }
            })
        }
    }

    Ok(Option::<Namespace>::deserialize(deserializer)?.and_then(|n| n.0))
}

/// Whether `namespace` is one Kubernetes accepts: a DNS-1123 label, as
/// [`ObjectMeta`] requires. Errors and warnings name a resource's
/// namespace only then: any other value names no namespace, and the
/// error about it quotes it.
pub(super) fn is_namespace(namespace: &str) -> bool {
    namespace.len() <= MAX_NAMESPACE_LEN && label_problem(namespace).is_none()
}

/// What keeps `label` from being a DNS-1123 label, its length aside.
fn label_problem(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("a part between dots is empty")
    } else if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it holds a character that is not allowed")
    } else if label.starts_with('-') || label.ends_with('-') {
        Some("it starts or ends with '-'")
    } else {
        None
    }
}

impl ObjectMeta {
    /// Metadata naming `name`, with no namespace, labels or annotations.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The annotation `key`, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The namespace, or `default` when none is set.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }
}
