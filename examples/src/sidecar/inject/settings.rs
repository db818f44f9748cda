//! Linkerd's proxy settings that the sidecar's container carries: its log
//! filter, how long it waits before it stops, and whether it is a native
//! sidecar.
//!
//! A manifest moved from Linkerd may say how its proxy logs
//! (`config.linkerd.io/proxy-log-level`), how long the proxy outlives the
//! pod's stop so the application can finish its own requests through it
//! (`config.alpha.linkerd.io/proxy-wait-before-exit-seconds`), and that
//! it runs as a native sidecar
//! (`config.alpha.linkerd.io/proxy-enable-native-sidecar`). As in
//! Linkerd's injector, each is read from the pod template (for a `Pod`,
//! the pod), else from its Namespace (see
//! [`Namespaces`](super::namespace::Namespaces)), and not from the
//! workload's own metadata, which its pods do not carry.
//!
//! - The log level becomes the container's `RUST_LOG`, the filter the
//!   sidecar logs with, written the same way as Linkerd's (`warn`,
//!   `warn,mesh_core=debug`). One that is not a filter is an error, where
//!   the sidecar would log at its default and say why only in its log.
//! - The wait becomes a `preStop` hook that sleeps that many seconds
//!   (Kubernetes' `sleep` action, 1.30 and later, so the image needs no
//!   `sleep` binary) on a sidecar that is an ordinary container:
//!   Kubernetes sends every container its stop signal at once, and the
//!   sidecar, once signalled, closes its listeners. A native sidecar
//!   gets none, as Linkerd gives its proxy none: Kubernetes stops it only
//!   once the application's containers have exited. The API server
//!   refuses a sleep longer than the pod's `terminationGracePeriodSeconds`
//!   (30 unless set), and so does inject. `0` asks for no wait.
//! - The native sidecar is asked for with `"true"`; another value, on the
//!   pod template, keeps its Namespace's `"true"` from applying.

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::{Mapping, Value};
use tracing_subscriber::EnvFilter;

use super::yaml::{self, FieldPath, Problem};

/// Linkerd's annotation for its proxy's log filter.
const LOG_LEVEL_ANNOTATION: &str = "config.linkerd.io/proxy-log-level";
/// Linkerd's annotation for the seconds its proxy outlives the pod's stop.
const WAIT_BEFORE_EXIT_ANNOTATION: &str = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds";
/// Linkerd's annotation that asks, with `"true"`, for the proxy as a
/// native sidecar, started before the application's init containers so
/// they can reach the mesh.
const NATIVE_SIDECAR_ANNOTATION: &str = "config.alpha.linkerd.io/proxy-enable-native-sidecar";

/// The grace period Kubernetes gives a pod that does not set
/// `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// One annotation's value, and the Namespace it came from when it is not
/// the pod's own.
#[derive(Clone, Debug)]
struct Annotated<T> {
    value: T,
    namespace: Option<String>,
}

/// The pod's own `value`.
fn annotated<T>(value: T) -> Annotated<T> {
    Annotated {
        value,
        namespace: None,
    }
}

/// The setting annotations of one object's metadata, each read and
/// checked where it is written.
#[derive(Clone, Debug, Default)]
pub(super) struct SettingAnnotations {
    log_level: Option<Annotated<String>>,
    wait_before_exit: Option<Annotated<u64>>,
    native_sidecar: Option<Annotated<bool>>,
}

/// What the sidecar's container gets from them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ProxySettings {
    /// The container's `RUST_LOG`.
    pub(super) log_level: Option<String>,
    /// The seconds of the `preStop` sleep, above zero.
    pub(super) wait_before_exit: Option<WaitBeforeExit>,
    /// Whether a native sidecar was asked for.
    pub(super) native_sidecar: bool,
}

/// The wait before exit, and where an error about it is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WaitBeforeExit {
    pub(super) seconds: u64,
    /// The annotation, when it is the pod template's own; else the pod
    /// template's annotations, where this workload can set its own.
    at: FieldPath,
    /// ` (from namespace NAME)`, or nothing.
    from: String,
}

impl SettingAnnotations {
    /// The annotations of `metadata` (at `path`).
    ///
    /// A value that is not a string, a log level that is not a filter and
    /// a wait that is not a whole number of seconds are problems at their
    /// path.
    pub(super) fn read(metadata: Option<&Mapping>, path: &FieldPath) -> Result<Self, Problem> {
        let Some(metadata) = metadata else {
            return Ok(Self::default());
        };
        let Some(annotations) = yaml::mapping(metadata, "annotations", path)? else {
            return Ok(Self::default());
        };
        let path = path.key("annotations");
        let log_level = match yaml::string(annotations, LOG_LEVEL_ANNOTATION, &path)? {
            None | Some("") => None,
            Some(filter) => Some(annotated(log_filter(filter, &path)?)),
        };
        let wait_before_exit = yaml::string(annotations, WAIT_BEFORE_EXIT_ANNOTATION, &path)?
            .map(|seconds| seconds_of(seconds, &path).map(annotated))
            .transpose()?;
        let native_sidecar = yaml::string(annotations, NATIVE_SIDECAR_ANNOTATION, &path)?
            .map(|value| annotated(value == "true"));
        Ok(Self {
            log_level,
            wait_before_exit,
            native_sidecar,
        })
    }

