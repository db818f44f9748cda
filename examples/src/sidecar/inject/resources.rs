//! The sidecar's CPU, memory and ephemeral storage, as Linkerd's
//! `config.linkerd.io/proxy-*` annotations set them.
//!
//! A workload whose proxy needs more than the defaults says so with
//! Linkerd's annotations, and a manifest moved from Linkerd already
//! carries them: `config.linkerd.io/proxy-cpu-request`,
//! `proxy-cpu-limit`, `proxy-memory-request`, `proxy-memory-limit`,
//! `proxy-ephemeral-storage-request` and `proxy-ephemeral-storage-limit`
//! (the scratch space the kubelet evicts a pod for overrunning: a proxy
//! logging at `debug` on a node with little of it may need a bound).
//! As in Linkerd's injector, each is read from the pod template (for a
//! `Pod`, the pod), else from its Namespace (see [`Namespaces`]), where
//! they are the defaults of every pod in it; not from the workload's own
//! metadata, which Linkerd's injector never sees: it injects pods.
//! Without them the sidecar gets [`CPU_REQUEST`], [`MEMORY_REQUEST`] and
//! [`MEMORY_LIMIT`], no CPU limit and no ephemeral storage request or
//! limit, as Linkerd's proxy has none. A value that is not a quantity, or
//! is negative, is an error, where Linkerd warns and ignores it; so is a
//! request over its limit, which the API server would refuse. A limit
//! under the default request brings the request down to it.
//!
//! [`Namespaces`]: super::namespace::Namespaces

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::Mapping;

use super::{
    proxy::{CPU_REQUEST, MEMORY_LIMIT, MEMORY_REQUEST},
    yaml::{self, FieldPath, Problem},
};

pub(super) const CPU_REQUEST_ANNOTATION: &str = "config.linkerd.io/proxy-cpu-request";
pub(super) const CPU_LIMIT_ANNOTATION: &str = "config.linkerd.io/proxy-cpu-limit";
pub(super) const MEMORY_REQUEST_ANNOTATION: &str = "config.linkerd.io/proxy-memory-request";
pub(super) const MEMORY_LIMIT_ANNOTATION: &str = "config.linkerd.io/proxy-memory-limit";
pub(super) const EPHEMERAL_STORAGE_REQUEST_ANNOTATION: &str =
    "config.linkerd.io/proxy-ephemeral-storage-request";
pub(super) const EPHEMERAL_STORAGE_LIMIT_ANNOTATION: &str =
    "config.linkerd.io/proxy-ephemeral-storage-limit";

/// The sidecar container's `resources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ProxyResources {
    pub(super) cpu_request: String,
    pub(super) cpu_limit: Option<String>,
    pub(super) memory_request: String,
    pub(super) memory_limit: Option<String>,
    pub(super) ephemeral_storage_request: Option<String>,
    pub(super) ephemeral_storage_limit: Option<String>,
}

impl Default for ProxyResources {
    fn default() -> Self {
        Self {
            cpu_request: CPU_REQUEST.to_owned(),
            cpu_limit: None,
            memory_request: MEMORY_REQUEST.to_owned(),
            memory_limit: Some(MEMORY_LIMIT.to_owned()),
            ephemeral_storage_request: None,
            ephemeral_storage_limit: None,
        }
    }
}

/// The resource annotations of one object's metadata, each read and
/// checked where it is written, so that a mistake is reported in its own
/// document even when it is a Namespace's.
#[derive(Clone, Debug, Default)]
pub(super) struct ResourceAnnotations {
    cpu_request: Option<Quantity>,
    cpu_limit: Option<Quantity>,
    memory_request: Option<Quantity>,
    memory_limit: Option<Quantity>,
    ephemeral_storage_request: Option<Quantity>,
    ephemeral_storage_limit: Option<Quantity>,
}

/// One annotation's value: as written, as a number, and the Namespace it
/// came from when it is not the pod's own.
#[derive(Clone, Debug)]
struct Quantity {
    text: String,
    value: f64,
    namespace: Option<String>,
}

