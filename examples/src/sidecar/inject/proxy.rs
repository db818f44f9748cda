//! What injection adds to a pod: the sidecar container and its two volumes.
//!
//! Everything here is built once per pod template from [`InjectConfig`]
//! and the template's names; nothing is read back from the manifest.

use serde_yaml_ng::{Mapping, Value};

use super::{InjectConfig, resources::ProxyResources, rule::ProxyMode, settings::ProxySettings};
use crate::sidecar::config::{
    ADMIN_LISTEN_ENV, DEFAULT_ADMIN_LISTEN, DEFAULT_INBOUND_LISTEN, DEFAULT_OUTBOUND_LISTEN,
    INBOUND_LISTEN_ENV, INGRESS_MODE_ENV, OUTBOUND_LISTEN_ENV,
};

/// Where the sidecar's image holds its binary: the container's command,
/// and the program its `postStart` hook runs (a hook is run directly, not
/// through the image's entrypoint, so it needs the path). Linkerd's proxy
/// image keeps its programs under `/usr/lib/linkerd/` the same way.
pub const SIDECAR_BINARY: &str = "/usr/lib/mesh/sidecar";
/// How long the `postStart` hook waits for the sidecar to be ready: the
/// `--timeout=2m` Linkerd's injector gives `linkerd-await`.
const AWAIT_TIMEOUT: &str = "2m";
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
/// The inbound port (Linkerd's) and its container port name; the port
/// moves with `config.linkerd.io/inbound-port`.
pub const INBOUND_PORT: (u16, &str) = (4143, "mesh-inbound");
/// The outbound port (Linkerd's) and its container port name; the port
/// moves with `config.linkerd.io/outbound-port`.
pub const OUTBOUND_PORT: (u16, &str) = (4140, "mesh-outbound");
/// The admin port (Linkerd's) and its container port name; the port
/// moves with `config.linkerd.io/admin-port`.
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
    /// Among `containers`: first, with a `postStart` hook that waits for
    /// it to be ready, unless `config.linkerd.io/proxy-await: disabled`
    /// puts it last without one.
    Container,
    /// First of `initContainers` with `restartPolicy: Always`: a
    /// Kubernetes native sidecar, which starts before the other init
    /// containers and does not keep a Job's pod from completing.
    NativeSidecar,
}

