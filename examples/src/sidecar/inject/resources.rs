//! The sidecar's CPU and memory, as Linkerd's `config.linkerd.io/proxy-*`
//! annotations set them.
//!
//! A workload whose proxy needs more than the defaults says so with
//! Linkerd's annotations, and a manifest moved from Linkerd already
//! carries them: `config.linkerd.io/proxy-cpu-request`,
//! `proxy-cpu-limit`, `proxy-memory-request` and `proxy-memory-limit`.
//! As in Linkerd, they are read from the pod template (for a `Pod`, the
//! pod), not from the workload's own metadata; unlike Linkerd's injector,
//! not from the Namespace either. Without them the sidecar gets
//! [`CPU_REQUEST`], [`MEMORY_REQUEST`] and [`MEMORY_LIMIT`], and no CPU
//! limit. A value that is not a quantity is an error, where Linkerd warns
//! and ignores it.

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::Mapping;

use super::{
    proxy::{CPU_REQUEST, MEMORY_LIMIT, MEMORY_REQUEST},
    yaml::{self, FieldPath, Problem},
};

const CPU_REQUEST_ANNOTATION: &str = "config.linkerd.io/proxy-cpu-request";
const CPU_LIMIT_ANNOTATION: &str = "config.linkerd.io/proxy-cpu-limit";
const MEMORY_REQUEST_ANNOTATION: &str = "config.linkerd.io/proxy-memory-request";
const MEMORY_LIMIT_ANNOTATION: &str = "config.linkerd.io/proxy-memory-limit";

/// The sidecar container's `resources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ProxyResources {
    pub(super) cpu_request: String,
    pub(super) cpu_limit: Option<String>,
    pub(super) memory_request: String,
    pub(super) memory_limit: Option<String>,
}

impl Default for ProxyResources {
    fn default() -> Self {
        Self {
            cpu_request: CPU_REQUEST.to_owned(),
            cpu_limit: None,
            memory_request: MEMORY_REQUEST.to_owned(),
            memory_limit: Some(MEMORY_LIMIT.to_owned()),
        }
    }
}

/// The resources the annotations of the pod template's `metadata` (at
/// `path`) ask for.
pub(super) fn read(
    metadata: Option<&Mapping>,
    path: &FieldPath,
) -> Result<ProxyResources, Problem> {
    let mut resources = ProxyResources::default();
    if let Some(cpu) = quantity(metadata, path, CPU_REQUEST_ANNOTATION)? {
        resources.cpu_request = cpu.0;
    }
    if let Some(cpu) = quantity(metadata, path, CPU_LIMIT_ANNOTATION)? {
        resources.cpu_limit = Some(cpu.0);
    }
    let memory_limit = quantity(metadata, path, MEMORY_LIMIT_ANNOTATION)?;
    if let Some(memory) = quantity(metadata, path, MEMORY_REQUEST_ANNOTATION)? {
        // A request over the limit is refused by the API server: say so
        // here, where the annotation that would fix it can be named.
        let default_limit = parse_quantity(MEMORY_LIMIT);
        if memory_limit.is_none() && default_limit.is_some_and(|limit| memory.1 > limit) {
            return Err(Problem::new(
                ResourceErrorKind::InvalidValue,
                memory.2,
                format!(
                    "{MEMORY_REQUEST_ANNOTATION} {} is over the sidecar's memory limit {MEMORY_LIMIT}; set {MEMORY_LIMIT_ANNOTATION} too",
                    memory.0
                ),
            ));
        }
        resources.memory_request = memory.0;
    }
    if let Some(memory) = memory_limit {
        resources.memory_limit = Some(memory.0);
    }
    Ok(resources)
}

/// The annotation `key` of `metadata` (at `path`): its text, its value
/// and its path. An annotation that is not a Kubernetes quantity is an
/// error.
fn quantity(
    metadata: Option<&Mapping>,
    path: &FieldPath,
    key: &str,
) -> Result<Option<(String, f64, FieldPath)>, Problem> {
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
    let at = annotations_path.key(key);
    match parse_quantity(text) {
        Some(value) => Ok(Some((text.to_owned(), value, at))),
        None => Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            at,
            format!("{key} is a Kubernetes quantity such as 100m or 64Mi, not {text:?}"),
        )),
    }
}

/// A Kubernetes quantity (`100m`, `1.5`, `64Mi`, `1e3`, `2G`), as a number,
/// to compare two; `None` when `text` is not one.
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
    Some(number * scale)
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
        for bad in ["", "m", "1..2", "1Mb", "1e", "ten", "1-2", "."] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }
}
