//! The workloads inject reads, where their pod template is, and the edit
//! it makes to one.

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::{Mapping, Value};

use super::{
    InjectConfig, Outcome,
    namespace::Namespaces,
    proxy::{self, CONFIG_MAP_SUFFIX, CONTAINER_NAME, Placement, SECRET_SUFFIX},
    resources::{ProxyResources, ResourceAnnotations},
    rule::{self, ProxyMode},
    settings::{Ports, ProxySettings, SaidOn, SettingAnnotations},
    unproxied::{UnproxiedPort, unproxied_ports},
    warning::{self, Found, Scope, Unread, Warning},
    yaml::{self, AddAt, FieldPath, Problem},
};

/// The annotation that records an injection, set to `"true"`.
pub const INJECTED_ANNOTATION: &str = "mesh.io/injected";
/// The annotation that records the sidecar's version (see
/// [`Image::version`](super::Image::version)).
pub const VERSION_ANNOTATION: &str = "mesh.io/proxy-version";
/// The annotation naming kubectl's default container for `logs` and
/// `exec` (Kubernetes' well-known `kubectl.kubernetes.io/default-container`):
/// set to the application's first container when the sidecar goes first,
/// unless the pod template names one already.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The longest name of a ConfigMap or Secret: a DNS subdomain.
const MAX_NAME: usize = 253;

/// A kind of object that holds a pod template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `v1` `Pod`: the object is the pod.
    Pod,
    /// `apps/v1` `Deployment`.
    Deployment,
    /// `apps/v1` `StatefulSet`.
    StatefulSet,
    /// `apps/v1` `DaemonSet`.
    DaemonSet,
    /// `apps/v1` `ReplicaSet`.
    ReplicaSet,
    /// `batch/v1` `Job`.
    Job,
    /// `batch/v1` `CronJob`: its pods are its jobs' pods.
    CronJob,
    /// `v1` `ReplicationController`, the ReplicaSet's predecessor, which
    /// `linkerd inject` injects too.
    ReplicationController,
}

impl WorkloadKind {
    /// The workload kind of an object, when it is one. The API group must be
    /// the kind's own (`apps`, or the older `extensions` for the first four;
    /// `batch` for jobs; the core group for pods and replication
    /// controllers), so a custom resource that happens to be called
    /// `Deployment` is left alone. Any version is read:
    /// the pod template has the same shape in all of them.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let workload = match kind {
            "Pod" => Self::Pod,
            "Deployment" => Self::Deployment,
            "StatefulSet" => Self::StatefulSet,
            "DaemonSet" => Self::DaemonSet,
            "ReplicaSet" => Self::ReplicaSet,
            "Job" => Self::Job,
            "CronJob" => Self::CronJob,
            "ReplicationController" => Self::ReplicationController,
            _ => return None,
        };
        let group_ok = match workload {
            Self::Pod | Self::ReplicationController => group.is_empty(),
            Self::Job | Self::CronJob => group == "batch",
            _ => group == "apps" || group == "extensions",
        };
        group_ok.then_some(workload)
    }

    /// The kind, as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::ReplicationController => "ReplicationController",
        }
    }

    /// The keys from the object to its pod template.
    fn template_path(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &[],
            Self::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }

    /// Pods that run to completion take the sidecar as a native sidecar,
    /// which Kubernetes stops once the other containers have exited: a
    /// job's pods always, and any pod whose `restartPolicy` is `Never` or
    /// `OnFailure` (see [`edit_pod`]).
    fn placement(self) -> Placement {
        match self {
            Self::Job | Self::CronJob => Placement::NativeSidecar,
            _ => Placement::Container,
        }
    }
}

/// What injecting one workload did, and what its sidecar will not do.
pub(super) struct Injection {
    pub(super) outcome: Outcome,
    /// The Linkerd annotations over it that the sidecar does not follow.
    pub(super) warnings: Vec<Warning>,
    /// Its containers' ports that the sidecar does not proxy.
    pub(super) unproxied: Vec<UnproxiedPort>,
}

impl From<Outcome> for Injection {
    /// A workload not injected: nothing to warn of.
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            warnings: Vec::new(),
            unproxied: Vec::new(),
        }
    }
}