impl ResourceAnnotations {
    /// The annotations of `metadata` (at `path`).
    ///
    /// An annotation that is not a Kubernetes quantity is a problem at its
    /// path.
    pub(super) fn read(metadata: Option<&Mapping>, path: &FieldPath) -> Result<Self, Problem> {
        Ok(Self {
            cpu_request: quantity(metadata, path, CPU_REQUEST_ANNOTATION)?,
            cpu_limit: quantity(metadata, path, CPU_LIMIT_ANNOTATION)?,
            memory_request: quantity(metadata, path, MEMORY_REQUEST_ANNOTATION)?,
            memory_limit: quantity(metadata, path, MEMORY_LIMIT_ANNOTATION)?,
            ephemeral_storage_request: quantity(
                metadata,
                path,
                EPHEMERAL_STORAGE_REQUEST_ANNOTATION,
            )?,
            ephemeral_storage_limit: quantity(metadata, path, EPHEMERAL_STORAGE_LIMIT_ANNOTATION)?,
        })
    }

    /// These annotations, each one that is missing taken from those of
    /// the Namespace `name`.
    #[must_use]
    pub(super) fn or_namespace(self, name: &str, namespace: &Self) -> Self {
        let inherit = |own: Option<Quantity>, default: &Option<Quantity>| {
            own.or_else(|| {
                default.clone().map(|quantity| Quantity {
                    namespace: Some(name.to_owned()),
                    ..quantity
                })
            })
        };
        Self {
            cpu_request: inherit(self.cpu_request, &namespace.cpu_request),
            cpu_limit: inherit(self.cpu_limit, &namespace.cpu_limit),
            memory_request: inherit(self.memory_request, &namespace.memory_request),
            memory_limit: inherit(self.memory_limit, &namespace.memory_limit),
            ephemeral_storage_request: inherit(
                self.ephemeral_storage_request,
                &namespace.ephemeral_storage_request,
            ),
            ephemeral_storage_limit: inherit(
                self.ephemeral_storage_limit,
                &namespace.ephemeral_storage_limit,
            ),
        }
    }

    /// The resources these annotations ask for, on the pod template whose
    /// `metadata` is at `path`.
    ///
    /// A request over its limit is a problem: the API server would refuse
    /// the pod. It is reported at the request's annotation, or at the
    /// limit's when only that one is the pod template's own, or at the pod
    /// template's annotations when both are the Namespace's, since that is
    /// where they can be set for this workload alone. A limit under the
    /// default request, with no request to go with it, lowers the request
    /// to the limit, as the API server sets a request that is not given.
    pub(super) fn resources(self, path: &FieldPath) -> Result<ProxyResources, Problem> {
        let annotations = path.key("annotations");
        let cpu = Resource {
            name: "cpu",
            request_key: CPU_REQUEST_ANNOTATION,
            limit_key: CPU_LIMIT_ANNOTATION,
            default_request: Some(CPU_REQUEST),
            default_limit: None,
        };
        let memory = Resource {
            name: "memory",
            request_key: MEMORY_REQUEST_ANNOTATION,
            limit_key: MEMORY_LIMIT_ANNOTATION,
            default_request: Some(MEMORY_REQUEST),
            default_limit: Some(MEMORY_LIMIT),
        };
        let ephemeral_storage = Resource {
            name: "ephemeral-storage",
            request_key: EPHEMERAL_STORAGE_REQUEST_ANNOTATION,
            limit_key: EPHEMERAL_STORAGE_LIMIT_ANNOTATION,
            default_request: None,
            default_limit: None,
        };
        let (cpu_request, cpu_limit) = cpu.bound(self.cpu_request, self.cpu_limit, &annotations)?;
        let (memory_request, memory_limit) =
            memory.bound(self.memory_request, self.memory_limit, &annotations)?;
        let (ephemeral_storage_request, ephemeral_storage_limit) = ephemeral_storage.bound(
            self.ephemeral_storage_request,
            self.ephemeral_storage_limit,
            &annotations,
        )?;
        Ok(ProxyResources {
            cpu_request: cpu_request.unwrap_or_else(|| CPU_REQUEST.to_owned()),
            cpu_limit,
            memory_request: memory_request.unwrap_or_else(|| MEMORY_REQUEST.to_owned()),
            memory_limit,
            ephemeral_storage_request,
            ephemeral_storage_limit,
        })
    }
}

/// One resource, CPU, memory or ephemeral storage: its annotations and
/// its defaults.
struct Resource {
    /// `cpu`, `memory` or `ephemeral-storage`, for messages.
    name: &'static str,
    request_key: &'static str,
    limit_key: &'static str,
    default_request: Option<&'static str>,
    default_limit: Option<&'static str>,
}

