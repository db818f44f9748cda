//! `sidecar inject`: the sidecar added to Kubernetes workload manifests.
//!
//! Operators who already run `kubectl get deploy -o yaml | linkerd inject -
//! | kubectl apply -f -` run the same pipeline with `sidecar inject -`. It
//! reads manifests (multi-document YAML, or a `kind: List` with `items` as
//! `kubectl get -o yaml` prints them, or a list kind of the API such as
//! `DeploymentList`, whose items kubectl applies as it applies a `List`'s,
//! and lists within lists, which kubectl flattens; `linkerd inject` reads
//! the items of a `List` only), adds the sidecar to every workload's
//! pod template and writes the documents back, in the same order, on
//! standard output. What it did to each object goes to standard error,
//! with a warning for what an injected sidecar cannot follow (see below).
//!
//! # What is injected
//!
//! Workloads are `Pod` and `ReplicationController` (`v1`), `Deployment`,
//! `StatefulSet`, `DaemonSet`, `ReplicaSet` (`apps`), `Job` and `CronJob`
//! (`batch`), the kinds `linkerd inject` injects. Into each pod
//! template (for a `Pod`, the pod itself) go:
//!
//! - the container `mesh-proxy`: the image (`--image`, by default
//!   `ghcr.io/mesh/sidecar:<this version>`), `command:
//!   [/usr/lib/mesh/sidecar]` ([`SIDECAR_BINARY`]), `args: [run, --config,
//!   /etc/mesh/sidecar.yaml]`, the `postStart` await (below), the ports `mesh-inbound` 4143,
//!   `mesh-outbound` 4140 and `mesh-admin` 4191 (Linkerd's numbers),
//!   the proxy resources of Linkerd's high-availability values (requests
//!   100m CPU and 20Mi memory, a 250Mi memory limit, no CPU limit so a busy
//!   proxy is not throttled; Linkerd's plain install sets none) unless
//!   Linkerd's `config.linkerd.io/proxy-cpu-request`, `proxy-cpu-limit`,
//!   `proxy-memory-request` or `proxy-memory-limit` on the pod template,
//!   or else on its Namespace, asks for others (as in Linkerd, not on the
//!   workload's own metadata, which its pods do not carry), the ephemeral
//!   storage `proxy-ephemeral-storage-request` and `-limit` ask for (none
//!   unless they do, as in Linkerd), a liveness
//!   probe on `/live` and a readiness probe on `/ready` at the
//!   admin port, a security context that passes the `restricted` Pod
//!   Security Standard, and `terminationMessagePolicy:
//!   FallbackToLogsOnError`, as Linkerd's proxy has: a sidecar that cannot
//!   start says why in its log, and the kubelet then shows the log's tail
//!   in the container's status (`kubectl describe pod`);
//! - the volume `mesh-config`, the ConfigMap `<workload>-mesh-config`
//!   (for a workload named by `generateName`, after its stem: `job-` is
//!   `job-mesh-config`),
//!   mounted at `/etc/mesh`: it holds `sidecar.yaml` (see
//!   `examples/CONFIG.md`), and any policy files that file names;
//! - the volume `mesh-identity`, the Secret `<service account>-mesh-identity`,
//!   mounted at `/var/run/mesh/identity`: it holds `tls.crt`, `tls.key`
//!   and `ca.crt`, the layout a Kubernetes TLS Secret (cert-manager's)
//!   has, `sidecar certs issue` writes, and `identity.dir` reads. It is
//!   mounted whole, not by `subPath`, so the kubelet's updates reach the
//!   sidecar, which reloads rotated certificates by itself;
//! - the annotations `mesh.io/injected: "true"` and
//!   `mesh.io/proxy-version`, the image's tag (or digest);
//! - for a workload whose `mesh.io/inject` is `ingress` (an ingress
//!   controller, see below), the container's environment variable
//!   [`MESH_INGRESS_MODE`]`=true`, which turns the sidecar's ingress mode
//!   on whatever its configuration file says, as Linkerd's injector sets
//!   `LINKERD2_PROXY_INGRESS_MODE`;
//! - for Linkerd's `config.linkerd.io/proxy-log-level` on the pod
//!   template (or else on its Namespace), the container's `RUST_LOG`, the
//!   filter the sidecar logs with (a value that is not a filter, such as
//!   `info,mesh=loud`, is an error), as Linkerd's injector sets
//!   `LINKERD2_PROXY_LOG`;
//! - for Linkerd's `config.alpha.linkerd.io/proxy-wait-before-exit-seconds`
//!   there (a whole number of seconds), a `preStop` hook that sleeps that
//!   long (Kubernetes' `sleep` action, 1.30 and later: the image needs no
//!   `sleep` binary), as Linkerd's proxy gets one. Kubernetes signals
//!   every container of a stopping pod at once, and a signalled sidecar
//!   closes its listeners: the wait keeps it serving while the
//!   application finishes its own requests through it. The API server
//!   refuses a sleep longer than the pod's `terminationGracePeriodSeconds`
//!   (30 unless set), and so does inject. A native sidecar (below) gets
//!   none, as in Linkerd: Kubernetes stops it only after the application;
//! - for Linkerd's `config.linkerd.io/proxy-uid` and `proxy-gid` there,
//!   the container's `runAsUser` (2102, Linkerd's, unless set; root is
//!   an error, as the container runs as non-root) and `runAsGroup`; for
//!   `config.linkerd.io/image-pull-policy`, its `imagePullPolicy`; for
//!   `config.linkerd.io/inbound-port`, `outbound-port` and `admin-port`,
//!   where the sidecar listens: the container's environment variables
//!   [`MESH_INBOUND_LISTEN_ADDR`] (`0.0.0.0:<port>`),
//!   [`MESH_OUTBOUND_LISTEN_ADDR`] (`127.0.0.1:<port>`) and
//!   [`MESH_ADMIN_LISTEN_ADDR`] (`0.0.0.0:<port>`), which the sidecar
//!   follows over its `sidecar.yaml`, as Linkerd's injector sets
//!   `LINKERD2_PROXY_INBOUND_LISTEN_ADDR` and the others
//!   (`charts/partials/templates/_proxy.tpl` in `linkerd/linkerd2`), and
//!   the ports the container declares and is probed on. Only an
//!   annotated port gets its variable: without one, the ConfigMap's
//!   `sidecar.yaml` says where the sidecar listens, as it did before
//!   (and should keep to the ports the container declares, the
//!   defaults). The inbound one needs `inbound.app` in that file, as a
//!   written `inbound.listen` does. A value Linkerd would
//!   drop with a log line (a port that is not a port, a user that is not
//!   a number) is an error naming the annotation, the document and the
//!   value.
//!
//! The ConfigMap is named after the workload because the configuration
//! is the workload's own (its application port, its labels for policy);
//! the Secret after the service account because the mesh identity is the
//! service account's (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`), as in
//! Linkerd. So two workloads never share a configuration by accident, and
//! workloads that share an account share its certificate. `inject` does
//! not create either object: the pod waits, not ready, until they exist.
//!
//! For the emojivoto `web` Deployment, with its application on port 8080,
//! the two could be made this way (`sidecar certs issue` is for trying the
//! mesh; in production cert-manager or SPIRE write and rotate the Secret):
//!
//! ```text
//! kubectl -n emojivoto create configmap web-mesh-config --from-file=sidecar.yaml
//! sidecar certs issue --ca ca --identity spiffe://cluster.local/ns/emojivoto/sa/web --out web
//! kubectl -n emojivoto create secret generic web-mesh-identity --from-file=web/
//! ```
//!
//! where `sidecar.yaml` names the mounted directory and the application:
//!
//! ```
//! # use mesh_examples::sidecar::config::SidecarConfig;
//! let sidecar_yaml = "
//! identity:
//!   dir: /var/run/mesh/identity
//!   identity: spiffe://cluster.local/ns/emojivoto/sa/web
//! inbound:
//!   app: 127.0.0.1:8080
//! ";
//! assert!(SidecarConfig::from_yaml(sidecar_yaml, "sidecar.yaml").is_ok());
//! assert!(sidecar_yaml.contains(mesh_examples::sidecar::inject::IDENTITY_DIR));
//! ```
//!
//! The container goes first among `containers`, with a `postStart` hook
//! running `sidecar await --admin 127.0.0.1:4191 --timeout 2m` (the
//! binary at [`SIDECAR_BINARY`], the container's command too). Why: a
//! sidecar among `containers` starts with the application, whose first
//! requests to `127.0.0.1:4140` could come before it listens, and be
//! refused; the kubelet starts a pod's containers in order and the next
//! one only once the previous one's `postStart` hook has returned, so the
//! application starts once the sidecar is ready. This is Linkerd's
//! `config.linkerd.io/proxy-await`, on by default, which runs
//! `linkerd-await --timeout=2m` as its proxy's hook and puts the proxy
//! first (`charts/partials/templates/proxy.tpl` in `linkerd/linkerd2`).
//! Past the two minutes the hook prints why and succeeds, as
//! `linkerd-await` does, and the application starts next to a sidecar
//! that is not ready yet (see [`wait_ready`](crate::sidecar::wait_ready)). The
//! pod template gains `kubectl.kubernetes.io/default-container` naming the
//! application's first container, unless it names one already, so that
//! `kubectl logs` and `exec` without `-c` still reach the application.
//! `config.linkerd.io/proxy-await: disabled`, on the pod template or its
//! Namespace, puts the container last without the hook. For a `Job` or
//! `CronJob`, and for any pod whose `restartPolicy` is `Never` or
//! `OnFailure` (a bare `Pod` that runs a task), it goes first among
//! `initContainers`, with `restartPolicy: Always` (a native sidecar,
//! Kubernetes 1.29 and later): a plain container that never exits would
//! keep the job, or the pod, from ever completing. Linkerd's
//! `config.linkerd.io/proxy-enable-native-sidecar: "true"` (or its older
//! names under `config.beta.linkerd.io` and `config.alpha.linkerd.io`)
//! on a pod template, or on its Namespace when the template does not set
//! it, asks for a native sidecar too, so that the application's init
//! containers can reach the mesh. A native sidecar has a startup probe on
//! `/ready` (every second, for up to two minutes, as Linkerd's): the
//! kubelet starts the pod's next containers only once it passes, so their
//! first requests find the sidecar listening. Linkerd's
//! `config.linkerd.io/proxy-await: disabled` takes the probe off, as
//! Linkerd's native proxy has it only with the await.
//!
//! Nothing redirects traffic: there is no init container rewriting
//! iptables. The workload's Service targets the `mesh-inbound` port, and
//! the application sends its outbound requests to `127.0.0.1:4140`.
//!
//! # Which workloads
//!
//! Every workload passed in is injected, as `linkerd inject` does, unless
//! the annotation `mesh.io/inject: disabled` says otherwise. The nearest
//! annotation decides: the pod template's, then the workload's own, then
//! that of the `kind: Namespace` document, in the same input, named by the
//! workload's `metadata.namespace`. So a namespace annotated `disabled`
//! keeps its workloads out unless one says `enabled`, a namespace
//! annotated `enabled` brings in the workloads that say nothing, and a
//! pod template that says `disabled` stays out whatever its namespace
//! says. The Namespace may come anywhere in the input, after its
//! workloads too, and is written back as it was. A workload without
//! `metadata.namespace` (or with an empty one) is taken to be in
//! `default`, where `kubectl apply` puts it unless `-n` or the context
//! names another namespace: the input's Namespace `default` decides for
//! it, and no other. One meant for another namespace should name it
//! before it is injected.
//!
//! `ingress` injects as `enabled` does, with the sidecar in ingress mode:
//! its outbound listener routes each request by the `mesh-dst-override`
//! (or `l5d-dst-override`) header the ingress controller sets, not by its
//! `Host`, which is the public name (see `outbound.ingress_mode` in
//! `examples/CONFIG.md`). Like Linkerd's `linkerd.io/inject: ingress`, it
//! belongs on the ingress controller's workload rather than its
//! namespace, where it would reach every other workload there too; the
//! nearest annotation decides, so a workload that says `enabled` in a
//! namespace that says `ingress` gets an ordinary sidecar. Injecting
//! again after the annotation changes adds or removes the setting. A
//! value other than `enabled`, `ingress` or `disabled` is an error.
//!
//! Some pods cannot take the sidecar at all, and inject refuses them as
//! `linkerd inject` does (its `failed to inject daemonset/node-agent:
//! hostNetwork is enabled`, exit code 1): it writes nothing to standard
//! output, so a pipeline into `kubectl apply` applies nothing rather than
//! half an input, names every such workload of the input on standard
//! error (not only the first, so one run finds them all), and exits 1.
//! They are:
//!
//! - a pod on the host's network (`hostNetwork: true`): its sidecar would
//!   listen on the node's own ports, and a second such pod on the node
//!   would share them (the sidecar binds with `SO_REUSEPORT`) and take
//!   part of the first one's traffic;
//! - a pod that already has another mesh's proxy: a container or init
//!   container `linkerd-proxy`, `linkerd-init`, `istio-proxy` or
//!   `istio-init` (the names `linkerd inject` looks for);
//! - a pod that Linkerd's injector will give its proxy when it is
//!   created: `linkerd.io/inject: enabled` (or `ingress`) on the pod
//!   template, or on its Namespace in the input when the template says
//!   nothing. A Namespace that is not in the input is not seen.
//!
//! Linkerd's and Istio's proxies listen on ports the sidecar uses: of the
//! two, one could not bind and the pod would never be ready.
//! `mesh.io/inject: disabled` (on the pod template, the workload or its
//! Namespace) leaves such a workload out and lets the rest be injected,
//! which is how a `kubectl get -A -o yaml` whose node agents use the
//! host's network is injected; `linkerd inject` has no such way out, and
//! refuses even a pod annotated `linkerd.io/inject: disabled`. Moving a
//! workload from Linkerd means taking its `linkerd.io/inject` off first
//! (or setting it to `disabled`).
//!
//! # Linkerd's annotations it cannot follow
//!
//! Every other Linkerd proxy annotation (`config.linkerd.io/*`,
//! `config.alpha.linkerd.io/*`, `config.beta.linkerd.io/*`) on the pod
//! template, the workload or its Namespace cannot be carried into the
//! sidecar: its configuration is the ConfigMap's `sidecar.yaml`, which
//! inject does not write, and for some (`control-port`,
//! `proxy-cpu-ratio-limit`, ...) the sidecar has no setting at all. For
//! each injected workload they reach, the nearest one gets a warning on
//! standard error after the workload's note, naming the annotation, the
//! object and the path where it is, and where the same thing is said when
//! there is such a place: for `config.linkerd.io/opaque-ports`, a port's
//! `protocol: opaque` under `inbound` (or its Server's `proxyProtocol:
//! opaque`); for `access-log`, `inbound.access_log`; with no traffic
//! redirected, `skip-inbound-ports`, `skip-outbound-ports` and
//! `skip-subnets` have nothing to skip. So do an annotation inject
//! follows on the workload's own metadata, which its pods do not carry,
//! and `config.linkerd.io/proxy-log-format: json` (the sidecar logs plain
//! lines only). The output is written all the same. A workload
//! left out (above) gets none: Linkerd may read them there.
//!
//! # Ports it does not proxy
//!
//! The sidecar proxies TCP. A port an injected workload's container (or
//! init container) declares with `protocol: UDP` or `SCTP` keeps
//! reaching the container directly, without mutual TLS, authorization
//! policy or metrics, so each one gets a warning on standard error after
//! the workload's note, naming the container, the port and where it is
//! written ([`UnproxiedPort`]); the output is written all the same.
//! `linkerd inject` injects such a workload too, and warns that it `uses
//! "protocol: UDP"` (`checkUDPPorts` in its `pkg/inject/report.go`).
//!
//! # Output
//!
//! Injecting is idempotent: the parts it adds are rewritten in place to
//! what this version and these options produce, so injecting its own
//! output changes nothing, and injecting again with a new `--image`
//! upgrades the sidecar. A container or volume with one of the names above
//! is taken to be the sidecar's. Nothing is ever removed: a workload
//! annotated `disabled` after it was injected keeps its sidecar. A running
//! `Pod`'s containers cannot be changed, so an injected `Pod` is applied by
//! recreating it (`kubectl replace --force`); a workload with a pod
//! template applies in place and rolls out new pods.
//!
//! Every other field passes through unchanged and in order; other kinds
//! (`Service`, `ConfigMap`, `Namespace`, ...) pass through whole. A
//! document inject leaves as it was (another kind, a workload it does not
//! inject or that was already injected) is written back byte for byte,
//! comments and all, as `linkerd inject` writes it back. A document it
//! changes is written anew, as `kubectl` and `linkerd inject` write it:
//! its comments and the original quoting and layout are not kept, aliases
//! are written out as the values they stand for, merge keys (`<<`) are
//! merged as `kubectl` merges them (an anchor that merges another brings
//! both), and strings that YAML 1.1 (which `kubectl` reads) would take
//! for booleans or numbers keep their quotes. Unquoted, such scalars are
//! read as YAML 1.1 reads them, as `kubectl` and `linkerd inject` do:
//! `defaultMode: 0644` is the number 420, and is written so, merged in or
//! not. Empty
//! documents are dropped, and `---` alone separates the documents.
//!
//! An input longer than [`MAX_INPUT`] (16 MiB) is refused before it is
//! read whole, and so is one whose flow collections (`[...]`, `{...}`)
//! nest deeper than the 128 levels a document may have, at the bracket
//! that goes too deep (mesh-core's
//! [`check_yaml_shape`](mesh_core::resource::check_yaml_shape), which
//! reads every resource text before the parser does): reading either
//! would take minutes, or gigabytes. So is a document whose aliases
//! (`*name`) stand for more values than the text has bytes, plus 100,000:
//! one anchored list referred to over and over is a few kilobytes of text
//! and gigabytes once read, and kubectl refuses it too ("excessive
//! aliasing").
//! A manifest the API server accepts is far from all three (it refuses a
//! request over 3 MiB).
//!
//! A malformed input (not YAML, a document without `kind`, a workload
//! without a pod template, a container list that is not a list) is an
//! error naming the document, the field and the line, and nothing is
//! written to standard output, so a pipeline into `kubectl apply` applies
//! nothing. So is a workload to inject whose own container (or init
//! container) declares one of the sidecar's ports, 4143, 4140 or 4191,
//! over TCP: a pod's containers share its ports, and of the application
//! and the sidecar one could not listen, so the pod would never be ready.
//!
//! ```
//! use mesh_examples::sidecar::inject::{self, InjectConfig, Outcome};
//!
//! let manifest = "\
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: web, namespace: emojivoto}
//! spec:
//!   template:
//!     spec:
//!       serviceAccountName: web
//!       containers: [{name: web, image: web:v1}]
//! ";
//! let injected = inject::inject("web.yaml", manifest, &InjectConfig::new())?;
//! assert_eq!(injected.notes[0].outcome, Outcome::Injected);
//! assert!(injected.yaml.contains("name: mesh-proxy"));
//! assert!(injected.yaml.contains("secretName: web-mesh-identity"));
//!
//! let again = inject::inject("web.yaml", &injected.yaml, &InjectConfig::new())?;
//! assert_eq!(again.yaml, injected.yaml);
//! assert_eq!(again.notes[0].outcome, Outcome::AlreadyInjected);
//! assert!(again.notes[0].warnings.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`MESH_INGRESS_MODE`]: crate::sidecar::config::INGRESS_MODE_ENV
//! [`MESH_INBOUND_LISTEN_ADDR`]: crate::sidecar::config::INBOUND_LISTEN_ENV
//! [`MESH_OUTBOUND_LISTEN_ADDR`]: crate::sidecar::config::OUTBOUND_LISTEN_ENV
//! [`MESH_ADMIN_LISTEN_ADDR`]: crate::sidecar::config::ADMIN_LISTEN_ENV