/// Injects the sidecar into the pod template of `object`, a workload of
/// kind `kind` at `path` of its document, unless `mesh.io/inject` says not
/// to; with a warning for each Linkerd annotation over an injected
/// workload that its sidecar does not follow, and for each port of its
/// containers that the sidecar does not proxy.
pub(super) fn inject(
    object: &mut Value,
    path: &FieldPath,
    kind: WorkloadKind,
    namespaces: &Namespaces,
    config: &InjectConfig,
) -> Result<Injection, Problem> {
    let object = yaml::as_mapping_mut(object, path)?;
    let meta_path = path.key("metadata");
    let metadata = yaml::mapping(object, "metadata", path)?;
    let named = |key| {
        metadata
            .map(|m| yaml::string(m, key, &meta_path))
            .transpose()
            .map(|name| name.flatten().filter(|name| !name.is_empty()))
    };
    // A workload `kubectl create` names from `generateName` is named after
    // its stem: the pods of one manifest share one configuration.
    let stem = || named("generateName").map(|g| g.map(|g| g.trim_end_matches('-')));
    let name = match named("name")? {
        Some(name) => name,
        None => stem()?.filter(|stem| !stem.is_empty()).ok_or_else(|| {
            Problem::new(
                ResourceErrorKind::MissingField,
                meta_path.key("name"),
                "a workload needs a name or a generateName: its sidecar's ConfigMap is named after it",
            )
        })?,
    }
    .to_owned();
    let namespace = metadata
        .map(|m| yaml::string(m, "namespace", &meta_path))
        .transpose()?
        .flatten()
        .map(str::to_owned);
    let own_mode = rule::mode(metadata, &meta_path)?;
    let in_namespace = namespaces.of(namespace.as_deref());
    let object_name = warning::object_name(kind.as_str(), namespace.as_deref(), &name);
    let own_unread = Found::read(object_name.clone(), metadata, &meta_path, Scope::Workload);

    let mut template_path = path.clone();
    let mut template = &mut *object;
    for key in kind.template_path() {
        let missing = || {
            Problem::new(
                ResourceErrorKind::MissingField,
                template_path.key(key),
                format!(
                    "a {} needs a pod template at {}",
                    kind.as_str(),
                    kind.template_path().join(".")
                ),
            )
        };
        template = match template.get_mut(*key) {
            None | Some(Value::Null) => return Err(missing()),
            Some(value) => yaml::as_mapping_mut(value, &template_path.key(key))?,
        };
        template_path = template_path.key(key);
    }

    let template_meta_path = template_path.key("metadata");
    let template_mode = match kind {
        WorkloadKind::Pod => None,
        _ => rule::mode(
            yaml::mapping(template, "metadata", &template_path)?,
            &template_meta_path,
        )?,
    };
    let mode = match rule::decide(kind, template_mode, own_mode, in_namespace) {
        Ok(mode) => mode,
        Err(by) => return Ok(Outcome::Disabled(by).into()),
    };
    // On the host's network, the sidecar would listen on the node's own
    // ports: a second such pod on the node would share them (the sidecar
    // binds with SO_REUSEPORT) and take half of the first one's traffic.
    if let Some(spec) = yaml::mapping(template, "spec", &template_path)?
        && yaml::boolean(spec, "hostNetwork", &template_path.key("spec"))? == Some(true)
    {
        return Ok(Outcome::HostNetwork.into());
    }
    if let Some(by) = rule::other_proxy(template, kind, in_namespace) {
        return Ok(Outcome::OtherProxy(by).into());
    }
    let template_meta = yaml::mapping(template, "metadata", &template_path)?;
    let mut annotated = ResourceAnnotations::read(template_meta, &template_meta_path)?;
    let mut set = SettingAnnotations::read(template_meta, &template_meta_path)?;
    if let Some(namespace) = in_namespace {
        annotated = annotated.or_namespace(&namespace.name, &namespace.resources);
        set = set.or_namespace(&namespace.name, &namespace.settings);
    }
    let resources = annotated.resources(&template_meta_path)?;
    let settings = set.settings(&template_meta_path)?;
    // Before the edit: the paths are those of the input.
    let unproxied = yaml::mapping(template, "spec", &template_path)?
        .map(|spec| unproxied_ports(spec, &template_path.key("spec"), &object_name))
        .unwrap_or_default();
    let template_unread = Found::read(object_name, template_meta, &template_meta_path, Scope::Pod);

    let before = template.clone();
    let sidecar = Sidecar {
        mode,
        resources: &resources,
        settings: &settings,
        config,
    };
    edit_pod(template, &template_path, kind, &name, &sidecar)?;
    let outcome = if *template == before {
        Outcome::AlreadyInjected
    } else {
        Outcome::Injected
    };
    let scopes: Vec<&Found> = [&template_unread, &own_unread]
        .into_iter()
        .chain(in_namespace.map(|namespace| &namespace.unread))
        .collect();
    let config_map = format!("{name}{CONFIG_MAP_SUFFIX}");
    let outbound_port = settings.ports.outbound;
    let mut warnings = warning::warnings(&scopes, &config_map, outbound_port);
    // Settings whose value asks for what the sidecar cannot do, named
    // where they were said.
    let said_on = |on: &SaidOn| match (on, in_namespace) {
        (SaidOn::Namespace(_), Some(namespace)) => &namespace.unread,
        _ => &template_unread,
    };
    if let Some(on) = &settings.json_log {
        warnings.push(said_on(on).warning(Unread::JsonLogFormat, &config_map, outbound_port));
    }
    Ok(Injection {
        outcome,
        warnings,
        unproxied,
    })
}

