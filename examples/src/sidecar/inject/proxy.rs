//! What injection adds to a pod: the sidecar container and its two volumes.
//!
//! Everything here is built once per pod template from [`InjectConfig`]
//! and the template's names; nothing is read back from the manifest.

use serde_yaml_ng::{Mapping, Value};

use super::{InjectConfig, resources::ProxyResources, rule::ProxyMode, settings::ProxySettings};
use crate::sidecar::config::INGRESS_MODE_ENV;

/// The name of the sidecar container. Linkerd's is `linkerd-proxy`.
pub const CONTAINER_NAME: &str = "mesh-proxy";
/// The pod volume holding the sidecar's configuration.
pub const CONFIG_VOLUME: &str = "mesh-config";
/// The pod volume holding the workload's certificate.
pub const IDENTITY_VOLUME: &str = "mesh-identity";
/// Where the configuration volume is mounted.
pub const CONFIG_DIR: &str = "/etc/mesh";
/// The configuration file the sidecar runs with: the ConfigMap's
/// `sidecar.yaml` key.
pub const CONFIG_FILE: &str = "/etc/mesh/sidecar.yaml";
/// Where the certificate volume is mounted: the `identity.dir` a
/// configuration for an injected pod names.
pub const IDENTITY_DIR: &str = "/var/run/mesh/identity";
/// The ConfigMap's name is the workload's name followed by this.
pub const CONFIG_MAP_SUFFIX: &str = "-mesh-config";
/// The Secret's name is the service account's name followed by this.
pub const SECRET_SUFFIX: &str = "-mesh-identity";
/// The inbound port (Linkerd's) and its container port name.
pub const INBOUND_PORT: (u16, &str) = (4143, "mesh-inbound");
/// The outbound port (Linkerd's) and its container port name.
pub const OUTBOUND_PORT: (u16, &str) = (4140, "mesh-outbound");
/// The admin port (Linkerd's) and its container port name.
pub const ADMIN_PORT: (u16, &str) = (4191, "mesh-admin");

/// The CPU the sidecar asks for: the proxy's request in Linkerd's
/// high-availability values (`values-ha.yaml`; its plain install sets no
/// proxy resources). There is no CPU limit, as there is none there either:
/// throttling a proxy adds latency to every request of the application
/// behind it.
pub const CPU_REQUEST: &str = "100m";
/// The memory the sidecar asks for: the proxy's request in Linkerd's
/// high-availability values.
pub const MEMORY_REQUEST: &str = "20Mi";
/// The memory the sidecar may use: the proxy's limit in Linkerd's
/// high-availability values.
pub const MEMORY_LIMIT: &str = "250Mi";

/// Where the sidecar container goes in the pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// Last of `containers`, so the application stays kubectl's default
    /// container for `logs` and `exec`.
    Container,
    /// First of `initContainers` with `restartPolicy: Always`: a
    /// Kubernetes native sidecar, which starts before the other init
    /// containers and does not keep a Job's pod from completing.
    NativeSidecar,
}

