//! Linkerd's proxy settings that the sidecar's container carries: its log
//! filter and format, how long it waits before it stops, whether it is a
//! native sidecar and waits to be ready before the application starts,
//! the user and group it runs as, its image pull policy and its ports.
//!
//! A manifest moved from Linkerd may say any of them with Linkerd's
//! annotations, and Linkerd's injector follows each
//! (`ApplyAnnotationOverrides` in its `pkg/inject/inject.go`). As there,
//! each is read from the pod template (for a `Pod`, the pod), else from
//! its Namespace (see [`Namespaces`](super::namespace::Namespaces)), and
//! not from the workload's own metadata, which its pods do not carry.
//! Where Linkerd logs a value it cannot read and goes on without it,
//! inject refuses it, naming the annotation, the document and the value:
//! a setting silently dropped is found only once the pod misbehaves.
//!
//! - `config.linkerd.io/proxy-log-level` becomes the container's
//!   `RUST_LOG`, the filter the sidecar logs with, written the same way
//!   as Linkerd's (`warn`, `warn,mesh_core=debug`). One that is not a
//!   filter is an error, where the sidecar would log at its default and
//!   say why only in its log.
//! - `config.linkerd.io/proxy-log-format` is `plain` or `json`. The
//!   sidecar writes plain lines only: `plain` asks for nothing more, and
//!   `json` is warned about (see [`warning`](super::warning)).
//! - `config.alpha.linkerd.io/proxy-wait-before-exit-seconds` becomes a
//!   `preStop` hook that sleeps that many seconds (Kubernetes' `sleep`
//!   action, 1.30 and later, so the image needs no `sleep` binary) on a
//!   sidecar that is an ordinary container: Kubernetes sends every
//!   container its stop signal at once, and the sidecar, once signalled,
//!   closes its listeners. A native sidecar gets none, as Linkerd gives
//!   its proxy none: Kubernetes stops it only once the application's
//!   containers have exited. The API server refuses a sleep longer than
//!   the pod's `terminationGracePeriodSeconds` (30 unless set), and so
//!   does inject. `0` asks for no wait.
//! - `config.linkerd.io/proxy-enable-native-sidecar` (or its older names
//!   under `config.beta.linkerd.io` and `config.alpha.linkerd.io`, read in
//!   that order, as Linkerd reads them) asks for a native sidecar. Its
//!   value is a boolean as Go reads one (`true`, `True`, `1`, `false`,
//!   ...); a `false` on the pod template keeps its Namespace's `true` from
//!   applying.
//! - `config.linkerd.io/proxy-await` is `enabled` (Linkerd's default) or
//!   `disabled`. On a native sidecar, `disabled` takes off the startup
//!   probe that holds the application's containers until the sidecar is
//!   ready, as Linkerd's native proxy has that probe only with the await.
//!   A sidecar that is an ordinary container goes first among the
//!   containers with a `postStart` hook running `sidecar await` on its
//!   admin port (as Linkerd's proxy runs `linkerd-await`): the kubelet
//!   starts the next container only once the hook has returned, so the
//!   application starts once the sidecar is ready. `disabled` puts it last
//!   without the hook.
//! - `config.linkerd.io/proxy-uid` and `proxy-gid` are the user
//!   (`runAsUser`, Linkerd's 2102 unless set) and group (`runAsGroup`,
//!   none unless set; `-1`, Linkerd's default, is none) the sidecar runs
//!   as. The user cannot be root (0): the container runs as non-root, and
//!   the kubelet would refuse to start it.
//! - `config.linkerd.io/image-pull-policy` is the container's
//!   `imagePullPolicy`: `Always`, `IfNotPresent` or `Never`.
//! - `config.linkerd.io/inbound-port`, `outbound-port` and `admin-port`
//!   move the sidecar's listeners: the container's environment gets
//!   `MESH_INBOUND_LISTEN_ADDR=0.0.0.0:<port>`,
//!   `MESH_OUTBOUND_LISTEN_ADDR=127.0.0.1:<port>` and
//!   `MESH_ADMIN_LISTEN_ADDR=0.0.0.0:<port>`, which the sidecar listens on
//!   whatever its `sidecar.yaml` says (see
//!   [`INBOUND_LISTEN_ENV`](crate::sidecar::config::INBOUND_LISTEN_ENV)),
//!   as Linkerd's injector gives its proxy
//!   `LINKERD2_PROXY_INBOUND_LISTEN_ADDR` and the others
//!   (`charts/partials/templates/_proxy.tpl` in `linkerd/linkerd2`); and
//!   the ports the container declares and its probes and `postStart`
//!   await move with them. The application's containers may then use the
//!   defaults. A port without its annotation gets no variable: the file's
//!   address (or its default) stands, and the container declares the
//!   default port. Each is a port from 1 to 65535, and the three must
//!   differ. The inbound one needs `inbound.app` in the file, as
//!   `inbound.listen` does: the sidecar refuses to start without it.

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::{Mapping, Value};
use tracing_subscriber::EnvFilter;