mod emit;
mod error;
mod image;
mod io;
mod namespace;
mod note;
mod object;
mod proxy;
mod raw;
mod resources;
mod rule;
mod settings;
mod unproxied;
mod warning;
mod workload;
mod yaml;
mod yaml11;

use mesh_core::resource::{Documents, apply_merge_keys};
use serde_yaml_ng::Value;

pub use self::{
    error::InjectError,
    image::{Image, InvalidImage},
    io::{inject_file, inject_io},
    note::{DisabledBy, Note, Outcome},
    proxy::{
        ADMIN_PORT, CONFIG_DIR, CONFIG_FILE, CONFIG_MAP_SUFFIX, CONFIG_VOLUME, CONTAINER_NAME,
        CPU_REQUEST, IDENTITY_DIR, IDENTITY_VOLUME, INBOUND_PORT, MEMORY_LIMIT, MEMORY_REQUEST,
        OUTBOUND_PORT, SECRET_SUFFIX, SIDECAR_BINARY,
    },
    rule::INJECT_ANNOTATION,
    unproxied::UnproxiedPort,
    warning::{Unread, Warning},
    workload::{INJECTED_ANNOTATION, VERSION_ANNOTATION, WorkloadKind},
};
use self::{
    namespace::Namespaces,
    object::{note, objects},
    yaml11::PlainScalars,
};