/// The sidecar container. In ingress mode its environment sets
/// [`INGRESS_MODE_ENV`], which the sidecar reads over its configuration
/// file, so an ingress can share the file any other workload would have;
/// a log level sets `RUST_LOG`, and a wait before exit a `preStop` sleep
/// on a sidecar that is an ordinary container.
pub(super) fn container(
    config: &InjectConfig,
    placement: Placement,
    mode: ProxyMode,
    resources: &ProxyResources,
    settings: &ProxySettings,
) -> Value {
    let mut container = Mapping::new();
    insert(&mut container, "name", string(CONTAINER_NAME));
    insert(&mut container, "image", string(config.image.as_str()));
    insert(
        &mut container,
        "args",
        Value::Sequence(vec![string("run"), string("--config"), string(CONFIG_FILE)]),
    );
    let mut env = Vec::new();
    if mode == ProxyMode::Ingress {
        env.push(map([
            ("name", string(INGRESS_MODE_ENV)),
            ("value", string("true")),
        ]));
    }
    if let Some(filter) = &settings.log_level {
        env.push(map([
            ("name", string("RUST_LOG")),
            ("value", string(filter)),
        ]));
    }
    if !env.is_empty() {
        insert(&mut container, "env", Value::Sequence(env));
    }
    let ports = [INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT]
        .into_iter()
        .map(|(port, name)| map([("name", string(name)), ("containerPort", port.into())]))
        .collect();
    insert(&mut container, "ports", Value::Sequence(ports));
    if placement == Placement::NativeSidecar {
        insert(&mut container, "restartPolicy", string("Always"));
    }
    let requests = map([
        ("cpu", string(&resources.cpu_request)),
        ("memory", string(&resources.memory_request)),
    ]);
    let mut limits = Mapping::new();
    if let Some(cpu) = &resources.cpu_limit {
        insert(&mut limits, "cpu", string(cpu));
    }
    if let Some(memory) = &resources.memory_limit {
        insert(&mut limits, "memory", string(memory));
    }
    let mut resources = Mapping::new();
    insert(&mut resources, "requests", requests);
    if !limits.is_empty() {
        insert(&mut resources, "limits", Value::Mapping(limits));
    }
    insert(&mut container, "resources", Value::Mapping(resources));
    insert(&mut container, "livenessProbe", probe("/live", 10));
    insert(&mut container, "readinessProbe", probe("/ready", 2));
    if placement == Placement::NativeSidecar {
        insert(&mut container, "startupProbe", startup_probe());
    }
    if placement == Placement::Container
        && let Some(wait) = &settings.wait_before_exit
    {
        let sleep = map([("sleep", map([("seconds", wait.seconds.into())]))]);
        insert(&mut container, "lifecycle", map([("preStop", sleep)]));
    }
    insert(
        &mut container,
        "securityContext",
        map([
            ("allowPrivilegeEscalation", Value::Bool(false)),
            (
                "capabilities",
                map([("drop", Value::Sequence(vec![string("ALL")]))]),
            ),
            ("readOnlyRootFilesystem", Value::Bool(true)),
            ("runAsNonRoot", Value::Bool(true)),
            ("runAsUser", 2102.into()),
            ("seccompProfile", map([("type", string("RuntimeDefault"))])),
        ]),
    );
    let mounts = [(CONFIG_VOLUME, CONFIG_DIR), (IDENTITY_VOLUME, IDENTITY_DIR)]
        .into_iter()
        .map(|(name, path)| {
            map([
                ("name", string(name)),
                ("mountPath", string(path)),
                ("readOnly", Value::Bool(true)),
            ])
        })
        .collect();
    insert(&mut container, "volumeMounts", Value::Sequence(mounts));
    Value::Mapping(container)
}

/// The configuration volume: the ConfigMap named after the workload.
pub(super) fn config_volume(config_map: &str) -> Value {
    map([
        ("name", string(CONFIG_VOLUME)),
        ("configMap", map([("name", string(config_map))])),
    ])
}

/// The certificate volume: the Secret named after the service account.
pub(super) fn identity_volume(secret: &str) -> Value {
    map([
        ("name", string(IDENTITY_VOLUME)),
        ("secret", map([("secretName", string(secret))])),
    ])
}

/// An HTTP probe of the admin port. Linkerd's proxy probes wait 10 s
/// (liveness) and 2 s (readiness) before the first check.
fn probe(path: &str, initial_delay_seconds: u64) -> Value {
    map([
        (
            "httpGet",
            map([("path", string(path)), ("port", ADMIN_PORT.0.into())]),
        ),
        ("initialDelaySeconds", initial_delay_seconds.into()),
    ])
}

/// The native sidecar's startup probe: `/ready`, every second for up to
/// two minutes, as Linkerd's proxy has as a native sidecar. The kubelet
/// starts the pod's next init containers, and then its application,
/// only once it passes; without it they start with the sidecar's
/// process, before its listeners are bound, and their first requests are
/// refused.
fn startup_probe() -> Value {
    map([
        (
            "httpGet",
            map([("path", string("/ready")), ("port", ADMIN_PORT.0.into())]),
        ),
        ("periodSeconds", 1.into()),
        ("failureThreshold", 120.into()),
    ])
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut mapping = Mapping::with_capacity(N);
    for (key, value) in entries {
        insert(&mut mapping, key, value);
    }
    Value::Mapping(mapping)
}

fn insert(mapping: &mut Mapping, key: &str, value: Value) {
    mapping.insert(string(key), value);
}

pub(super) fn string(text: &str) -> Value {
    Value::String(text.to_owned())
}