use super::{
    proxy::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT},
    yaml::{self, FieldPath, Problem},
};

/// Linkerd's annotation for its proxy's log filter.
pub(super) const LOG_LEVEL_ANNOTATION: &str = "config.linkerd.io/proxy-log-level";
/// Linkerd's annotation for its proxy's log format, `plain` or `json`.
pub(super) const LOG_FORMAT_ANNOTATION: &str = "config.linkerd.io/proxy-log-format";
/// Linkerd's annotation for the seconds its proxy outlives the pod's stop.
pub(super) const WAIT_BEFORE_EXIT_ANNOTATION: &str =
    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds";
/// Linkerd's annotations that ask for the proxy as a native sidecar,
/// started before the application's init containers so they can reach the
/// mesh: the stable name, then the older beta and alpha ones, in the
/// order Linkerd reads them.
pub(super) const NATIVE_SIDECAR_ANNOTATIONS: [&str; 3] = [
    "config.linkerd.io/proxy-enable-native-sidecar",
    "config.beta.linkerd.io/proxy-enable-native-sidecar",
    "config.alpha.linkerd.io/proxy-enable-native-sidecar",
];
/// Linkerd's annotation that holds the application back until the proxy
/// is ready: `enabled` (the default) or `disabled`.
pub(super) const AWAIT_ANNOTATION: &str = "config.linkerd.io/proxy-await";
/// Linkerd's annotation for the user its proxy runs as.
pub(super) const UID_ANNOTATION: &str = "config.linkerd.io/proxy-uid";
/// Linkerd's annotation for the group its proxy runs as.
pub(super) const GID_ANNOTATION: &str = "config.linkerd.io/proxy-gid";
/// Linkerd's annotation for its proxy's image pull policy.
pub(super) const PULL_POLICY_ANNOTATION: &str = "config.linkerd.io/image-pull-policy";
/// Linkerd's annotations for its proxy's ports, and which port each is.
pub(super) const PORT_ANNOTATIONS: [(&str, &str); 3] = [
    ("config.linkerd.io/inbound-port", "inbound"),
    ("config.linkerd.io/outbound-port", "outbound"),
    ("config.linkerd.io/admin-port", "admin"),
];

/// The user the sidecar runs as unless `proxy-uid` says otherwise:
/// Linkerd's proxy's.
pub(super) const DEFAULT_UID: i64 = 2102;

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

impl<T> Annotated<T> {
    /// Where an error about it is reported: the annotation, when it is
    /// the pod template's own; else the pod template's `annotations`,
    /// where this workload can set its own.
    fn at(&self, annotations: &FieldPath, key: &str) -> FieldPath {
        match self.namespace {
            None => annotations.key(key),
            Some(_) => annotations.clone(),
        }
    }

