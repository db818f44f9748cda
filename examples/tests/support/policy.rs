//! Policy files the reload tests write: workload `app: emoji`'s inbound
//! Server, open to loopback clients, and the changes made to it.

/// The inbound Server of the application's port, open to loopback clients
/// only (the tests' clients are plaintext, from 127.0.0.1).
pub const AUTHZ: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: emoji}}
  port: http
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec:
  networks: [{cidr: 127.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: emoji-http-loopback, namespace: emojivoto}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: emoji-http}
  requiredAuthenticationRefs:
    - {group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}
";

/// `AUTHZ` with the Server's authorization taken away: under the
/// `deny` default, its requests get 403.
pub fn authz_closed() -> String {
    AUTHZ.split("---\n").next().unwrap().to_owned()
}

/// An authorization policy of a Server that does not exist: a mistake
/// that does not compile.
pub const DANGLING: &str = "---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: dangling, namespace: emojivoto}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: nope}
  requiredAuthenticationRefs:
    - {group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}
";