/// The sidecar container. In ingress mode its environment sets
/// [`INGRESS_MODE_ENV`], which the sidecar reads over its configuration
/// file, so an ingress can share the file any other workload would have;
/// the settings (see [`settings`](super::settings)) set the listen
/// addresses of the ports an annotation moved ([`INBOUND_LISTEN_ENV`],
/// [`OUTBOUND_LISTEN_ENV`], [`ADMIN_LISTEN_ENV`]), read over the file
/// the same way, `RUST_LOG`, on a sidecar that is an ordinary container
/// the `postStart` await and a `preStop` sleep, its ports, its user and
/// group and its image pull policy.
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
    if let Some(policy) = &settings.pull_policy {
        insert(&mut container, "imagePullPolicy", string(policy));
    }
    insert(
        &mut container,
        "command",
        Value::Sequence(vec![string(SIDECAR_BINARY)]),
    );
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
    // The listen address of each port an annotation moved, on the
    // default's interface: every one of the pod's for inbound and admin
    // (the kubelet probes the pod's IP), loopback for outbound.
    let ports = &settings.ports;
    let listeners = [
        (INBOUND_LISTEN_ENV, DEFAULT_INBOUND_LISTEN, ports.inbound),
        (OUTBOUND_LISTEN_ENV, DEFAULT_OUTBOUND_LISTEN, ports.outbound),
        (ADMIN_LISTEN_ENV, DEFAULT_ADMIN_LISTEN, ports.admin),
    ];
    for ((name, default, port), annotated) in listeners.into_iter().zip(ports.annotated) {
        if annotated {
            let addr = std::net::SocketAddr::new(default.ip(), port);
            env.push(map([
                ("name", string(name)),
                ("value", string(&addr.to_string())),
            ]));
        }
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
    let ports = [
        (ports.inbound, INBOUND_PORT.1),
        (ports.outbound, OUTBOUND_PORT.1),
        (ports.admin, ADMIN_PORT.1),
    ]
    .into_iter()
    .map(|(port, name)| map([("name", string(name)), ("containerPort", port.into())]))
    .collect();
    insert(&mut container, "ports", Value::Sequence(ports));
    if placement == Placement::NativeSidecar {
        insert(&mut container, "restartPolicy", string("Always"));
    }
    let mut requests = Mapping::new();
    insert(&mut requests, "cpu", string(&resources.cpu_request));
    insert(&mut requests, "memory", string(&resources.memory_request));
    if let Some(storage) = &resources.ephemeral_storage_request {
        insert(&mut requests, "ephemeral-storage", string(storage));
    }
    let mut limits = Mapping::new();
    if let Some(cpu) = &resources.cpu_limit {
        insert(&mut limits, "cpu", string(cpu));
    }
    if let Some(memory) = &resources.memory_limit {
        insert(&mut limits, "memory", string(memory));
    }
    if let Some(storage) = &resources.ephemeral_storage_limit {
        insert(&mut limits, "ephemeral-storage", string(storage));
    }
    let mut resources = Mapping::new();
    insert(&mut resources, "requests", Value::Mapping(requests));
    if !limits.is_empty() {
        insert(&mut resources, "limits", Value::Mapping(limits));
    }
    insert(&mut container, "resources", Value::Mapping(resources));
    let admin = settings.ports.admin;
    insert(&mut container, "livenessProbe", probe("/live", 10, admin));
    insert(&mut container, "readinessProbe", probe("/ready", 2, admin));
    // As Linkerd's native proxy has its startup probe only with the await.
    if placement == Placement::NativeSidecar && settings.await_ready {
        insert(&mut container, "startupProbe", startup_probe(admin));
    }
    if placement == Placement::Container {
        let mut lifecycle = Mapping::new();
        if settings.await_ready {
            insert(&mut lifecycle, "postStart", await_hook(admin));
        }
        if let Some(wait) = &settings.wait_before_exit {
            let sleep = map([("sleep", map([("seconds", wait.seconds.into())]))]);
            insert(&mut lifecycle, "preStop", sleep);
        }
        if !lifecycle.is_empty() {
            insert(&mut container, "lifecycle", Value::Mapping(lifecycle));
        }
    }
    let mut security = Mapping::new();
    insert(
        &mut security,
        "allowPrivilegeEscalation",
        Value::Bool(false),
    );
    insert(
        &mut security,
        "capabilities",
        map([("drop", Value::Sequence(vec![string("ALL")]))]),
    );
    insert(&mut security, "readOnlyRootFilesystem", Value::Bool(true));
    insert(&mut security, "runAsNonRoot", Value::Bool(true));
    insert(&mut security, "runAsUser", settings.uid.into());
    if let Some(gid) = settings.gid {
        insert(&mut security, "runAsGroup", gid.into());
    }
    insert(
        &mut security,
        "seccompProfile",
        map([("type", string("RuntimeDefault"))]),
    );
    insert(&mut container, "securityContext", Value::Mapping(security));
    // The sidecar says why it cannot start in its log, and writes no
    // termination-message file: this has the kubelet put the log's tail in
    // the container's status, as Linkerd's proxy has it.
    insert(
        &mut container,
        "terminationMessagePolicy",
        string("FallbackToLogsOnError"),
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
fn probe(path: &str, initial_delay_seconds: u64, admin: u16) -> Value {
    map([
        (
            "httpGet",
            map([("path", string(path)), ("port", admin.into())]),
        ),
        ("initialDelaySeconds", initial_delay_seconds.into()),
    ])
}

/// The `postStart` hook of a sidecar that is an ordinary container:
/// `sidecar await` on its admin port, as Linkerd's proxy runs
/// `linkerd-await --timeout=2m --port=<admin>`. The kubelet starts the
/// pod's next container only once it has returned, and restarts the
/// sidecar when it fails.
fn await_hook(admin: u16) -> Value {
    let command = [
        SIDECAR_BINARY,
        "await",
        "--admin",
        &format!("127.0.0.1:{admin}"),
        "--timeout",
        AWAIT_TIMEOUT,
    ]
    .into_iter()
    .map(string)
    .collect();
    map([("exec", map([("command", Value::Sequence(command))]))])
}

/// The native sidecar's startup probe: `/ready`, every second for up to
/// two minutes, as Linkerd's proxy has as a native sidecar. The kubelet
/// starts the pod's next init containers, and then its application,
/// only once it passes; without it they start with the sidecar's
/// process, before its listeners are bound, and their first requests are
/// refused.
fn startup_probe(admin: u16) -> Value {
    map([
        (
            "httpGet",
            map([("path", string("/ready")), ("port", admin.into())]),
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