/// The longest input inject reads: 16 MiB. Reading YAML takes up to
/// some 200 bytes of memory for each byte of text (a flow list of
/// one-digit numbers), so this keeps a hostile input to a few gigabytes;
/// manifests are kilobytes, and the API server refuses a request over
/// 3 MiB.
pub const MAX_INPUT: usize = mesh_core::resource::MAX_TEXT_LEN;

/// What `inject` adds: today, which image the sidecar runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectConfig {
    /// The sidecar's image. Default: [`Image::default_for_this_version`].
    pub image: Image,
}

impl InjectConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the sidecar from `image`.
    #[must_use]
    pub fn with_image(mut self, image: Image) -> Self {
        self.image = image;
        self
    }
}

/// The injected manifests, and what was done to each object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The documents, as YAML.
    pub yaml: String,
    /// One note per object, in order.
    pub notes: Vec<Note>,
}

/// Injects the sidecar into the workloads of `text`; `origin` (a file
/// name, or `stdin`) names it in notes and errors. A byte order mark at
/// the start is skipped.
///
/// # Errors
///
/// [`InjectError::Manifest`] for a document that is not YAML, has no
/// `apiVersion` or `kind`, or is a workload that cannot be injected (no
/// pod template, a field of the wrong type, an unknown `mesh.io/inject`).
/// It names the document, the field and the line; for flow collections
/// nesting deeper than 128 levels, the line and column of the bracket too
/// deep. [`InjectError::TooLarge`] for a text longer than [`MAX_INPUT`].
/// [`InjectError::Refused`] when a workload to inject cannot take the
/// sidecar (on the host's network, or with another mesh's proxy), with a
/// note for each such workload.
pub fn inject(origin: &str, text: &str, config: &InjectConfig) -> Result<Injected, InjectError> {
    // A UTF-8 byte order mark, which some editors write, is no part of the
    // first document: kubectl skips it too.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.len() > MAX_INPUT {
        return Err(InjectError::TooLarge {
            origin: origin.to_owned(),
        });
    }
    // The shape first, as every YAML reader here must; then what aliases
    // stand for, before any document is read into a tree.
    mesh_core::resource::check_yaml_shape(origin, text)?;
    mesh_core::resource::check_yaml_aliases(origin, text)?;
    let mut documents = Vec::new();
    let mut plain = PlainScalars::new(text);
    for document in Documents::new(origin, text) {
        // The tree as written, its plain scalars read as YAML 1.1 reads
        // them along the text, which it must follow key for key; then its
        // merge keys applied, as kubectl applies them (chained ones too):
        // left unmerged, a key inject adds next to one (`volumes`) would
        // hide the merged key of that name.
        let mut parsed = document?.into_tree()?;
        plain.resolve(parsed.context.index(), &mut parsed.value);
        if let Err(unmergeable) = apply_merge_keys(&mut parsed.value) {
            return Err(yaml::unmergeable(text, &parsed.context, &unmergeable).into());
        }
        documents.push((parsed.context, parsed.value));
    }

    let read: Vec<&Value> = documents.iter().map(|(_, value)| value).collect();
    let pieces = raw::pieces(text, &read);

    // Every Namespace first: one decides for its workloads wherever it is.
    let namespaces = Namespaces::read_all(&mut documents, text)?;
    let mut notes = Vec::new();
    let mut refused = Vec::new();
    for (context, document) in &mut documents {
        for object in objects(document).map_err(|p| p.into_error(text, context))? {
            let injection = match WorkloadKind::of(&object.api_version, &object.kind) {
                Some(kind) => {
                    workload::inject(object.value, &object.path, kind, &namespaces, config)
                        .map_err(|p| object.name_in(p.into_error(text, context), context))?
                }
                None => Outcome::NotAWorkload.into(),
            };
            let note = note(context, object, injection);
            match note.outcome {
                Outcome::HostNetwork | Outcome::OtherProxy(_) => refused.push(note),
                _ => notes.push(note),
            }
        }
    }
    // As `linkerd inject` fails on such a pod: written without it, the
    // input would be half injected, and applied, half moved.
    if !refused.is_empty() {
        return Err(InjectError::Refused(refused));
    }

    let values: Vec<Value> = documents.into_iter().map(|(_, value)| value).collect();
    // A document inject left as it was is written as it was written.
    let raw: Vec<Option<&str>> = values
        .iter()
        .zip(&pieces)
        .map(|(value, piece)| match piece {
            Some(piece) if piece.read == *value => Some(piece.text),
            _ => None,
        })
        .collect();
    let yaml = emit::emit(&values, &raw).map_err(InjectError::from)?;
    Ok(Injected { yaml, notes })
}