impl Resource {
    /// The request and limit `request` and `limit` ask for, defaults
    /// filled in, on the pod template whose annotations are at
    /// `annotations`.
    fn bound(
        &self,
        request: Option<Quantity>,
        limit: Option<Quantity>,
        annotations: &FieldPath,
    ) -> Result<(Option<String>, Option<String>), Problem> {
        let (request_key, limit_key) = (self.request_key, self.limit_key);
        let default_limit = self.default_limit.and_then(|text| {
            Some(Quantity {
                text: text.to_owned(),
                value: parse_quantity(text)?,
                namespace: None,
            })
        });
        let request = match (request, &limit) {
            (Some(request), Some(limit)) if request.value > limit.value => {
                let at = match (&request.namespace, &limit.namespace) {
                    (None, _) => annotations.key(request_key),
                    (Some(_), None) => annotations.key(limit_key),
                    (Some(_), Some(_)) => annotations.clone(),
                };
                return Err(Problem::new(
                    ResourceErrorKind::InvalidValue,
                    at,
                    format!(
                        "{request_key} {}{} is over {limit_key} {}{}: the API server refuses a request over its limit",
                        request.text,
                        from(&request),
                        limit.text,
                        from(limit),
                    ),
                ));
            }
            (Some(request), None) => match default_limit {
                Some(default) if request.value > default.value => {
                    let at = match &request.namespace {
                        None => annotations.key(request_key),
                        Some(_) => annotations.clone(),
                    };
                    return Err(Problem::new(
                        ResourceErrorKind::InvalidValue,
                        at,
                        format!(
                            "{request_key} {}{} is over the sidecar's {} limit {}; set {limit_key} too",
                            request.text,
                            from(&request),
                            self.name,
                            default.text,
                        ),
                    ));
                }
                _ => Some(request.text),
            },
            (Some(request), Some(_)) => Some(request.text),
            (None, Some(limit))
                if self
                    .default_request
                    .and_then(parse_quantity)
                    .is_some_and(|d| d > limit.value) =>
            {
                Some(limit.text.clone())
            }
            (None, _) => self.default_request.map(str::to_owned),
        };
        let limit = limit.or(default_limit).map(|limit| limit.text);
        Ok((request, limit))
    }
}

/// ` (from namespace NAME)` for a quantity a Namespace set, else nothing.
fn from(quantity: &Quantity) -> String {
    quantity
        .namespace
        .as_ref()
        .map_or_else(String::new, |name| format!(" (from namespace {name})"))
}

/// The annotation `key` of `metadata` (at `path`). An annotation that is
/// not a Kubernetes quantity is an error.
fn quantity(
    metadata: Option<&Mapping>,
    path: &FieldPath,
    key: &str,
) -> Result<Option<Quantity>, Problem> {
    let Some(metadata) = metadata else {
        return Ok(None);
    };
    let annotations_path = path.key("annotations");
    let Some(annotations) = yaml::mapping(metadata, "annotations", path)? else {
        return Ok(None);
    };
    let Some(text) = yaml::string(annotations, key, &annotations_path)? else {
        return Ok(None);
    };
    match parse_quantity(text) {
        Some(value) if value < 0.0 => Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            annotations_path.key(key),
            format!("{key} cannot be negative, as the API server reads it, not {text:?}"),
        )),
        Some(value) => Ok(Some(Quantity {
            text: text.to_owned(),
            value,
            namespace: None,
        })),
        None => Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            annotations_path.key(key),
            format!("{key} is a Kubernetes quantity such as 100m or 64Mi, not {text:?}"),
        )),
    }
}

/// A Kubernetes quantity (`100m`, `1.5`, `64Mi`, `1e3`, `2G`), as a number,
/// to compare two; `None` when `text` is not one, or is too large to be
/// one (`1e999`).
fn parse_quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    if unsigned.is_empty()
        || unsigned == "."
        || unsigned.contains(['+', '-'])
        || unsigned.matches('.').count() > 1
    {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Ei" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let digits_only = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if digits_only.is_empty() || !digits_only.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * scale).filter(|value| value.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_with_their_suffixes() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("2G"), Some(2e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity(".5"), Some(0.5));
        for bad in ["", "m", "1..2", "1Mb", "1e", "ten", "1-2", ".", "1e999"] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }
}