/// The sidecar one workload gets.
struct Sidecar<'a> {
    mode: ProxyMode,
    resources: &'a ProxyResources,
    settings: &'a ProxySettings,
    config: &'a InjectConfig,
}

/// Adds the annotations, the container and the volumes to a pod template
/// (or a pod).
fn edit_pod(
    template: &mut Mapping,
    path: &FieldPath,
    kind: WorkloadKind,
    workload: &str,
    sidecar: &Sidecar<'_>,
) -> Result<(), Problem> {
    let config = sidecar.config;
    let spec_path = path.key("spec");
    let spec = match template.get_mut("spec") {
        None | Some(Value::Null) => {
            return Err(Problem::new(
                ResourceErrorKind::MissingField,
                spec_path,
                "a pod template needs a spec",
            ));
        }
        Some(spec) => yaml::as_mapping_mut(spec, &spec_path)?,
    };
    if !matches!(spec.get("containers"), Some(Value::Sequence(_))) {
        let containers = spec_path.key("containers");
        return Err(match spec.get("containers") {
            None | Some(Value::Null) => Problem::new(
                ResourceErrorKind::MissingField,
                containers,
                "a pod needs a list of containers",
            ),
            Some(_) => Problem::new(
                ResourceErrorKind::InvalidType,
                containers,
                "expected a list",
            ),
        });
    }
    check_ports(spec, &spec_path, &sidecar.settings.ports)?;
    // As the API server reads them: an empty name is no name.
    let named =
        |key| yaml::string(spec, key, &spec_path).map(|name| name.filter(|name| !name.is_empty()));
    let service_account = match named("serviceAccountName")? {
        Some(account) => account,
        None => named("serviceAccount")?.unwrap_or("default"),
    }
    .to_owned();
    let config_map = derived_name(workload, CONFIG_MAP_SUFFIX, &path_to_name(path, kind))?;
    let secret = derived_name(
        &service_account,
        SECRET_SUFFIX,
        &spec_path.key("serviceAccountName"),
    )?;

    let placement = match yaml::string(spec, "restartPolicy", &spec_path)? {
        Some("Never" | "OnFailure") => Placement::NativeSidecar,
        _ if sidecar.settings.native_sidecar => Placement::NativeSidecar,
        _ => kind.placement(),
    };
    // A native sidecar gets no preStop wait (see `settings`).
    if placement == Placement::Container
        && let Some(wait) = &sidecar.settings.wait_before_exit
    {
        wait.check_grace(spec, &spec_path)?;
    }
    let container = proxy::container(
        config,
        placement,
        sidecar.mode,
        sidecar.resources,
        sidecar.settings,
    );
    match placement {
        Placement::Container => {
            if let Some(Value::Sequence(init)) = spec.get_mut("initContainers") {
                yaml::remove_named(init, CONTAINER_NAME);
            }
            let containers = yaml::sequence_entry(spec, "containers", &spec_path)?;
            if sidecar.settings.await_ready {
                // The kubelet starts containers in order, each once the
                // previous one's postStart hook has returned: first, the
                // sidecar's await holds the application back.
                yaml::remove_named(containers, CONTAINER_NAME);
                containers.insert(0, container);
            } else {
                yaml::upsert_named(containers, container, AddAt::Last);
            }
        }
        Placement::NativeSidecar => {
            let containers = yaml::sequence_entry(spec, "containers", &spec_path)?;
            yaml::remove_named(containers, CONTAINER_NAME);
            let init = yaml::sequence_entry(spec, "initContainers", &spec_path)?;
            yaml::upsert_named(init, container, AddAt::First);
        }
    }
    // With the sidecar first, kubectl would pick it for `logs` and `exec`
    // without `-c`; the annotation keeps the application's first container.
    let default_container = match placement {
        Placement::Container if sidecar.settings.await_ready => {
            yaml::sequence_entry(spec, "containers", &spec_path)?
                .iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .find(|name| *name != CONTAINER_NAME)
                .map(str::to_owned)
        }
        _ => None,
    };
    let volumes = yaml::sequence_entry(spec, "volumes", &spec_path)?;
    yaml::upsert_named(volumes, proxy::config_volume(&config_map), AddAt::Last);
    yaml::upsert_named(volumes, proxy::identity_volume(&secret), AddAt::Last);

    if matches!(template.get("metadata"), None | Some(Value::Null)) {
        yaml::insert_first(template, "metadata", Value::Mapping(Mapping::new()));
    }
    let metadata = yaml::mapping_entry(template, "metadata", path)?;
    let annotations = yaml::mapping_entry(metadata, "annotations", &path.key("metadata"))?;
    if let Some(app) = default_container {
        let key = proxy::string(DEFAULT_CONTAINER_ANNOTATION);
        if !annotations.contains_key(&key) {
            annotations.insert(key, proxy::string(&app));
        }
    }
    annotations.insert(proxy::string(INJECTED_ANNOTATION), proxy::string("true"));
    annotations.insert(
        proxy::string(VERSION_ANNOTATION),
        proxy::string(config.image.version()),
    );
    Ok(())
}