    /// ` (from namespace NAME)`, or nothing.
    fn from(&self) -> String {
        self.namespace
            .as_ref()
            .map_or_else(String::new, |name| format!(" (from namespace {name})"))
    }

    /// Where it was said.
    fn said_on(&self) -> SaidOn {
        self.namespace
            .clone()
            .map_or(SaidOn::PodTemplate, SaidOn::Namespace)
    }
}

/// The sidecar's log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Plain,
    Json,
}

/// Where a setting was said: on the pod template, or on its Namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SaidOn {
    PodTemplate,
    Namespace(String),
}

/// The setting annotations of one object's metadata, each read and
/// checked where it is written.
#[derive(Clone, Debug, Default)]
pub(super) struct SettingAnnotations {
    log_level: Option<Annotated<String>>,
    log_format: Option<Annotated<LogFormat>>,
    wait_before_exit: Option<Annotated<u64>>,
    /// Under each of [`NATIVE_SIDECAR_ANNOTATIONS`].
    native_sidecar: [Option<Annotated<bool>>; 3],
    await_ready: Option<Annotated<bool>>,
    uid: Option<Annotated<i64>>,
    /// `None` inside for `-1`, no group.
    gid: Option<Annotated<Option<i64>>>,
    pull_policy: Option<Annotated<String>>,
    /// Under each of [`PORT_ANNOTATIONS`].
    ports: [Option<Annotated<u16>>; 3],
}

/// The sidecar's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ports {
    pub(super) inbound: u16,
    pub(super) outbound: u16,
    pub(super) admin: u16,
    /// Which of inbound, outbound and admin an annotation set: those the
    /// sidecar is told to listen on through its environment. The others
    /// are where its file says (the defaults, unless it says otherwise).
    pub(super) annotated: [bool; 3],
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            inbound: INBOUND_PORT.0,
            outbound: OUTBOUND_PORT.0,
            admin: ADMIN_PORT.0,
            annotated: [false; 3],
        }
    }
}