    /// These annotations, each one that is missing taken from those of
    /// the Namespace `name`.
    #[must_use]
    pub(super) fn or_namespace(self, name: &str, namespace: &Self) -> Self {
        fn inherit<T: Clone>(
            own: Option<Annotated<T>>,
            default: &Option<Annotated<T>>,
            name: &str,
        ) -> Option<Annotated<T>> {
            own.or_else(|| {
                default.clone().map(|annotated| Annotated {
                    namespace: Some(name.to_owned()),
                    ..annotated
                })
            })
        }
        Self {
            log_level: inherit(self.log_level, &namespace.log_level, name),
            wait_before_exit: inherit(self.wait_before_exit, &namespace.wait_before_exit, name),
            native_sidecar: inherit(self.native_sidecar, &namespace.native_sidecar, name),
        }
    }

    /// The settings these annotations ask for, on the pod template whose
    /// `metadata` is at `path`.
    pub(super) fn settings(self, path: &FieldPath) -> ProxySettings {
        let annotations = path.key("annotations");
        let wait_before_exit = self
            .wait_before_exit
            .filter(|wait| wait.value > 0)
            .map(|wait| WaitBeforeExit {
                seconds: wait.value,
                at: match &wait.namespace {
                    None => annotations.key(WAIT_BEFORE_EXIT_ANNOTATION),
                    Some(_) => annotations.clone(),
                },
                from: wait
                    .namespace
                    .map_or_else(String::new, |name| format!(" (from namespace {name})")),
            });
        ProxySettings {
            log_level: self.log_level.map(|level| level.value),
            wait_before_exit,
            native_sidecar: self.native_sidecar.is_some_and(|native| native.value),
        }
    }
}

impl WaitBeforeExit {
    /// Checks the wait against the grace period of the pod `spec` (at
    /// `spec_path`): the API server refuses a `preStop` sleep longer than
    /// it.
    pub(super) fn check_grace(&self, spec: &Mapping, spec_path: &FieldPath) -> Result<(), Problem> {
        let grace = match spec.get("terminationGracePeriodSeconds") {
            None | Some(Value::Null) => DEFAULT_GRACE_SECONDS,
            Some(value) => value.as_i64().ok_or_else(|| {
                Problem::new(
                    ResourceErrorKind::InvalidType,
                    spec_path.key("terminationGracePeriodSeconds"),
                    "expected a whole number of seconds",
                )
            })?,
        };
        if i64::try_from(self.seconds).is_ok_and(|seconds| seconds <= grace) {
            return Ok(());
        }
        let set = if spec.contains_key("terminationGracePeriodSeconds") {
            ""
        } else {
            ", Kubernetes' default"
        };
        Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            self.at.clone(),
            format!(
                "{WAIT_BEFORE_EXIT_ANNOTATION} {}{} is longer than the pod's \
                 terminationGracePeriodSeconds {grace}{set}: the API server refuses a \
                 preStop sleep longer than the grace period; raise the grace period too",
                self.seconds, self.from,
            ),
        ))
    }
}

/// The log filter `text`, checked as the sidecar reads `RUST_LOG`.
fn log_filter(text: &str, annotations: &FieldPath) -> Result<String, Problem> {
    let parse = |text: &str| EnvFilter::builder().with_regex(false).parse(text);
    match parse(text) {
        Ok(_) => Ok(text.to_owned()),
        Err(error) => {
            // The parser's error does not say which directive it is about.
            let directive = text
                .split(',')
                .find(|directive| !directive.is_empty() && parse(directive).is_err())
                .unwrap_or(text);
            Err(Problem::new(
                ResourceErrorKind::InvalidValue,
                annotations.key(LOG_LEVEL_ANNOTATION),
                format!(
                    "{LOG_LEVEL_ANNOTATION} is a log filter such as warn or \
                     warn,mesh_core=debug, and {directive:?} in {text:?} is not a directive: {error}"
                ),
            ))
        }
    }
}

/// The whole number of seconds `text`, as Linkerd reads it (digits only).
fn seconds_of(text: &str, annotations: &FieldPath) -> Result<u64, Problem> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| {
            Problem::new(
                ResourceErrorKind::InvalidValue,
                annotations.key(WAIT_BEFORE_EXIT_ANNOTATION),
                format!(
                    "{WAIT_BEFORE_EXIT_ANNOTATION} is a whole number of seconds, such as \"30\", not {text:?}"
                ),
            )
        })
}