/// Checks that no container of the pod `spec` (at `spec_path`) but the
/// sidecar declares one of the sidecar's TCP `ports`. A pod's containers
/// share one network namespace: of the application and the sidecar, one
/// could not listen on the port, and the pod would never be ready (the
/// sidecar's probes are on its admin port).
fn check_ports(spec: &Mapping, spec_path: &FieldPath, ports: &Ports) -> Result<(), Problem> {
    let sidecar_ports = [
        (ports.inbound, "inbound"),
        (ports.outbound, "outbound"),
        (ports.admin, "admin"),
    ];
    for key in ["initContainers", "containers"] {
        let Some(containers) = spec.get(key).and_then(Value::as_sequence) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let name = container.get("name").and_then(Value::as_str);
            if name == Some(CONTAINER_NAME) {
                continue;
            }
            let Some(ports) = container.get("ports").and_then(Value::as_sequence) else {
                continue;
            };
            for (j, port) in ports.iter().enumerate() {
                // The protocol is TCP unless it says otherwise.
                let tcp = port
                    .get("protocol")
                    .and_then(Value::as_str)
                    .is_none_or(|protocol| protocol == "TCP");
                let number = port.get("containerPort").and_then(Value::as_u64);
                let Some((port, what)) = sidecar_ports
                    .iter()
                    .find(|(sidecar, _)| tcp && number == Some(u64::from(*sidecar)))
                else {
                    continue;
                };
                return Err(Problem::new(
                    ResourceErrorKind::InvalidValue,
                    spec_path
                        .key(key)
                        .index(i)
                        .key("ports")
                        .index(j)
                        .key("containerPort"),
                    format!(
                        "{} declares port {port}, the sidecar's {what} port: the \
                         containers of a pod share its ports, so the two could not both \
                         listen on it; move the application to another port",
                        name.map_or_else(
                            || "a container".to_owned(),
                            |name| format!("container {name:?}")
                        ),
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Where the workload's name is, from its pod template's path.
fn path_to_name(template: &FieldPath, kind: WorkloadKind) -> FieldPath {
    let mut object = template.clone();
    for _ in kind.template_path() {
        object = object.parent();
    }
    object.key("metadata").key("name")
}

/// `base` followed by `suffix`, when that is short enough to name a
/// Kubernetes object.
fn derived_name(base: &str, suffix: &str, path: &FieldPath) -> Result<String, Problem> {
    let name = format!("{base}{suffix}");
    if name.len() > MAX_NAME {
        return Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            path.clone(),
            format!(
                "{base:?} is too long to name the sidecar's {name_kind}: with {suffix:?} it would exceed {MAX_NAME} characters",
                name_kind = if suffix == CONFIG_MAP_SUFFIX {
                    "ConfigMap"
                } else {
                    "Secret"
                },
            ),
        ));
    }
    Ok(name)
}