/// What the sidecar's container gets from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ProxySettings {
    /// The container's `RUST_LOG`.
    pub(super) log_level: Option<String>,
    /// The seconds of the `preStop` sleep, above zero.
    pub(super) wait_before_exit: Option<WaitBeforeExit>,
    /// Whether a native sidecar was asked for.
    pub(super) native_sidecar: bool,
    /// Whether the sidecar holds the application back until it is ready:
    /// a native sidecar with its startup probe, an ordinary container by
    /// going first with a `postStart` hook that waits.
    pub(super) await_ready: bool,
    /// The container's `runAsUser`.
    pub(super) uid: i64,
    /// The container's `runAsGroup`.
    pub(super) gid: Option<i64>,
    /// The container's `imagePullPolicy`.
    pub(super) pull_policy: Option<String>,
    /// The ports the container declares and is probed on.
    pub(super) ports: Ports,
    /// Where `proxy-log-format: json`, which the sidecar cannot follow,
    /// was said.
    pub(super) json_log: Option<SaidOn>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            log_level: None,
            wait_before_exit: None,
            native_sidecar: false,
            await_ready: true,
            uid: DEFAULT_UID,
            gid: None,
            pull_policy: None,
            ports: Ports::default(),
            json_log: None,
        }
    }
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
    /// A value that is not a string, or that is not one the annotation
    /// takes (a log level that is not a filter, a port that is not a
    /// port), is a problem at its path naming the value.
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
        let log_format = read_one(annotations, &path, LOG_FORMAT_ANNOTATION, &|text| {
            if text.eq_ignore_ascii_case("plain") {
                Ok(LogFormat::Plain)
            } else if text.eq_ignore_ascii_case("json") {
                Ok(LogFormat::Json)
            } else {
                Err("plain or json".to_owned())
            }
        })?;
        let wait_before_exit =
            read_one(annotations, &path, WAIT_BEFORE_EXIT_ANNOTATION, &|text| {
                whole_number(text)
                    .ok_or_else(|| "a whole number of seconds, such as \"30\"".to_owned())
            })?;
        let mut native_sidecar: [Option<Annotated<bool>>; 3] = Default::default();
        for (slot, key) in native_sidecar.iter_mut().zip(NATIVE_SIDECAR_ANNOTATIONS) {
            *slot = read_one(annotations, &path, key, &|text| {
                go_bool(text).ok_or_else(|| "\"true\" or \"false\"".to_owned())
            })?;
        }
        let await_ready = read_one(annotations, &path, AWAIT_ANNOTATION, &|text| match text {
            "enabled" => Ok(true),
            "disabled" => Ok(false),
            _ => Err("enabled or disabled".to_owned()),
        })?;
        let uid = read_one(annotations, &path, UID_ANNOTATION, &|text| {
            whole_number(text)
                .and_then(|n| i64::try_from(n).ok())
                .filter(|uid| *uid > 0)
                .ok_or_else(|| {
                    "the user the sidecar runs as, a whole number above 0 (the sidecar \
                     runs as non-root, and the kubelet refuses to start it as root)"
                        .to_owned()
                })
        })?;
        let gid = read_one(annotations, &path, GID_ANNOTATION, &|text| {
            let group = if text == "-1" {
                Some(None)
            } else {
                whole_number(text)
                    .and_then(|n| i64::try_from(n).ok())
                    .map(Some)
            };
            group.ok_or_else(|| {
                "the group the sidecar runs as, a whole number from 0, or -1 for none".to_owned()
            })
        })?;
        let pull_policy = read_one(
            annotations,
            &path,
            PULL_POLICY_ANNOTATION,
            &|text| match text {
                "Always" | "IfNotPresent" | "Never" => Ok(text.to_owned()),
                _ => Err("Always, IfNotPresent or Never".to_owned()),
            },
        )?;
        let mut ports: [Option<Annotated<u16>>; 3] = Default::default();
        for (slot, (key, _)) in ports.iter_mut().zip(PORT_ANNOTATIONS) {
            *slot = read_one(annotations, &path, key, &|text| {
                whole_number(text)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|port| *port > 0)
                    .ok_or_else(|| "a port, a whole number from 1 to 65535".to_owned())
            })?;
        }
        Ok(Self {
            log_level,
            log_format,
            wait_before_exit,
            native_sidecar,
            await_ready,
            uid,
            gid,
            pull_policy,
            ports,
        })
    }

    /// These annotations, each one that is missing taken from those of
    /// the Namespace `name`, as Linkerd's injector takes each annotation
    /// the pod does not have from its namespace.
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
        let [a, b, c] = self.native_sidecar;
        let [na, nb, nc] = &namespace.native_sidecar;
        let [p, q, r] = self.ports;
        let [np, nq, nr] = &namespace.ports;
        Self {
            log_level: inherit(self.log_level, &namespace.log_level, name),
            log_format: inherit(self.log_format, &namespace.log_format, name),
            wait_before_exit: inherit(self.wait_before_exit, &namespace.wait_before_exit, name),
            native_sidecar: [
                inherit(a, na, name),
                inherit(b, nb, name),
                inherit(c, nc, name),
            ],
            await_ready: inherit(self.await_ready, &namespace.await_ready, name),
            uid: inherit(self.uid, &namespace.uid, name),
            gid: inherit(self.gid, &namespace.gid, name),
            pull_policy: inherit(self.pull_policy, &namespace.pull_policy, name),
            ports: [
                inherit(p, np, name),
                inherit(q, nq, name),
                inherit(r, nr, name),
            ],
        }
    }

    /// The settings these annotations ask for, on the pod template whose
    /// `metadata` is at `path`.
    ///
    /// Two of the sidecar's ports that are the same are a problem: its
    /// listeners could not all bind.
    pub(super) fn settings(self, path: &FieldPath) -> Result<ProxySettings, Problem> {
        let annotations = path.key("annotations");
        let wait_before_exit = self
            .wait_before_exit
            .filter(|wait| wait.value > 0)
            .map(|wait| WaitBeforeExit {
                seconds: wait.value,
                at: wait.at(&annotations, WAIT_BEFORE_EXIT_ANNOTATION),
                from: wait.from(),
            });
        let defaults = Ports::default();
        let default_ports = [defaults.inbound, defaults.outbound, defaults.admin];
        let ports: Vec<u16> = self
            .ports
            .iter()
            .zip(default_ports)
            .map(|(port, default)| port.as_ref().map_or(default, |port| port.value))
            .collect();
        for later in 0..ports.len() {
            for earlier in 0..later {
                if ports[earlier] != ports[later] {
                    continue;
                }
                // Reported at an annotation that set one of the two,
                // the pod template's own if either is.
                let (set, other) = match (&self.ports[later], &self.ports[earlier]) {
                    (Some(port), _) if port.namespace.is_none() => (later, earlier),
                    (_, Some(port)) if port.namespace.is_none() => (earlier, later),
                    (Some(_), _) => (later, earlier),
                    _ => (earlier, later),
                };
                let (key, _) = PORT_ANNOTATIONS[set];
                let (other_key, other_name) = PORT_ANNOTATIONS[other];
                let (at, from) = self.ports[set].as_ref().map_or_else(
                    || (annotations.clone(), String::new()),
                    |port| (port.at(&annotations, key), port.from()),
                );
                let other_said = if self.ports[other].is_some() {
                    format!(" ({other_key})")
                } else {
                    " (its default)".to_owned()
                };
                return Err(Problem::new(
                    ResourceErrorKind::InvalidValue,
                    at,
                    format!(
                        "{key} {}{from} is also the sidecar's {other_name} port{other_said}: \
                         each of the sidecar's listeners needs a port of its own",
                        ports[set],
                    ),
                ));
            }
        }
        let [inbound, outbound, admin] = [ports[0], ports[1], ports[2]];
        let native_sidecar = self
            .native_sidecar
            .iter()
            .flatten()
            .next()
            .is_some_and(|native| native.value);
        Ok(ProxySettings {
            log_level: self.log_level.map(|level| level.value),
            wait_before_exit,
            native_sidecar,
            await_ready: self.await_ready.as_ref().is_none_or(|ready| ready.value),
            uid: self.uid.map_or(DEFAULT_UID, |uid| uid.value),
            gid: self.gid.and_then(|gid| gid.value),
            pull_policy: self.pull_policy.map(|policy| policy.value),
            ports: Ports {
                inbound,
                outbound,
                admin,
                annotated: self.ports.each_ref().map(Option::is_some),
            },
            json_log: self
                .log_format
                .filter(|format| format.value == LogFormat::Json)
                .map(|format| format.said_on()),
        })
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

/// The annotation `key` of `annotations` (at `path`), read with `parse`,
/// whose error says what the annotation takes.
fn read_one<T>(
    annotations: &Mapping,
    path: &FieldPath,
    key: &str,
    parse: &dyn Fn(&str) -> Result<T, String>,
) -> Result<Option<Annotated<T>>, Problem> {
    yaml::string(annotations, key, path)?
        .map(|text| {
            parse(text).map(annotated).map_err(|expected| {
                Problem::new(
                    ResourceErrorKind::InvalidValue,
                    path.key(key),
                    format!("{key} is {expected}, not {text:?}"),
                )
            })
        })
        .transpose()
}

/// The whole number `text`, digits only, as Linkerd reads its numbers
/// (no sign, no spaces).
fn whole_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The boolean `text`, as Go's `strconv.ParseBool`, which Linkerd's
/// injector reads its booleans with, reads it.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
